"""`python`: the user's `grade(sample, item) -> float`, run in a pool of worker processes.

    {"type": "python", "name": "length", "source": "def grade(sample, item):\\n    return ..."}
    {"type": "python", "name": "length", "file": "my_grader.py", "function": "grade",
     "timeout": 10, "memory_limit_mb": 1024, "workers": 2, "error_score": 0,
     "env": {"MY_SETTING": "literal value", "HF_HOME": true}}

`file` is relative to the spec file's folder (its folder is put on sys.path, so helpers beside it
import). `memory_limit_mb: null` lifts the address-space limit (code that imports torch needs it).

The workers see a minimal environment: PATH, HOME, the user and locale variables, temp folders and
the interpreter's own (PYTHONPATH, PYTHONHOME, VIRTUAL_ENV, ...), never the run's API keys,
database URLs or tokens; `env` adds variables: a string is the value, `true` passes the run's
own value of that variable through. A worker whose module does not load within `load_timeout`
seconds (default 30; a busy machine) is started again, twice at most, before the grader gives up.
Where the address-space limit cannot be set (no RLIMIT_AS), an explicit `memory_limit_mb` is an
error; the default limit is dropped with a warning.

`sample` is {"output_text", "output_json", "output_tools"} (OpenAI's shape); `item` is the dataset
record. Each call has a timeout; each worker an address-space limit. An exception, a timeout, a
crash, a non-number result or a memory blow-up is recorded as Grade(error_score, error=message)
and the rest of the batch goes on (a killed worker is replaced). The source is compiled when the
spec loads (syntax errors name the line); it only ever runs inside the workers.
"""

from __future__ import annotations

import ast
import asyncio
import json
import logging
import os
import queue
import re
import select
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import Grade
from .common import BaseGrader, GraderContext, read_common
from .spec import SpecReader

WORKER_SCRIPT = str(Path(__file__).with_name("_python_worker.py"))
LOAD_TIMEOUT_S = 30.0  # starting a worker and running the module's top level
LOAD_RETRIES = 2  # a load that timed out or crashed is tried again this many times
# what a worker inherits from the run's environment (everything else stays out: keys, tokens...)
PASS_ENV = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP",
            "PYTHONPATH", "PYTHONHOME", "PYTHONNOUSERSITE", "PYTHONUSERBASE", "PYTHONSAFEPATH",
            "VIRTUAL_ENV", "CONDA_PREFIX", "SYSTEMROOT", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
            "OPENBLAS_NUM_THREADS")  # fmt: skip
log = logging.getLogger(__name__)
DEFAULT_WORKERS = max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class PythonGraderConfig:
    """How the user's code runs."""

    source: str  # the module's text (read from `file` once, when the spec loads)
    filename: str  # shown in tracebacks: the file path, or "<grader NAME>"
    function: str = "grade"  # called as function(sample, item)
    timeout: float = 10.0  # seconds per call; the worker is killed and replaced after it
    memory_mb: int | None = 1024  # RLIMIT_AS of each worker (None: no limit)
    workers: int = DEFAULT_WORKERS  # processes in the pool
    sys_path: tuple[str, ...] = ()  # put in front of sys.path (the grader file's folder)
    env: tuple[tuple[str, str | bool], ...] = ()  # the spec's `env`: value, or True (pass through)
    load_timeout: float = LOAD_TIMEOUT_S  # seconds to start a worker and load the module
    memory_required: bool = False  # memory_mb given explicitly: a limit that fails is an error


class _CallFailed(Exception):
    pass


class _Worker:
    """One worker process, used by one thread at a time."""

    def __init__(self, cfg: PythonGraderConfig):
        self.cfg = cfg
        self.proc: subprocess.Popen | None = None
        self._buf = b""
        self._stderr = tempfile.TemporaryFile()
        self.starts = 0
        self.warning: str | None = None  # what the worker said when it loaded (no memory limit)

    def _env(self) -> dict[str, str]:
        """The minimal environment of a worker (PASS_ENV, LC_*, and the spec's `env`)."""
        env = {k: v for k, v in os.environ.items() if k in PASS_ENV or k.startswith("LC_")}
        for k, v in self.cfg.env:
            if v is True:
                if k in os.environ:
                    env[k] = os.environ[k]
            else:
                env[k] = str(v)
        for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(k, "1")  # thread pools reserve address space the limit would count
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env

    def start(self) -> tuple[str, bool] | None:
        """Start the process and load the user's module; returns None, or a load error message
        and whether trying again may help (a timeout or a crash, not an error of the module)."""
        self._stderr.seek(0)
        self._stderr.truncate()
        self._buf = b""
        self.starts += 1
        self.proc = subprocess.Popen(
            [sys.executable, "-u", WORKER_SCRIPT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=self._env(),
            start_new_session=True,  # Ctrl-C in the terminal stops the parent, not mid-call workers
        )
        hello = {
            "source": self.cfg.source,
            "filename": self.cfg.filename,
            "function": self.cfg.function,
            "memory_mb": self.cfg.memory_mb,
            "memory_required": self.cfg.memory_required,
            "sys_path": list(self.cfg.sys_path),
        }
        try:
            self._send(hello)
            reply = self._recv(time.monotonic() + self._load_timeout)
        except _CallFailed as e:
            self.kill()
            return f"the grader module did not load: {e}", True
        if not reply.get("ready"):
            self.kill()
            return f"the grader module did not load: {reply.get('error')}", False
        self.warning = reply.get("warning")
        return None

    @property
    def _load_timeout(self) -> float:
        return max(self.cfg.load_timeout, self.cfg.timeout)

    def call(self, sample: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
        self._send({"sample": sample, "item": item})
        return self._recv(time.monotonic() + self.cfg.timeout, timeout_msg=True)

    def _send(self, obj: dict[str, Any]) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        try:
            data = (json.dumps(obj, ensure_ascii=False, default=str) + "\n").encode("utf-8")
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise _CallFailed(self._crash_message()) from None

    def _recv(self, deadline: float, timeout_msg: bool = False) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                limit = self.cfg.timeout if timeout_msg else self._load_timeout
                raise _CallFailed(f"timed out after {limit:g} s (worker killed)")
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            data = os.read(fd, 1 << 16)
            if not data:
                raise _CallFailed(self._crash_message())
            self._buf += data
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def _crash_message(self) -> str:
        code = None
        if self.proc is not None:
            try:
                code = self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        self._stderr.seek(0)
        tail = self._stderr.read().decode("utf-8", "replace").strip().splitlines()[-3:]
        how = f"exit code {code}" if code is not None and code >= 0 else f"signal {-(code or 0)}"
        last = f": {' | '.join(tail)[-300:]}" if tail else ""
        return f"worker crashed ({how}){last}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        p, self.proc = self.proc, None
        if p is None:
            return
        for f in (p.stdin, p.stdout):
            try:
                if f:
                    f.close()
            except OSError:
                pass
        if p.poll() is None:
            p.kill()
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def _kill_all(workers: list[_Worker]) -> None:
    for w in workers:
        w.kill()


class WorkerPool:
    """A fixed set of worker processes driven by as many threads (works under any event loop)."""

    def __init__(self, cfg: PythonGraderConfig):
        self.cfg = cfg
        self._workers = [_Worker(cfg) for _ in range(cfg.workers)]
        self._idle: queue.Queue[_Worker] = queue.Queue()
        for w in self._workers:
            self._idle.put(w)
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self.load_error: str | None = None  # a module that fails to load fails every call
        self.lost = 0  # workers killed by a timeout or lost to a crash (replaced on next use)
        self.load_retries = 0  # loads tried again after a timeout or crash
        self._warned = False
        self._finalizer = weakref.finalize(self, _kill_all, self._workers)

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    self.cfg.workers, thread_name_prefix="iro-python-grader"
                )
            return self._executor

    def call(self, sample: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
        """Blocking: one grade call on an idle worker; never raises for the user's failures."""
        if self.load_error:
            return {"error": self.load_error}
        w = self._idle.get()
        try:
            if not w.alive:
                for attempt in range(LOAD_RETRIES + 1):
                    failed = w.start()
                    if failed is None:
                        break
                    err, transient = failed
                    if not transient or attempt == LOAD_RETRIES:
                        self.load_error = err
                        return {"error": err}
                    with self._lock:
                        self.load_retries += 1
                if w.warning and not self._warned:
                    self._warned = True
                    log.warning("warning: python grader: %s", w.warning)
            return w.call(sample, item)
        except _CallFailed as e:
            with self._lock:
                self.lost += 1
            return {"error": str(e)}
        finally:
            self._idle.put(w)

    @property
    def restarts(self) -> int:
        """Workers replaced after a timeout or crash."""
        return sum(max(0, w.starts - 1) for w in self._workers)

    async def map(self, pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[dict]:
        loop = asyncio.get_running_loop()
        pool = self._pool()
        futs = [loop.run_in_executor(pool, self.call, s, it) for s, it in pairs]
        return list(await asyncio.gather(*futs))

    def close(self) -> None:
        with self._lock:
            ex, self._executor = self._executor, None
        if ex is not None:
            ex.shutdown(wait=True, cancel_futures=True)
        _kill_all(self._workers)


def memory_limit_problem() -> str | None:
    """Why the workers' address-space limit cannot be set on this platform, or None."""
    try:
        import resource
    except ImportError:
        return "this platform has no resource module"
    if not hasattr(resource, "RLIMIT_AS"):
        return "this platform has no RLIMIT_AS"
    return None


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _read_env(r: SpecReader) -> tuple[tuple[str, str | bool], ...]:
    """The spec's `env`: {NAME: "value"} sets a variable, {NAME: true} passes the run's own."""
    out: list[tuple[str, str | bool]] = []
    for k, v in r.mapping("env").items():
        r.check("env", isinstance(k, str) and bool(_ENV_NAME.fullmatch(k)),
                f"'{k}' is not an environment variable name")  # fmt: skip
        r.check("env", v is True or isinstance(v, str),
                f"env.{k} must be a string (the value) or true (the run's own value)")  # fmt: skip
        out.append((k, v))
    return tuple(out)


def _defines(source: str, function: str) -> bool:
    """True when the module's top level binds `function` (def, assignment or import)."""
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name == function:
                return True
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == function for t in targets):
                return True
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            if any((a.asname or a.name.split(".")[0]) == function for a in node.names):
                return True
    return False


class PythonGrader(BaseGrader):
    type_name = "python"

    def __init__(self, *, config: PythonGraderConfig, **base: Any):
        super().__init__(**base)
        self.config = config
        self.pool = WorkerPool(config)

    @classmethod
    def from_spec(cls, spec: dict[str, Any], ctx: GraderContext) -> PythonGrader:
        r = SpecReader(spec, ctx.label(str(spec.get("name", spec.get("type")))))
        r.raw("type")
        name, error_score = read_common(r)
        source = r.text("source", None)
        file = r.text("file", None)
        if (source is None) == (file is None):
            raise r.error("source", "give exactly one of 'source' (code) or 'file' (a .py path)")
        sys_path: tuple[str, ...] = ()
        if file is not None:
            path = Path(file).expanduser()
            if not path.is_absolute():
                path = ctx.base_dir / path
            try:
                source = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                why = getattr(e, "strerror", None) or str(e)
                raise r.error("file", f"cannot read {path}: {why}") from None
            filename, sys_path = str(path.resolve()), (str(path.resolve().parent),)
        else:
            filename = f"<grader {name}>"
        assert source is not None
        function = r.text("function", "grade")
        r.check("function", function.isidentifier(), f"'{function}' is not a Python name")
        key = "file" if file is not None else "source"
        try:
            compile(source, filename, "exec")
        except SyntaxError as e:
            raise r.error(key, f"python syntax error at line {e.lineno}: {e.msg}") from None
        r.check(key, _defines(source, function), f"no top-level function '{function}'")
        timeout = r.number("timeout", 10.0, lo=0.0, lo_open=True)
        load_timeout = r.number("load_timeout", LOAD_TIMEOUT_S, lo=0.0, lo_open=True)
        if "memory_limit_mb" in spec and spec["memory_limit_mb"] is None:
            memory = r.raw("memory_limit_mb")  # null: no limit (e.g. code that imports torch)
        else:
            memory = r.integer("memory_limit_mb", 1024, lo=32)
        problem = memory_limit_problem() if memory is not None else None
        if problem is not None:
            if "memory_limit_mb" in spec:
                raise r.error(
                    "memory_limit_mb", f"cannot limit the workers' memory: {problem}",
                    "set it to null to run the grader without a limit",
                )  # fmt: skip
            memory = None
            warning = f"{r.label}: runs without a memory limit: {problem}"
            r.notes.append(warning)
            log.warning("warning: %s", warning)
        workers = r.integer("workers", DEFAULT_WORKERS, lo=1)
        env = _read_env(r) if "env" in spec else ()
        norm = r.finish(
            ignored={
                "image_tag": "OpenAI's sandbox image; the code runs in this machine's Python "
                "(its installed packages)"
            }
        )
        config = PythonGraderConfig(
            source=source,
            filename=filename,
            function=function,
            timeout=timeout,
            memory_mb=memory,
            workers=workers,
            sys_path=sys_path,
            env=env,
            load_timeout=load_timeout,
            memory_required="memory_limit_mb" in spec,
        )
        return cls(
            config=config,
            name=name,
            spec=norm,
            label=r.label,
            notes=r.notes,
            error_score=error_score,
            hash_extra={"source": source},  # the file's content, not just its path
            hash_exclude=("workers", "load_timeout"),
        )

    async def _grade(
        self, samples: list[dict[str, Any]], items: list[dict[str, Any]]
    ) -> list[Grade]:
        replies = await self.pool.map(list(zip(samples, items, strict=True)))
        return [
            Grade(score=r["score"]) if "score" in r else self.failed(str(r.get("error")))
            for r in replies
        ]

    def close(self) -> None:
        self.pool.close()
