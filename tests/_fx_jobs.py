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
