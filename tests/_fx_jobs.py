"""Fixtures for the jobs and serve tests.

- A `probe` job kind: N steps, each appended to a record file ("job step pid") when finished;
  a resumed attempt skips the steps the record already has (as align / generate skip what the
  store has), checks cancel between steps and reports progress. Real workers, real SQLite files:
  the record shows whether any step ran twice.
- `worker_proc(db, *args)`: an `iro-bb worker` subprocess that also knows the probe kind.
- Served policies: `tiny_policy` (a tiny random LM behind the real HF provider, no value model:
  for HTTP logic) and `smollm2_policy` (the shipped SmolLM2 + a MiniLM value model: real CBS).
  `ServerThread` runs `iro-bb serve`'s app on a free 127.0.0.1 port in a background loop, so the
  official (sync) openai client can talk to it from the test.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

TESTS_DIR = Path(__file__).resolve().parent

__all__ = [
    "jobs_db",
    "probe_record",
    "tiny_policy",
    "smollm2_policy",
    "smollm2_server",
    "serve_store",
]


# -- the probe job kind ---------------------------------------------------------------------------
def read_record(path: Path) -> list[tuple[int, int, int]]:
    """[(job id, step, pid)] in the order they were recorded."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            j, s, p = line.split()
            out.append((int(j), int(s), int(p)))
    return out


def _run_probe(ctx: Any) -> dict[str, Any]:
    from iro_blackbox.errors import Cancelled

    a = ctx.args
    record = Path(a["record"])
    steps, sleep = int(a.get("steps", 3)), float(a.get("sleep", 0.0))
    done = {s for j, s, _ in read_record(record) if j == ctx.id}
    if a.get("fail"):
        raise RuntimeError(a["fail"])
    for step in range(steps):
        if step in done:
            continue
        if ctx.cancel_check():
            raise Cancelled("probe cancelled")
        ctx.on_progress({"stage": "probing", "done": len(done), "total": steps, "tokens": step})
        time.sleep(sleep)
        fd = os.open(record, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{ctx.id} {step} {os.getpid()}\n".encode())
        finally:
            os.close(fd)
        done.add(step)
    ctx.on_progress({"stage": "probing", "done": len(done), "total": steps})
    return {"steps": steps}


def register_probe() -> None:
    from iro_blackbox.jobs import JobKind
    from iro_blackbox.registry import JOB_KINDS

    JOB_KINDS.register("probe", JobKind("probe", run=_run_probe, help="test job: N recorded steps"))


register_probe()


@pytest.fixture
def jobs_db(db_url) -> str:
    """A fresh store for jobs: a SQLite file, then a PostgreSQL database (each test runs twice)."""
    from iro_blackbox.store import open_store

    open_store(db_url).close()
    return db_url


@pytest.fixture
def probe_record(tmp_path) -> Path:
    return tmp_path / "record.txt"


WORKER_SNIPPET = (
    "import sys; sys.path.insert(0, {tests!r}); import _fx_jobs; "
    "from iro_blackbox.cli.app import main; sys.exit(main({argv!r}))"
)


def worker_proc(db: str, *args: str, log: Path | None = None) -> subprocess.Popen:
    """`iro-bb worker --db DB ARGS` in a subprocess that also knows the probe kind."""
    argv = ["worker", "--db", db, *args]
    code = WORKER_SNIPPET.format(tests=str(TESTS_DIR), argv=argv)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen([sys.executable, "-c", code], stdout=out, stderr=out, env=env)


def wait_for(cond: Any, timeout: float, what: str, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


# -- served policies ------------------------------------------------------------------------------
def make_policy(provider: Any, value_models: list[Any], store: Any, **cfg: Any) -> Any:
    """An AlignedPolicy built directly from a provider and value models (no run needed)."""
    from iro_blackbox.iro.config import AlignConfig
    from iro_blackbox.iro.policy import AlignedPolicy

    options = {"w": 2, "k": 2, "l": 8, "max_tokens": 16, **cfg}
    config = AlignConfig.from_dict({"data": "serve-test.jsonl", **options})
    return AlignedPolicy(
        "serve-test", 0, config, store, provider, value_models, [1.0] * len(value_models)
    )


class _NoClose:
    """Keeps a session-wide provider open when a policy is closed."""

    def __init__(self, inner: Any):
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def aclose(self) -> None:
        return None


@pytest.fixture(scope="session")
def serve_store(tmp_path_factory):
    from iro_blackbox.store import open_store

    return open_store(str(tmp_path_factory.mktemp("serve") / "serve.db"))


@pytest.fixture(scope="session")
def tiny_policy(tiny_hf, serve_store):
    """The real HF provider on a tiny random model, no value model (S = 0): HTTP logic tests."""
    return make_policy(_NoClose(tiny_hf), [], serve_store)


@pytest.fixture(scope="session")
def smollm2_policy(smollm2_hf, serve_store):
    """Real CBS: SmolLM2-135M-Instruct guided by a MiniLM value model (fresh head)."""
    from iro_blackbox.value import ValueConfig, ValueModel

    vm = ValueModel.from_config(ValueConfig(backbone="minilm-l6", device="cpu"), seed=0)
    return make_policy(_NoClose(smollm2_hf), [vm], serve_store)


class ServerThread:
    """`iro-bb serve`'s app on 127.0.0.1:<free port>, in a background event loop."""

    def __init__(self, policy: Any, **config: Any):
        from iro_blackbox.serve import ServeConfig

        config.setdefault("model_name", "iro-test")
        self.config = ServeConfig(**config)
        self.policy = policy
        self.loop = asyncio.new_event_loop()
        self.handle: Any = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> ServerThread:
        from iro_blackbox.serve import start_server

        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(start_server(self.policy, self.config), self.loop)
        self.handle = fut.result(timeout=30)
        return self

    @property
    def base_url(self) -> str:
        return self.handle.base_url

    @property
    def batcher(self) -> Any:
        from iro_blackbox.serve.app import BATCHER

        return self.handle.runner.app[BATCHER]

    def __exit__(self, *exc: Any) -> None:
        asyncio.run_coroutine_threadsafe(self.handle.stop(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="session")
def smollm2_server(smollm2_policy):
    """The real policy served with an API key, once per session."""
    with ServerThread(smollm2_policy, api_key="test-key", max_body_bytes=64_000) as srv:
        yield srv


# -- a fake of OpenAI's files + batches endpoints ---------------------------------------------------
class FakeBatchAPI:
    """An aiohttp fake of /v1/files and /v1/batches (no real Batch API is reachable here). The
    completions themselves are real: each batch line, and each live /v1/completions or
    /v1/chat/completions request, is forwarded to `upstream` (the real llama-cpp-python server).

    Knobs: fail_ids (custom ids answered 400 in the error file), expire_after (lines done before
    the batch expires), fail_validation (the batch fails), polls_before_done (in_progress polls).
    Counters: live (forwarded live requests), executed (batch lines run), files, created,
    retrieves.
    """

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
        self.uploaded_lines: list[dict[str, Any]] = []
        self._polls: dict[str, int] = {}
        self._n = 0

    def _id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}-{self._n:04d}"

    async def _forward(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        import aiohttp

        async with aiohttp.ClientSession() as s:
            async with s.post(self.upstream + path.removeprefix("/v1"), json=body) as r:
                return r.status, await r.json(content_type=None)

    def app(self) -> Any:
        from aiohttp import web

        async def live(request: web.Request) -> web.Response:
            self.live += 1
            status, data = await self._forward(request.path, await request.json())
            return web.json_response(data, status=status)

        async def upload(request: web.Request) -> web.Response:
            form = await request.post()
            if form.get("purpose") != "batch":
                return web.json_response(
                    {"error": {"message": "purpose must be batch"}}, status=400
                )
            f = form["file"]
            content = f.file.read()
            fid = self._id("file")
            self.files[fid] = content
            for line in content.decode().splitlines():
                self.uploaded_lines.append(json.loads(line))
            return web.json_response(
                {
                    "id": fid,
                    "object": "file",
                    "bytes": len(content),
                    "purpose": "batch",
                    "filename": f.filename,
                }
            )

        async def create(request: web.Request) -> web.Response:
            body = await request.json()
            fid = body.get("input_file_id")
            if fid not in self.files or body.get("completion_window") != "24h":
                return web.json_response({"error": {"message": "bad batch request"}}, status=400)
            lines = [json.loads(x) for x in self.files[fid].decode().splitlines() if x.strip()]
            if any(x["url"] != body["endpoint"] for x in lines):
                return web.json_response({"error": {"message": "mixed endpoints"}}, status=400)
            bid = self._id("batch")
            self.created += 1
            self.batches[bid] = {
                "id": bid,
                "object": "batch",
                "endpoint": body["endpoint"],
                "input_file_id": fid,
                "completion_window": "24h",
                "status": "validating",
                "output_file_id": None,
                "error_file_id": None,
                "errors": None,
                "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
                "metadata": body.get("metadata"),
            }
            self._polls[bid] = 0
            return web.json_response(self.batches[bid])

        async def retrieve(request: web.Request) -> web.Response:
            self.retrieves += 1
            bid = request.match_info["bid"]
            b = self.batches.get(bid)
            if b is None:
                return web.json_response({"error": {"message": "no such batch"}}, status=404)
            if b["status"] not in ("completed", "failed", "expired", "cancelled"):
                self._polls[bid] += 1
                if self.fail_validation:
                    b["status"] = "failed"
                    b["errors"] = {"data": [{"code": "invalid_request", "message": "bad line 1"}]}
                elif self._polls[bid] <= self.polls_before_done:
                    b["status"] = "in_progress"
                else:
                    await self._execute(b)
            return web.json_response(b)

        async def content(request: web.Request) -> web.Response:
            fid = request.match_info["fid"]
            if fid not in self.files:
                return web.json_response({"error": {"message": "no such file"}}, status=404)
            return web.Response(body=self.files[fid], content_type="application/octet-stream")

        app = web.Application()
        app.router.add_post("/v1/completions", live)
        app.router.add_post("/v1/chat/completions", live)
        app.router.add_post("/v1/files", upload)
        app.router.add_post("/v1/batches", create)
        app.router.add_get("/v1/batches/{bid}", retrieve)
        app.router.add_get("/v1/files/{fid}/content", content)
        return app

    async def _execute(self, b: dict[str, Any]) -> None:
        lines = [
            json.loads(x) for x in self.files[b["input_file_id"]].decode().splitlines() if x.strip()
        ]
        out, errs = [], []
        for k, line in enumerate(lines):
            cid = line["custom_id"]
            if self.expire_after is not None and k >= self.expire_after:
                errs.append(
                    {
                        "id": f"r{k}",
                        "custom_id": cid,
                        "response": None,
                        "error": {"code": "batch_expired", "message": "expired"},
                    }
                )
                continue
            if cid in self.fail_ids:
                errs.append(
                    {
                        "id": f"r{k}",
                        "custom_id": cid,
                        "error": None,
                        "response": {
                            "status_code": 400,
                            "body": {"error": {"message": "injected failure"}},
                        },
                    }
                )
                continue
            self.executed += 1
            status, data = await self._forward(line["url"], line["body"])
            rec = {
                "id": f"r{k}",
                "custom_id": cid,
                "error": None,
                "response": {"status_code": status, "request_id": f"req{k}", "body": data},
            }
            (out if status == 200 else errs).append(rec)
        if out:
            fid = self._id("file")
            self.files[fid] = "".join(json.dumps(r) + "\n" for r in out).encode()
            b["output_file_id"] = fid
        if errs:
            fid = self._id("file")
            self.files[fid] = "".join(json.dumps(r) + "\n" for r in errs).encode()
            b["error_file_id"] = fid
        b["request_counts"] = {"total": len(lines), "completed": len(out), "failed": len(errs)}
        b["status"] = "expired" if self.expire_after is not None else "completed"
        self.expire_after = None  # the next batch runs to the end


def timed_proxy(upstream: str) -> Any:
    """A counting proxy (tests/_fx_api.FakeOpenAIServer) that also records when each answer
    was sent: (raw body, end time) in `.finished`."""
    from dataclasses import dataclass, field

    from _fx_api import FakeOpenAIServer

    @dataclass
    class TimedProxy(FakeOpenAIServer):
        finished: list = field(default_factory=list)

        async def _forward(self, request: Any, raw: bytes) -> Any:
            resp = await super()._forward(request, raw)
            self.finished.append((request.path, raw, time.time()))
            return resp

    return TimedProxy(upstream=upstream).start()
