"""`serve(run)`: load a run's aligned policy (over its own provider, or steering another provider
or model) and serve it with app.py's HTTP server until interrupted (the CLI's `iro-bb serve`)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from .app import ServeConfig, make_app
from .schemas import Limits


def default_limits(policy: Any, max_tokens_limit: int, max_n: int = 8) -> Limits:
    """Limits whose default max_tokens is the run's own (capped by the limit)."""
    search = getattr(getattr(policy, "cfg", None), "search", None)
    default = int(getattr(search, "max_tokens", 64) or 64)
    return Limits(
        max_tokens=max_tokens_limit,
        default_max_tokens=min(default, max_tokens_limit),
        max_n=max_n,
    )


def serve(
    run: str,
    *,
    db: Any = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    model_name: str | None = None,
    max_tokens_limit: int = 512,
    max_n: int = 8,
    max_body_bytes: int = 1_000_000,
    batch_window_ms: float = 10.0,
    max_batch: int = 32,
    batching: bool = True,
    print_fn: Any = print,
    budget: Any = None,
    **load_overrides: Any,
) -> None:
    """Load a run's aligned policy and serve it until interrupted (the CLI's `iro-bb serve`).
    `budget`: limits on what the server may spend at an API provider while it runs; past them
    requests get 429 insufficient_quota. `load_overrides`: load_run's provider options; another
    provider or model is probed (align's probe and refusal) before the server listens."""
    from ..iro.policy import load_run  # heavy: torch

    overrides = {k: v for k, v in load_overrides.items() if v is not None}
    policy = load_run(run, db=db, budget=budget, **overrides)
    steering = policy.steering
    if steering is not None:
        try:
            mode = asyncio.run(policy.aprepare(chat_prompts=True))  # chat completions: chat
        except BaseException:
            asyncio.run(policy.aclose())
            raise
        print_fn(f"steering {steering.label()}" + (f": {mode}" if mode else ""))
    config = ServeConfig(
        model_name=model_name or policy.name,
        api_key=api_key or None,
        max_body_bytes=max_body_bytes,
        limits=default_limits(policy, max_tokens_limit, max_n),
        batch_window_ms=batch_window_ms,
        max_batch=max_batch,
        batching=batching,
    )
    app = make_app(policy, config, close_policy=True)
    what = f" steering {steering.label()}" if steering is not None else ""
    print_fn(
        f"serving run '{policy.name}'{what} as model '{config.model_name}' on "
        f"http://{host}:{port}/v1 ({'API key required' if api_key else 'no API key'}); "
        "Ctrl-C to stop"
    )
    web.run_app(app, host=host, port=port, print=None, access_log=None)
