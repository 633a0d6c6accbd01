"""An HTTP emulator of OpenAI's Batch API (/v1/files and /v1/batches), a thin aiohttp app whose
answers are real: every batch line, and every live /v1/completions or /v1/chat/completions
request, is forwarded to the real llama-cpp-python server (tests/_fx_llama.py). No real Batch API
is reachable here; the provider talks to this one through the official `openai` SDK
(`client.files`, `client.batches`), exactly as it would to OpenAI.

What it does as OpenAI documents: an upload (multipart, purpose=batch) becomes a file; a batch
names one file and one endpoint, goes validating -> in_progress -> completed (or failed, expired,
cancelled), and when done carries an output file (the lines answered) and an error file (the
lines that failed, and those a batch that expired or was cancelled never reached).

Knobs: fail_ids (custom ids answered 400 in the error file), expire_after (lines answered before
the batch expires: the rest are in the error file as batch_expired), fail_validation (the batch
fails), polls_before_done (in_progress polls). Counters: live (forwarded live requests), executed
(batch lines run against the llama server), created, retrieves, cancels; uploads (the lines of
each uploaded file, in order).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

__all__ = ["FakeBatchAPI", "with_batch_api"]

TERMINAL = ("completed", "failed", "expired", "cancelled")


class FakeBatchAPI:
    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")  # .../v1
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.fail_ids: set[str] = set()
        self.expire_after: int | None = None
        self.fail_validation = False
        self.polls_before_done = 2
        self.live = 0
        self.executed = 0
        self.created = 0
        self.retrieves = 0
        self.cancels = 0
        self.uploads: list[list[dict[str, Any]]] = []
        self._polls: dict[str, int] = {}
        self._n = 0

    @property
    def uploaded_lines(self) -> list[dict[str, Any]]:
        return [line for up in self.uploads for line in up]

    def _id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}-{self._n:04d}"

    async def _forward(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        async with aiohttp.ClientSession() as s:
            async with s.post(self.upstream + path.removeprefix("/v1"), json=body) as r:
                return r.status, await r.json(content_type=None)

    def _lines(self, fid: str) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.files[fid].decode().splitlines() if x.strip()]

    # -- the endpoints --------------------------------------------------------------------------
    async def _live(self, request: web.Request) -> web.Response:
        self.live += 1
        status, data = await self._forward(request.path, await request.json())
        return web.json_response(data, status=status)

    async def _upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("purpose") != "batch":
            return web.json_response({"error": {"message": "purpose must be batch"}}, status=400)
        f = form["file"]
        content = f.file.read()  # type: ignore[union-attr]
        fid = self._id("file")
        self.files[fid] = content
        self.uploads.append(self._lines(fid))
        return web.json_response(
            {
                "id": fid,
                "object": "file",
                "bytes": len(content),
                "created_at": 0,
                "purpose": "batch",
                "filename": f.filename,  # type: ignore[union-attr]
                "status": "processed",
            }
        )

    async def _create(self, request: web.Request) -> web.Response:
        body = await request.json()
        fid = body.get("input_file_id")
        if fid not in self.files or body.get("completion_window") != "24h":
            return web.json_response({"error": {"message": "bad batch request"}}, status=400)
        if any(x["url"] != body["endpoint"] for x in self._lines(fid)):
            return web.json_response({"error": {"message": "mixed endpoints"}}, status=400)
        bid = self._id("batch")
        self.created += 1
        total = len(self._lines(fid))
        self.batches[bid] = {
            "id": bid,
            "object": "batch",
            "endpoint": body["endpoint"],
            "input_file_id": fid,
            "completion_window": "24h",
            "created_at": 0,
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "errors": None,
            "request_counts": {"total": total, "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
        }
        self._polls[bid] = 0
        return web.json_response(self.batches[bid])

    async def _retrieve(self, request: web.Request) -> web.Response:
        self.retrieves += 1
        b = self.batches.get(request.match_info["bid"])
        if b is None:
            return web.json_response({"error": {"message": "no such batch"}}, status=404)
        if b["status"] not in TERMINAL:
            self._polls[b["id"]] += 1
            if self.fail_validation:
                b["status"] = "failed"
                b["errors"] = {"data": [{"code": "invalid_request", "message": "bad line 1"}]}
            elif self._polls[b["id"]] <= self.polls_before_done:
                b["status"] = "in_progress"
            else:
                await self._execute(b)
        return web.json_response(b)

    async def _cancel(self, request: web.Request) -> web.Response:
        self.cancels += 1
        b = self.batches.get(request.match_info["bid"])
        if b is None:
            return web.json_response({"error": {"message": "no such batch"}}, status=404)
        if b["status"] not in TERMINAL:
            b["status"] = "cancelled"
        return web.json_response(b)

    async def _content(self, request: web.Request) -> web.Response:
        fid = request.match_info["fid"]
        if fid not in self.files:
            return web.json_response({"error": {"message": "no such file"}}, status=404)
        return web.Response(body=self.files[fid], content_type="application/octet-stream")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/completions", self._live)
        app.router.add_post("/v1/chat/completions", self._live)
        app.router.add_post("/v1/files", self._upload)
        app.router.add_post("/v1/batches", self._create)
        app.router.add_get("/v1/batches/{bid}", self._retrieve)
        app.router.add_post("/v1/batches/{bid}/cancel", self._cancel)
        app.router.add_get("/v1/files/{fid}/content", self._content)
        return app

    # -- running a batch ------------------------------------------------------------------------
    async def _execute(self, b: dict[str, Any]) -> None:
        lines = self._lines(b["input_file_id"])
        out, errs = [], []
        for k, line in enumerate(lines):
            cid = line["custom_id"]
            if self.expire_after is not None and k >= self.expire_after:
                err = {"code": "batch_expired", "message": "This request could not be executed "
                       "before the completion window expired."}  # fmt: skip
                errs.append({"id": f"r{k}", "custom_id": cid, "response": None, "error": err})
                continue
            if cid in self.fail_ids:
                body = {"error": {"message": "injected failure"}}
                response = {"status_code": 400, "request_id": f"req{k}", "body": body}
                errs.append({"id": f"r{k}", "custom_id": cid, "error": None, "response": response})
                continue
            self.executed += 1
            status, data = await self._forward(line["url"], line["body"])
            response = {"status_code": status, "request_id": f"req{k}", "body": data}
            rec = {"id": f"r{k}", "custom_id": cid, "error": None, "response": response}
            (out if status == 200 else errs).append(rec)
        if out:
            fid = self._id("file")
            self.files[fid] = "".join(json.dumps(r) + "\n" for r in out).encode()
            b["output_file_id"] = fid
        if errs:
            fid = self._id("file")
            self.files[fid] = "".join(json.dumps(r) + "\n" for r in errs).encode()
            b["error_file_id"] = fid
        failed = sum(1 for r in errs if (r["error"] or {}).get("code") != "batch_expired")
        b["request_counts"] = {"total": len(lines), "completed": len(out), "failed": failed}
        b["status"] = "expired" if self.expire_after is not None else "completed"
        self.expire_after = None  # the next batch runs to the end


async def with_batch_api(upstream: str, fn: Callable[[FakeBatchAPI, str], Awaitable[Any]]) -> Any:
    """Run `fn(emulator, base_url)` with the emulator listening on a free 127.0.0.1 port."""
    fake = FakeBatchAPI(upstream)
    runner = web.AppRunner(fake.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        return await fn(fake, f"http://127.0.0.1:{port}/v1")
    finally:
        await runner.cleanup()
