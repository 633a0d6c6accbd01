"""`iro-bb eval --run RUN test.jsonl --methods base,bon,cbs,iro`: comparison at equal compute."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..errors import InputError
from .common import (
    DbOption,
    MaxCostOption,
    MaxOutputTokensOption,
    MaxRequestsOption,
    RpmOption,
    TpmOption,
    budget_of,
    check_output_path,
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


def eval_cmd(
    data: Annotated[Path, typer.Argument(help="Test prompts (JSONL).")],
    run: Annotated[str, typer.Option("--run", "-r", help="Run name (or id) to evaluate.")],
    methods: Annotated[
        str,
        typer.Option(
            help="Comma-separated: base, bon (Best-of-N), cbs (V_1 only), iro (V_1..V_T), "
            "rerank (N whole answers, the best by V_1..V_T), greedy (the base policy's greedy "
            "answer); the last two not by default."
        ),
    ] = "base,bon,cbs,iro",
    limit: Annotated[int | None, typer.Option(help="Evaluate on the first N prompts only.")] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the results to this JSON file.")
    ] = None,
    db: DbOption = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bars; print JSON only.")
    ] = False,
    max_cost: MaxCostOption = None,
    max_requests: MaxRequestsOption = None,
    max_output_tokens: MaxOutputTokensOption = None,
    rpm: RpmOption = None,
    tpm: TpmOption = None,
    budgets: Annotated[
        str | None,
        typer.Option(
            help="Also run the aligned policy at these search sizes W*K (e.g. 4,8,16) and the "
            "Best-of-n curve up to the largest: the equal-compute picture (added to the run's "
            "report too).",
            show_default=False,
        ),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            help="With --budgets: draw reward vs tokens per prompt (IRO at each budget beside "
            "Best-of-n) into this PNG.",
            show_default=False,
        ),
    ] = None,
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
    """Compare the aligned policy with the baselines at equal compute (N = W*K samples). With
    --provider / --model (and --base-url ...) every method runs on that model, steered by the
    run's value models; the results are labelled with it and not added to the run's report."""
    from ..iro.evaluate import evaluate, write_json  # heavy: torch
    from ..iro.report import plot_compute
    from ..iro.runs import attach_compute

    sizes = None
    if budgets:
        try:
            sizes = [int(b) for b in budgets.split(",") if b.strip()]
        except ValueError:
            raise InputError(
                f"--budgets takes search sizes such as 4,8,16, got {budgets!r}"
            ) from None
    if plot is not None and not sizes:
        raise InputError("--plot draws the --budgets picture: give --budgets too")
    check_output_path(json_out, "--json")
    check_output_path(plot, "--plot")
    steer = steer_overrides(
        provider=provider, model=model, base_url=base_url, tokenizer=tokenizer,
        api_mode=api_mode, api_key_env=api_key_env, reprobe=reprobe, price_input=price_input,
        price_output=price_output, vllm_python=vllm_python, vllm_dtype=vllm_dtype,
    )  # fmt: skip
    res = evaluate(
        run,
        data,
        methods=[m.strip() for m in methods.split(",") if m.strip()],
        db=db,
        progress=not quiet,
        limit=limit,
        budget=budget_of(max_cost, max_requests, max_output_tokens),
        budgets=sizes,
        overrides={**rate_limits(rpm, tpm), **steer},
    )
    if json_out:  # the results first: nothing after this may lose them
        write_json(res, json_out)
    report = attach_compute(run, res, db) if sizes else None
    if plot is not None:
        plot_compute(res, plot)
    if quiet:
        console.print_json(json.dumps({k: v for k, v in res.items() if k != "greedy_answers"}))
        return
    steered = res.get("steered")
    who = f"{res['run']} steering {steered['label']}" if steered else res["run"]
    t = Table(title=f"{who} on {res['data']} ({res['prompts']} prompts, N = W*K = {res['n']})")
    for c in (
        "method",
        "mean reward",
        "± stderr",
        "grader pick",
        "win rate vs base",
        "tokens/prompt",
        "seconds",
    ):
        t.add_column(c, justify="right")

    def f(v, fmt="{:+.3f}"):
        return "" if v is None else fmt.format(v)

    for name, m in res["methods"].items():
        label = {
            "base": "base",
            "bon": f"best-of-{res['n']}",
            "cbs": "cbs (V_1)",
            "iro": "iro (V_1..V_T)",
            "rerank": f"rerank {res['n']} (V_1..V_T)",
            "greedy": "greedy (temperature 0)",
        }.get(name, name)
        t.add_row(
            label,
            f(m["mean_reward"]),
            f(m.get("stderr"), "{:.3f}"),
            f(m.get("grader_pick_reward")),
            f(m.get("win_rate_vs_base"), "{:.2f}"),
            f(m.get("tokens_per_prompt"), "{:.0f}"),
            f(m.get("seconds"), "{:.1f}"),
        )
    console.print(t)
    if res.get("iro_budgets"):
        c = Table(title="equal compute: IRO (no grader) at each search size vs Best-of-n")
        for col in ("W*K", "IRO reward", "± se", "tokens/prompt", "Best-of-n (n = W*K)"):
            c.add_column(col, justify="right")
        bon = {b["n"]: b["reward"] for b in res.get("bon_curve") or []}
        for row in res["iro_budgets"]:
            c.add_row(
                f"{row['w']}*{row['k']}",
                f(row["reward"]),
                f(row["stderr"], "{:.3f}"),
                f(row["tokens_per_prompt"], "{:.0f}"),
                f(bon.get(row["budget"])),
            )
        console.print(c)
    if plot is not None:
        console.print(f"plot: {plot}")
    if report is not None:
        console.print(f"the run's report now shows it: {report}")
    elif sizes and steered:
        console.print("not added to the run's report: these figures are of the steered model")
    if steered and steered.get("mode"):
        console.print(f"steered {steered['label']}: {steered['mode']}")
    console.print_json(json.dumps({k: v for k, v in res.items() if k != "greedy_answers"}))
