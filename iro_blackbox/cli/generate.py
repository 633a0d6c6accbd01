"""`iro-bb generate --run RUN prompts.jsonl -o out.jsonl`: decode with the aligned policy."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import ConfigError
from .common import (
    DbOption,
    FinalOption,
    KOption,
    LOption,
    MaxCostOption,
    MaxOutputTokensOption,
    MaxRequestsOption,
    MaxTokensOption,
    OutputOption,
    PromptsArg,
    RpmOption,
    RunOption,
    SeedOption,
    TpmOption,
    WOption,
    budget_of,
    console,
    rate_limits,
)
from .steer import (
    ApiKeyEnvOption,
    ApiModeOption,
    BaseUrlOption,
    PriceInputOption,
    PriceOutputOption,
    ReprobeOption,
    SteerModelOption,
    SteerProviderOption,
    TokenizerOption,
    VllmDtypeOption,
    VllmPythonOption,
    steer_overrides,
)


def generate_cmd(
    prompts: PromptsArg,
    run: RunOption,
    output: OutputOption,
    max_tokens: MaxTokensOption = None,
    w: WOption = None,
    k: KOption = None,
    l: LOption = None,
    seed: SeedOption = None,
    final: FinalOption = "score",
    db: DbOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    max_cost: MaxCostOption = None,
    max_requests: MaxRequestsOption = None,
    max_output_tokens: MaxOutputTokensOption = None,
    rpm: RpmOption = None,
    tpm: TpmOption = None,
    provider: SteerProviderOption = None,
    model: SteerModelOption = None,
    base_url: BaseUrlOption = None,
    tokenizer: TokenizerOption = None,
    api_mode: ApiModeOption = None,
    api_key_env: ApiKeyEnvOption = None,
    reprobe: ReprobeOption = False,
    price_input: PriceInputOption = None,
    price_output: PriceOutputOption = None,
    vllm_python: VllmPythonOption = None,
    vllm_dtype: VllmDtypeOption = None,
) -> None:
    """Answer every prompt with the run's aligned policy. Resumable: re-run to continue. With
    --provider / --model (and --base-url ...) the run's value models steer another model; its
    answers are kept apart from the run's own."""
    from ..iro.generate import generate_file  # heavy: torch

    if final not in ("score", "grader"):
        raise ConfigError(f"--final must be score or grader, got {final!r}")
    search = {
        k_: v
        for k_, v in {"max_tokens": max_tokens, "w": w, "k": k, "l": l, "seed": seed}.items()
        if v is not None
    }
    budget = budget_of(max_cost, max_requests, max_output_tokens)
    steer = steer_overrides(
        provider=provider, model=model, base_url=base_url, tokenizer=tokenizer,
        api_mode=api_mode, api_key_env=api_key_env, reprobe=reprobe, price_input=price_input,
        price_output=price_output, vllm_python=vllm_python, vllm_dtype=vllm_dtype,
    )  # fmt: skip
    res = generate_file(
        run,
        prompts,
        output,
        db=db,
        progress=not quiet,
        final=final,
        budget=budget,
        overrides={**rate_limits(rpm, tpm), **steer},
        **search,
    )
    if res.get("steered"):
        st = res["steered"]
        console.print(f"steered {st['label']}" + (f" ({st['mode']})" if st["mode"] else ""))
    console.print(
        f"{res['prompts']} answers ({res['generated']} new, {res['reused']} from the store) -> {res['output']}"
    )
    if res["spent"].get("requests"):
        console.print(f"API requests {res['spent']['requests']:,}, ${res['spent']['cost_usd']:.4f}")
