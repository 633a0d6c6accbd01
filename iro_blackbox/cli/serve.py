"""`iro-bb serve --run RUN`: the aligned policy behind an OpenAI-compatible HTTP API.

iro-bb serve --run upbeat-1234abcd --port 8000 --api-key secret
# then, unchanged: OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="secret")
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

import typer

from ..errors import ConfigError
from .common import (
    DbOption,
    MaxCostOption,
    MaxOutputTokensOption,
    MaxRequestsOption,
    RpmOption,
    TpmOption,
    budget_of,
    err_console,
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


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve_cmd(
    run: Annotated[
        str, typer.Option("--run", "-r", help="Run name (or id) whose aligned policy answers.")
    ],
    host: Annotated[
        str,
        typer.Option(
            help="Address to bind. The default serves this machine only; 0.0.0.0 opens it."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port to listen on.")] = 8000,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="IRO_SERVE_API_KEY",
            help="Require 'Authorization: Bearer KEY' on /v1 requests (default: no key).",
            show_default=False,
        ),
    ] = None,
    model_name: Annotated[
        str | None,
        typer.Option(help="Model id clients send and /v1/models lists (default: the run name)."),
    ] = None,
    max_tokens_limit: Annotated[
        int, typer.Option(help="Largest max_tokens a request may ask for (larger: 400).")
    ] = 512,
    max_n: Annotated[int, typer.Option(help="Largest n (choices per request).")] = 8,
    max_body_bytes: Annotated[
        int, typer.Option(help="Largest request body in bytes (larger: 413).")
    ] = 1_000_000,
    batch_window_ms: Annotated[
        float,
        typer.Option(help="Milliseconds to gather concurrent requests into one search batch."),
    ] = 10.0,
    max_batch: Annotated[
        int, typer.Option(help="Prompts searched together in one batch at most.")
    ] = 32,
    batching: Annotated[
        bool,
        typer.Option(
            "--batching/--no-batching",
            help="Search concurrent requests together (--no-batching: one prompt at a time).",
        ),
    ] = True,
    device: Annotated[
        str | None, typer.Option(help="hf-provider runs and value models: cpu, cuda or auto.")
    ] = None,
    db: DbOption = None,
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
    """Serve a run's aligned policy (CBS guided by its value models) as /v1/completions and
    /v1/chat/completions (streaming too) and /v1/models, until Ctrl-C. With --provider /
    --model (and --base-url ...) the run's value models steer that model instead, probed before
    the server listens."""
    from ..serve import serve  # heavy: torch (the policy)

    if not 0 < port < 65536:
        raise ConfigError(f"port must be in 1..65535, got {port}")
    for name, value in (
        ("max-tokens-limit", max_tokens_limit),
        ("max-n", max_n),
        ("max-body-bytes", max_body_bytes),
        ("max-batch", max_batch),
    ):
        if value < 1:
            raise ConfigError(f"--{name} must be >= 1, got {value}")
    budget_of(max_cost, max_requests, max_output_tokens)  # a bad limit: one line, nothing loaded
    limits = rate_limits(rpm, tpm)
    if batch_window_ms < 0:
        raise ConfigError(f"--batch-window-ms must be >= 0, got {batch_window_ms}")
    if not _is_loopback(host) and not api_key:
        err_console.print(
            f"[yellow]warning:[/yellow] serving on {host} without --api-key: anyone who can reach "
            "this port can use the model",
            highlight=False,
        )
    steer = steer_overrides(
        provider=provider, model=model, base_url=base_url, tokenizer=tokenizer,
        api_mode=api_mode, api_key_env=api_key_env, reprobe=reprobe, price_input=price_input,
        price_output=price_output, vllm_python=vllm_python, vllm_dtype=vllm_dtype,
    )  # fmt: skip
    serve(
        run,
        db=db,
        host=host,
        port=port,
        api_key=api_key,
        model_name=model_name,
        max_tokens_limit=max_tokens_limit,
        max_n=max_n,
        max_body_bytes=max_body_bytes,
        batch_window_ms=batch_window_ms,
        max_batch=max_batch,
        batching=batching,
        print_fn=lambda msg: err_console.print(msg, highlight=False),
        device=device,
        budget=budget_of(max_cost, max_requests, max_output_tokens),
        **limits,
        **steer,
    )
