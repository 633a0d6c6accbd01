"""Fixtures for the api tests: a small fake OpenAI-compatible server of our own (aiohttp, on
127.0.0.1, in a background thread) for what a real server cannot do on demand: 429 with
Retry-After, 500s, connection resets, hangs past the timeout, malformed JSON, 401; plus a counting
proxy in front of the real llama-cpp-python server, so tests count the HTTP requests it receives.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import ClientSession, ClientTimeout, web


@dataclass
class Received:
    path: str
    body: dict[str, Any]
    authorization: str | None
    raw: bytes = b""  # the body as sent
    start: float = 0.0  # time.time() when it arrived
    end: float | None = None  # when the answer was sent (proxy mode); None: never answered


@dataclass
class FakeOpenAIServer:
    """A fake OpenAI-compatible endpoint with scripted faults.

    Answers POST /v1/completions and /v1/chat/completions with deterministic text: `max_tokens`
    words " tK" derived from the prompt and seed, each with logprob `logprob(word)`, finish_reason "length"
    (or "stop" after a word when the prompt contains "SHORT"). Asked to go on with an answer
    ending "1, 2, 3, 4," (the probe's counting check), /completions continues " 5, 6, ..."; a chat
    request with that answer as its last assistant message continues it only when `vllm_like` and
    `continue_final_message` are set, and otherwise answers it as a new turn ("1, 2, 3, 4, 5, ..."),
    as llama-cpp-python's server does. `fail_next(*faults)` makes the next
    requests fail in order; a fault is one of:
      ("status", code[, headers[, message]]), ("reset",), ("hang", seconds), ("malformed",).
    With `upstream` set it is instead a counting proxy to that base URL (the real llama server):
    the same scripted faults first, then the real server's answers.
    """

    latency: float = 0.0  # seconds before every answer
    n_honoured: bool = True  # False: always one choice, like llama.cpp
    usage: bool = True  # False: replies carry no `usage`
    vllm_like: bool = False  # chat continue_final_message and completions echo, as vLLM does
    completions: bool = True  # False: /v1/completions answers 404, as for OpenAI chat models
    upstream: str | None = None  # proxy mode: forward to this base URL (ending in /v1)
    received: list[Received] = field(default_factory=list)
    faults: deque = field(default_factory=deque)
    base_url: str = ""
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None
    _client: ClientSession | None = None
    inflight: int = 0
    max_inflight: int = 0

    # -- control
    def fail_next(self, *faults: tuple) -> None:
        self.faults.extend(faults)

    def count(self, path_suffix: str = "") -> int:
        return sum(1 for r in self.received if r.path.endswith(path_suffix))

    # -- answers
    @staticmethod
    def words(prompt: str, seed: Any, temperature: float, k: int, sample: int) -> list[str]:
        salt = "greedy" if temperature == 0 else f"{seed}:{sample}"
        h = hashlib.sha256(f"{prompt}|{salt}".encode()).digest()
        return [f" t{(h[i % 32] + i) % 97}" for i in range(k)]

    def _choices(self, body: dict[str, Any], chat: bool) -> tuple[list[dict], int, int]:
        if chat:
            prompt = json.dumps(body.get("messages"), sort_keys=True)
        else:
            prompt = body.get("prompt", "")
        k = int(body.get("max_tokens") or 16)
        short = "SHORT" in prompt
        n = int(body.get("n") or 1) if self.n_honoured else 1
        choices = []
        ct = 0
        counting = self._counting(body, chat)
        for i in range(n):
            ws = self.words(prompt, body.get("seed"), body.get("temperature", 1.0), k, i)
            if counting is not None:
                ws = counting[:k]
            if short:
                ws = ws[:1]
            ct += len(ws)
            text = "".join(ws)
            finish = "stop" if short else "length"
            lps = [self.logprob(w) for w in ws]
            if chat:
                c = {"index": i, "message": {"role": "assistant", "content": text}}
                if body.get("logprobs"):
                    c["logprobs"] = {
                        "content": [
                            {"token": w, "logprob": lp} for w, lp in zip(ws, lps, strict=True)
                        ]
                    }
            else:
                c = {"index": i, "text": text}
                if body.get("logprobs"):
                    c["logprobs"] = {"tokens": ws, "token_logprobs": lps}
            c["finish_reason"] = finish
            choices.append(c)
        return choices, len(prompt.split()), ct

    def _counting(self, body: dict[str, Any], chat: bool) -> list[str] | None:
        """The probe's counting question: continued, restarted, or not asked."""
        go_on = [f" {i}," for i in range(5, 30)]
        if not chat:
            prompt = body.get("prompt", "")
            return go_on if isinstance(prompt, str) and prompt.endswith("1, 2, 3, 4,") else None
        msgs = body.get("messages") or []
        last = msgs[-1] if msgs else {}
        if last.get("role") != "assistant" or last.get("content") != "1, 2, 3, 4,":
            return None
        if self.vllm_like and body.get("continue_final_message"):
            return go_on
        return [f"{i}," if i == 1 else f" {i}," for i in range(1, 30)]  # a new turn

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            return await self._answer(request)
        finally:
            self.inflight -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        rec = Received(request.path, body, request.headers.get("Authorization"), raw, time.time())
        self.received.append(rec)
        if self.faults:
            fault = self.faults.popleft()
            kind = fault[0]
            if kind == "status":
                code = fault[1]
                headers = fault[2] if len(fault) > 2 else {}
                message = fault[3] if len(fault) > 3 else f"fake error {code}"
                return web.json_response(
                    {"error": {"message": message, "type": "fake"}}, status=code, headers=headers
                )
            if kind == "reset":
                assert request.transport is not None
                request.transport.abort()
                raise asyncio.CancelledError  # no answer at all
            if kind == "hang":
                await asyncio.sleep(fault[1])
            if kind == "malformed":
                return web.Response(
                    text='{"id": "x", "choices": [{"text": "tru', content_type="application/json"
                )
        if self.upstream:  # proxy mode: the faults above, then the real server's answer
            resp = await self._forward(request, raw)
            rec.end = time.time()
            return resp
        if self.latency:
            await asyncio.sleep(self.latency)
        chat = request.path.endswith("/chat/completions")
        if not chat and not self.completions:
            return web.json_response(
                {
                    "error": {
                        "message": "This is a chat model and not supported in the "
                        "v1/completions endpoint.",
                        "type": "invalid_request_error",
                    }
                },
                status=404,
            )
        if self.vllm_like and chat and body.get("continue_final_message"):
            if body.get("add_generation_prompt", True):
                return web.json_response(
                    {
                        "error": {
                            "message": "Cannot set both `continue_final_message` and "
                            "`add_generation_prompt` to True.",
                            "type": "BadRequestError",
                        }
                    },
                    status=400,
                )
        choices, pt, ct = self._choices(body, chat)
        if self.vllm_like and not chat and body.get("echo"):
            choices = [self._echo(body["prompt"], c) for c in choices]
        reply = {
            "id": "fake",
            "object": "chat.completion" if chat else "text_completion",
            "model": body.get("model"),
            "choices": choices,
        }
        if self.usage:
            reply["usage"] = {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct}
        return web.json_response(reply)

    @staticmethod
    def logprob(piece: str) -> float:
        """The logprob the fake gives a piece of text (generated or echoed): deterministic."""
        return -len(piece.strip()) / 4

    def _echo(self, prompt: str, choice: dict) -> dict:
        """vLLM-style echo: the prompt's pieces (words) first, the first logprob null."""
        pieces = re.findall(r"\s*\S+", prompt)
        gen = re.findall(r"\s*\S+", choice["text"])
        offsets, pos = [], 0
        for p in pieces + gen:
            offsets.append(pos)
            pos += len(p)
        lps: list[float | None] = [self.logprob(p) for p in pieces + gen]
        lps[0] = None
        return {
            "index": choice["index"],
            "text": prompt + choice["text"],
            "finish_reason": choice["finish_reason"],
            "logprobs": {"tokens": pieces + gen, "token_logprobs": lps, "text_offset": offsets},
        }

    async def _forward(self, request: web.Request, raw: bytes) -> web.Response:
        assert self._client is not None and self.upstream
        url = self.upstream.rstrip("/") + request.path.removeprefix("/v1")
        async with self._client.request(
            request.method, url, data=raw, headers={"Content-Type": "application/json"}
        ) as r:
            data = await r.read()
            return web.Response(body=data, status=r.status, content_type="application/json")

    # -- lifecycle (the server runs on its own loop in a thread; tests use asyncio.run freely)
    def start(self) -> FakeOpenAIServer:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)

            async def boot() -> None:
                app = web.Application()
                app.router.add_route("*", "/{tail:.*}", self._handle)
                self._runner = web.AppRunner(
                    app, access_log=None, handle_signals=False, shutdown_timeout=0.2
                )
                await self._runner.setup()
                site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=1024)
                await site.start()
                port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
                self.base_url = f"http://127.0.0.1:{port}/v1"
                if self.upstream:
                    self._client = ClientSession(timeout=ClientTimeout(total=600))

            loop.run_until_complete(boot())
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True, name="fake-openai")
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            if self._client is not None:
                await self._client.close()
            if self._runner is not None:
                await self._runner.cleanup()
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in rest:  # e.g. a handler still "hanging"
                t.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        fut = asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
        try:
            fut.result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(10)


@pytest.fixture
def fake_api():
    """A fresh fake OpenAI-compatible server (n honoured, no latency) per test."""
    srv = FakeOpenAIServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def llama_proxy(llama_server):
    """A counting proxy in front of the real llama-cpp-python server (fresh counts per test)."""
    srv = FakeOpenAIServer(upstream=llama_server.base_url).start()
    yield srv
    srv.stop()
