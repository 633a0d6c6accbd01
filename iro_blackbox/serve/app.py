"""`iro-bb serve`: an OpenAI-compatible HTTP server that answers with an aligned policy.

    app = make_app(policy, ServeConfig(model_name="upbeat-1234", api_key="secret"))
    web.run_app(app, host="127.0.0.1", port=8000)

Endpoints: GET /v1/models, POST /v1/completions, POST /v1/chat/completions (non-streaming, or
`stream: true` for server-sent events of the chosen beam chunk by chunk, ending `data: [DONE]`),
GET /health (no auth). The policy is anything with `async agenerate(prompts, *, max_tokens, w, k,
l, seed, stop, temperature[, top_p]) -> [Generation(text, finish_reason, prompt_tokens,
completion_tokens, score, chunks)]`, e.g. `iro_blackbox.load_run(run)`.

A search must finish before its best beam is known, so a stream starts once the search is done
(comment lines keep the connection alive meanwhile) and then sends the beam's chunks in order.
Every error is an OpenAI-style JSON body; a bad request never stops the server.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..errors import BudgetExceeded, IroError
from ..utils import derive_seed
from .batcher import Batcher, GenParams
from .schemas import ApiError, GenRequest, Limits, parse_chat, parse_completion

log = logging.getLogger("iro_blackbox.serve")

POLICY = web.AppKey("policy", object)
BATCHER = web.AppKey("batcher", Batcher)
CONFIG = web.AppKey("config", object)
KEEPALIVE_S = 10.0  # SSE comment interval while a streamed search runs


@dataclass
class ServeConfig:
    """Server options (all have CLI flags in `iro-bb serve`)."""

    model_name: str  # the model id clients send (default: the run name)
    api_key: str | None = None  # require `Authorization: Bearer <key>` when set
    max_body_bytes: int = 1_000_000  # larger request bodies get 413
    limits: Limits = field(default_factory=Limits)
    batch_window_ms: float = 10.0  # how long to gather concurrent requests into one batch
    max_batch: int = 32  # prompts per agenerate call at most
    batching: bool = True  # False: one prompt at a time (benchmark baseline)
    owned_by: str = "iro-bb"
    created: int = field(default_factory=lambda: int(time.time()))


def _json_error(err: ApiError) -> web.Response:
    return web.json_response(err.body(), status=err.status)


def _failure(e: Exception) -> ApiError:
    """What a client sees of a failed generation: the budget spent (429 insufficient_quota, as
    OpenAI says it), iro-bb's own message, or no detail of an internal error."""
    if isinstance(e, BudgetExceeded):
        return ApiError(429, str(e), type="insufficient_quota", code="insufficient_quota")
    log.exception("request failed")
    return ApiError(
        500, str(e) if isinstance(e, IroError) else f"internal error ({type(e).__name__})"
    )


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every failure becomes a JSON error body; the server keeps serving."""
    try:
        return await handler(request)
    except ApiError as e:
        return _json_error(e)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        msg = {
            404: f"unknown path {request.path}: this server has /v1/models, /v1/completions, "
            "/v1/chat/completions",
            405: f"method {request.method} is not allowed on {request.path}",
            413: "request body too large",
        }.get(e.status, e.reason or "error")
        return _json_error(ApiError(e.status, msg))
    except asyncio.CancelledError:
        raise
    except Exception as e:  # a bug, a failing policy or a spent budget: report it, keep serving
        return _json_error(_failure(e))


def _auth_middleware(api_key: str | None) -> Any:
    @web.middleware
    async def auth(request: web.Request, handler: Any) -> web.StreamResponse:
        if api_key is not None and request.path.startswith("/v1"):
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if not header:
                raise ApiError(
                    401,
                    "missing API key: send 'Authorization: Bearer <key>'",
                    code="invalid_api_key",
                )
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                token.strip().encode(), api_key.encode()
            ):
                raise ApiError(401, "incorrect API key", code="invalid_api_key")
        return await handler(request)

    return auth


async def _read_json(request: web.Request, cfg: ServeConfig) -> Any:
    limit = cfg.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(
            413, f"request body of {request.content_length} bytes exceeds the {limit}-byte limit"
        )
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, f"request body exceeds the {limit}-byte limit") from None
    if len(raw) > limit:
        raise ApiError(413, f"request body exceeds the {limit}-byte limit")
    if not raw.strip():
        raise ApiError(400, "the request body is empty: send a JSON object")
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise ApiError(400, "the request body is not UTF-8 text") from None
    except ValueError as e:
        raise ApiError(400, f"the request body is not valid JSON: {e}") from None


# -- the policy call --------------------------------------------------------------------------
def _seeds(req: GenRequest) -> list[int | None]:
    """One seed per generated choice: the request's seed for choice 0, derived ones after it
    (so n=1 with seed s equals choice 0 of n=3 with seed s); None means random."""
    out: list[int | None] = []
    for _ in req.prompts:
        for i in range(req.n):
            if req.seed is None:
                out.append(None)
            else:
                out.append(req.seed if i == 0 else derive_seed(req.seed, i) % (2**31))
    return out


def _trim_stop(
    text: str, chunks: list[str], stop: list[str], finish: str
) -> tuple[str, list[str], str]:
    """Cut the answer before the first stop string (the policy normally has already), keeping
    the chunk boundaries for streaming."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    if cut < 0:
        return text, chunks, finish
    out, pos = [], 0
    for c in chunks:
        if pos >= cut:
            break
        out.append(c[: cut - pos])
        pos += len(c)
    return text[:cut], [c for c in out if c], "stop"


async def _generate(request: web.Request, req: GenRequest) -> list[dict[str, Any]]:
    """Choices in OpenAI order: prompt 0 choices 0..n-1, prompt 1 ..."""
    batcher = request.app[BATCHER]
    params = GenParams(
        max_tokens=req.max_tokens,
        w=req.w,
        k=req.k,
        l=min(req.l, req.max_tokens) if req.l else None,
        stop=tuple(req.stop),
        temperature=req.temperature,
        top_p=req.top_p,
    )
    prompts = [p for p in req.prompts for _ in range(req.n)]
    gens = await batcher.generate(prompts, params, _seeds(req))
    choices = []
    for i, g in enumerate(gens):
        text = g.text
        chunks = list(getattr(g, "chunks", None) or ([text] if text else []))
        if "".join(chunks) != text:  # a policy whose chunks do not add up: stream the text
            chunks = [text] if text else []
        finish = g.finish_reason if g.finish_reason in ("stop", "length") else "stop"
        if req.stop:
            text, chunks, finish = _trim_stop(text, chunks, req.stop, finish)
        choices.append(
            {
                "index": i,
                "text": text,
                "chunks": chunks,
                "finish_reason": finish,
                "prompt_tokens": int(getattr(g, "prompt_tokens", 0) or 0),
                "completion_tokens": int(getattr(g, "completion_tokens", 0) or 0),
                "score": getattr(g, "score", None),
            }
        )
    return choices


def _usage(choices: list[dict[str, Any]], req: GenRequest) -> dict[str, int]:
    # prompt tokens once per prompt (as OpenAI counts them), completion tokens per choice
    pt = sum(c["prompt_tokens"] for c in choices[:: req.n]) if choices else 0
    ct = sum(c["completion_tokens"] for c in choices)
    return {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct}


# -- handlers -----------------------------------------------------------------------------------
async def models(request: web.Request) -> web.Response:
    cfg: ServeConfig = request.app[CONFIG]
    model = {
        "id": cfg.model_name,
        "object": "model",
        "created": cfg.created,
        "owned_by": cfg.owned_by,
    }
    return web.json_response({"object": "list", "data": [model]})


async def health(request: web.Request) -> web.Response:
    stats = request.app[BATCHER].stats
    return web.json_response(
        {
            "status": "ok",
            "batches": stats.calls,
            "prompts": stats.prompts,
            "max_batch": stats.max_batch,
        }
    )


async def completions(request: web.Request) -> web.StreamResponse:
    cfg: ServeConfig = request.app[CONFIG]
    req = parse_completion(await _read_json(request, cfg), cfg.model_name, cfg.limits)
    return await _respond(request, req)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    cfg: ServeConfig = request.app[CONFIG]
    req = parse_chat(await _read_json(request, cfg), cfg.model_name, cfg.limits)
    return await _respond(request, req)


async def _respond(request: web.Request, req: GenRequest) -> web.StreamResponse:
    rid = ("chatcmpl-" if req.kind == "chat" else "cmpl-") + uuid.uuid4().hex[:24]
    created = int(time.time())
    if req.stream:
        return await _stream(request, req, rid, created)
    choices = await _generate(request, req)
    if req.kind == "chat":
        body_choices = [
            {
                "index": c["index"],
                "message": {"role": "assistant", "content": c["text"]},
                "logprobs": None,
                "finish_reason": c["finish_reason"],
                "iro": {"score": c["score"], "chunks": len(c["chunks"])},
            }
            for c in choices
        ]
        obj = "chat.completion"
    else:
        body_choices = [
            {
                "index": c["index"],
                "text": c["text"],
                "logprobs": None,
                "finish_reason": c["finish_reason"],
                "iro": {"score": c["score"], "chunks": len(c["chunks"])},
            }
            for c in choices
        ]
        obj = "text_completion"
    return web.json_response(
        {
            "id": rid,
            "object": obj,
            "created": created,
            "model": req.model,
            "choices": body_choices,
            "usage": _usage(choices, req),
        }
    )


async def _stream(
    request: web.Request, req: GenRequest, rid: str, created: int
) -> web.StreamResponse:
    resp = web.StreamResponse(
        status=200,
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "Connection": "keep-alive",
            "X-Accel-Buffering": "no",
        },
    )
    await resp.prepare(request)
    task = asyncio.ensure_future(_generate(request, req))
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=KEEPALIVE_S)
            if done:
                break
            await resp.write(b": keep-alive\n\n")
        choices = task.result()
    except ApiError as e:
        await _event(resp, e.body())
        await resp.write(b"data: [DONE]\n\n")
        return resp
    except (ConnectionResetError, asyncio.CancelledError):
        task.cancel()
        raise
    except Exception as e:  # the headers are out: report the failure inside the stream
        await _event(resp, _failure(e).body())
        await resp.write(b"data: [DONE]\n\n")
        return resp

    chat = req.kind == "chat"
    obj = "chat.completion.chunk" if chat else "text_completion"

    def event(choice: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": rid,
            "object": obj,
            "created": created,
            "model": req.model,
            "choices": [choice],
        }

    for c in choices:
        i = c["index"]
        if chat:
            await _event(
                resp,
                event(
                    {
                        "index": i,
                        "delta": {"role": "assistant", "content": ""},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                ),
            )
        for piece in c["chunks"]:
            if chat:
                choice = {
                    "index": i,
                    "delta": {"content": piece},
                    "logprobs": None,
                    "finish_reason": None,
                }
            else:
                choice = {"index": i, "text": piece, "logprobs": None, "finish_reason": None}
            await _event(resp, event(choice))
        if chat:
            last = {"index": i, "delta": {}, "logprobs": None, "finish_reason": c["finish_reason"]}
        else:
            last = {"index": i, "text": "", "logprobs": None, "finish_reason": c["finish_reason"]}
        await _event(resp, event(last))
    if req.include_usage:
        await _event(
            resp,
            {
                "id": rid,
                "object": obj,
                "created": created,
                "model": req.model,
                "choices": [],
                "usage": _usage(choices, req),
            },
        )
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


async def _event(resp: web.StreamResponse, data: dict[str, Any]) -> None:
    await resp.write(b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n")


# -- the application ----------------------------------------------------------------------------
def make_app(policy: Any, config: ServeConfig, *, close_policy: bool = False) -> web.Application:
    """The aiohttp application serving `policy`. `close_policy`: await policy.aclose() on
    shutdown (the CLI owns its policy; tests that share one do not)."""
    app = web.Application(
        middlewares=[_errors, _auth_middleware(config.api_key)],
        # aiohttp refuses bigger bodies itself; _read_json turns that into a JSON 413
        client_max_size=config.max_body_bytes,
    )
    app[POLICY] = policy
    app[CONFIG] = config
    app[BATCHER] = Batcher(
        policy,
        window=config.batch_window_ms / 1000.0,
        max_batch=min(config.max_batch, _search_concurrency(policy) or config.max_batch),
        serial=not config.batching,
    )

    async def on_cleanup(app: web.Application) -> None:
        await app[BATCHER].aclose()
        if close_policy and hasattr(policy, "aclose"):
            await policy.aclose()

    app.on_cleanup.append(on_cleanup)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/health", health)
    return app


def _search_concurrency(policy: Any) -> int | None:
    """Prompts one agenerate call searches at once (SearchParams.concurrency): a bigger group
    would queue inside the call, so groups are capped at it and run as concurrent calls, whose
    provider rows a local model still merges into one forward batch."""
    try:
        return int(policy.search_params().concurrency)
    except Exception:  # a policy without search_params: no cap
        return None


class ServerHandle:
    """A server running on the current event loop (tests, benchmarks): `await h.stop()`."""

    def __init__(self, runner: web.AppRunner, host: str, port: int):
        self.runner = runner
        self.host = host
        self.port = port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_server(
    policy: Any, config: ServeConfig, host: str = "127.0.0.1", port: int = 0
) -> ServerHandle:
    """Start serving on host:port (port 0 = a free one) in the running event loop."""
    runner = web.AppRunner(make_app(policy, config), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = port
    server = getattr(site, "_server", None)
    if server is not None and server.sockets:
        bound = server.sockets[0].getsockname()[1]
    return ServerHandle(runner, host, bound)
