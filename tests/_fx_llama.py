"""A real OpenAI-compatible server: llama-cpp-python's server serving the shipped SmolLM2 GGUF on
127.0.0.1, started once per test session (only by tests that ask for it).

A missing install fails the tests that need it, with the command that installs it: a skip would
let CI pass without ever running them."""

from __future__ import annotations

import importlib
import json
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

MODEL_ALIAS = "smollm2-135m-instruct"


@dataclass
class LlamaServer:
    base_url: str  # ends with /v1
    model: str
    proc: subprocess.Popen
    log: Path


SETUP_HINT = "run `bash scripts/setup.sh all` (it installs what the whole test suite needs)"


def require_module(name: str, what: str) -> None:
    """Fail (never skip) the test that needs `name` when it cannot be imported: one clear line
    saying what is missing and how to install it."""
    try:
        importlib.import_module(name)
    except ImportError as e:
        pytest.fail(
            f"{what} is not installed ({name} cannot be imported: {e}); {SETUP_HINT}",
            pytrace=False,
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    require_module(
        "llama_cpp.server", "llama-cpp-python[server] 0.3.36 (built portable, see scripts/setup.sh)"
    )
    from iro_blackbox.models import resolve_model

    rm = resolve_model(MODEL_ALIAS)
    gguf = str(Path(rm.path) / rm.gguf_file)
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        gguf,
        "--model_alias",
        MODEL_ALIAS,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--logits_all",
        "true",
        "--n_ctx",
        "2048",
        "--n_threads",
        "2",
        "--verbose",
        "false",
    ]
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 180
    while True:
        if proc.poll() is not None:
            raise RuntimeError(
                f"llama server exited with {proc.returncode}: {log.read_text()[-2000:]}"
            )
        try:
            with urllib.request.urlopen(base + "/models", timeout=2) as r:
                if r.status == 200 and json.load(r).get("data"):
                    break
        except OSError:
            pass
        if time.time() > deadline:
            proc.kill()
            raise RuntimeError(f"llama server did not start: {log.read_text()[-2000:]}")
        time.sleep(0.5)
    yield LlamaServer(base_url=base, model=MODEL_ALIAS, proc=proc, log=log)
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
