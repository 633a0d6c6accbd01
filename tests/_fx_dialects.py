"""Emulators of hosted APIs' continuation dialects, each a thin front over the REAL
llama-cpp-python server, so every word of every answer comes from the real model.

What a front does with a chat request whose last message is the assistant's answer so far (the
dialects as their providers document them, checked 2026-12):

    deepseek   "prefix": true on it, only under /beta (DeepSeek's beta base URL); else 400
    mistral    "prefix": true on it
    qwen       "partial": true on it (DashScope's OpenAI-compatible mode)
    prefill    continued as it is (llama.cpp's C++ server, Ollama, OpenRouter)
    newturn    answered as a new turn (what llama-cpp-python's own server does)
    refuse     400: the last message must be the user's (OpenAI-style APIs, newest models)
    notemp     like prefill, but any request with `temperature` is refused (400)
    vllm       /v1/completions takes token-id prompts and returns the answer's token ids;
               `n` honoured; chat continue_final_message with add_generation_prompt=false

A front continues an answer the way the real servers do internally: it renders the chat template
of the messages before the answer (SmolLM2's, from its GGUF), appends the answer so far, and asks
the llama server's /v1/completions to go on. Whole answers (no trailing assistant message) are
forwarded to the llama server's /v1/chat/completions. Every request is recorded.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import ClientSession, ClientTimeout, web

__all__ = ["DIALECTS", "DialectFront", "dialect_front"]

DIALECTS = ("deepseek", "mistral", "qwen", "prefill", "newturn", "refuse", "notemp", "vllm")


def _error(status: int, message: str) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": "invalid_request_error"}}, status=status
    )


@dataclass
class DialectFront:
    dialect: str
    upstream: str  # the llama server's base URL (ending /v1)
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    base_url: str = ""  # what a client uses (/beta for deepseek)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None
    _client: ClientSession | None = None
    _tok: Any = None

    def count(self, suffix: str = "") -> int:
        return sum(1 for p, _ in self.received if p.endswith(suffix))

    # -- the model's side ------------------------------------------------------------------
    def _render(self, messages: list[dict[str, Any]], generation_prompt: bool = True) -> str:
        msgs = [{"role": m["role"], "content": m["content"]} for m in messages]
        return self._tok.apply_chat_template(
            msgs, tokenize=False, add_generation_prompt=generation_prompt
        )

    async def _upstream(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        assert self._client is not None
        async with self._client.post(self.upstream + path, json=body) as r:
            return r.status, await r.json(content_type=None)

    async def _complete(self, prompt: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The llama server's /completions on a rendered prompt, n emulated by n requests."""
        keep = ("max_tokens", "temperature", "top_p", "stop", "seed", "logprobs")
        base = {
            "model": body.get("model"),
            "prompt": prompt,
            **{k: body[k] for k in keep if k in body},
        }
        if "max_completion_tokens" in body:  # what OpenAI's newest models take instead
            base["max_tokens"] = body["max_completion_tokens"]
        choices, pt, ct = [], 0, 0
        n = int(body.get("n") or 1) if self.dialect == "vllm" else 1
        for i in range(n):
            req = dict(base)
            if i and req.get("seed") is not None:
                req["seed"] = int(req["seed"]) + 1000 * i
            status, data = await self._upstream("/completions", req)
            if status != 200:
                return status, data
            c = data["choices"][0]
            choices.append({**c, "index": i})
            pt = data["usage"]["prompt_tokens"]
            ct += data["usage"]["completion_tokens"]
        return 200, {"choices": choices, "usage": {"prompt_tokens": pt, "completion_tokens": ct}}

    # -- the API's side --------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return _error(400, "body is not JSON")
        self.received.append((request.path, body))
        d = self.dialect
        if d == "notemp" and "temperature" in body:
            return _error(
                400, "Unsupported parameter: 'temperature' is not supported with this model."
            )
        if request.path.endswith("/completions") and not request.path.endswith("/chat/completions"):
            return await self._completions(body)
        if request.path.endswith("/chat/completions"):
            return await self._chat(request.path, body)
        return _error(404, f"no route {request.path}")

    async def _completions(self, body: dict[str, Any]) -> web.Response:
        if self.dialect != "vllm":
            return _error(
                404, "This is a chat model and not supported in the v1/completions endpoint."
            )
        prompt = body.get("prompt")
        if isinstance(prompt, list):  # token ids: what the model reads, exactly
            prompt = self._tok.decode(prompt, skip_special_tokens=False)
        status, data = await self._complete(prompt, body)
        if status != 200:
            return web.json_response(data, status=status)
        if body.get("return_token_ids"):
            for c in data["choices"]:
                c["token_ids"] = self._tok.encode(c["text"], add_special_tokens=False)
        return web.json_response({"id": "cmpl-front", "object": "text_completion", **data})

    async def _chat(self, path: str, body: dict[str, Any]) -> web.Response:
        msgs = body.get("messages") or []
        last = msgs[-1] if msgs else {}
        d = self.dialect
        trailing = last.get("role") == "assistant"
        cont = False
        if trailing:
            if d in ("deepseek", "mistral"):
                if last.get("prefix") is not True:
                    return _error(
                        400, "the last message must be a user message (or an assistant prefix)"
                    )
                if d == "deepseek" and "/beta/" not in path:
                    return _error(400, "prefix completion is a beta feature: use base_url .../beta")
                cont = True
            elif d == "qwen":
                if last.get("partial") is not True:
                    return _error(400, "the last message must be from the user")
                cont = True
            elif d in ("prefill", "notemp"):
                cont = True
            elif d == "refuse":
                return _error(400, "Expected the last message to have role 'user'.")
            elif d == "vllm":
                if body.get("continue_final_message"):
                    if body.get("add_generation_prompt", True):
                        return _error(
                            400,
                            "Cannot set both `continue_final_message` and `add_generation_prompt` to True.",
                        )
                    cont = True
        if cont:
            prompt = self._render(msgs[:-1]) + last["content"]
            status, data = await self._complete(prompt, body)
            if status != 200:
                return web.json_response(data, status=status)
            choices = [
                {
                    "index": c["index"],
                    "message": {"role": "assistant", "content": c["text"]},
                    "finish_reason": c.get("finish_reason"),
                }  # fmt: skip
                for c in data["choices"]
            ]
            return web.json_response({"id": "chat-front", "object": "chat.completion",
                                      "choices": choices, "usage": data["usage"]})  # fmt: skip
        # whole answers, or a trailing assistant message answered as a new turn
        drop = ("continue_final_message", "add_generation_prompt", "max_completion_tokens")
        fwd = {k: v for k, v in body.items() if k not in drop}
        if "max_completion_tokens" in body:
            fwd["max_tokens"] = body["max_completion_tokens"]
        fwd["messages"] = [{"role": m["role"], "content": m["content"]} for m in msgs]
        status, data = await self._upstream("/chat/completions", fwd)
        return web.json_response(data, status=status)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> DialectFront:
        from iro_blackbox.tokenizers import load_tokenizer

        self._tok = load_tokenizer("smollm2-135m-instruct")
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)

            async def boot() -> None:
                app = web.Application()
                app.router.add_route("*", "/{tail:.*}", self._handle)
                self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
                await self._runner.setup()
                site = web.TCPSite(self._runner, "127.0.0.1", 0)
                await site.start()
                port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
                root = "/beta" if self.dialect == "deepseek" else "/v1"
                self.base_url = f"http://127.0.0.1:{port}{root}"
                self._client = ClientSession(timeout=ClientTimeout(total=600))

            loop.run_until_complete(boot())
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True, name=f"front-{self.dialect}")
        self._thread.start()
        ready.wait(20)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            if self._client is not None:
                await self._client.close()
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(20)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(20)
        time.sleep(0)


@pytest.fixture
def dialect_front(llama_server):
    """dialect_front(name) -> a started DialectFront over the session's llama server."""
    fronts: list[DialectFront] = []

    def make(dialect: str) -> DialectFront:
        assert dialect in DIALECTS
        f = DialectFront(dialect, llama_server.base_url).start()
        fronts.append(f)
        return f

    yield make
    for f in fronts:
        f.stop()
