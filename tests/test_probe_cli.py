"""`iro-bb probe`: an endpoint that cannot be reached or answers nothing is an error (one line,
non-zero exit, nothing stored); what no answer showed prints as unknown; the checks that do not
depend on the tokenizer (whole answers, the chat-* modes, n, seed, temperature) are reused when
the same endpoint is probed with another tokenizer. Loopback servers of _fx_api."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

from _fx_api import FakeOpenAIServer

import iro_blackbox
from iro_blackbox.cli.app import main

SCRIPT = Path(sys.executable).parent / "iro-bb"
SRC = str(Path(iro_blackbox.__file__).resolve().parents[1])


def probes_stored(db: Path) -> int:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT count(*) FROM probes").fetchone()[0]
    finally:
        con.close()


def probe_script(*args: str) -> subprocess.CompletedProcess:
    assert SCRIPT.is_file(), f"the console script is not installed at {SCRIPT}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [str(SCRIPT), "probe", *args], capture_output=True, text=True, timeout=300, env=env
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_or_silent_endpoint_is_an_error_and_nothing_is_stored(tmp_path):
    db = tmp_path / "p.db"
    url = f"http://127.0.0.1:{free_port()}/v1"
    r = probe_script("--base-url", url, "--model", "m", "--db", str(db))
    assert r.returncode != 0 and "Traceback" not in r.stderr + r.stdout, r.stderr
    errors = [x for x in r.stderr.splitlines() if x.startswith("error")]
    assert len(errors) == 1 and url in errors[0] and "answered nothing" in errors[0], r.stderr
    assert "temperature accepted" not in r.stdout
    assert probes_stored(db) == 0

    srv = FakeOpenAIServer().start()  # up, but refusing every request
    try:
        srv.fail_next(*[("status", 404, {}, "no such route")] * 50)
        r = probe_script("--base-url", srv.base_url, "--model", "m", "--db", str(db))
        assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
        assert "answered nothing" in r.stderr and "no such route" in r.stderr
        assert probes_stored(db) == 0
    finally:
        srv.stop()


def test_chat_results_are_reused_across_tokenizers(tmp_path, tiny_lm_dir, capsys):
    chat_only = FakeOpenAIServer(completions=False).start()  # as OpenAI's chat models
    full = FakeOpenAIServer().start()
    try:
        db = str(tmp_path / "p.db")
        for srv in (chat_only, full):
            argv = ["probe", "--base-url", srv.base_url, "--model", "m", "--db", db]
            assert main(argv) == 0
            out = capsys.readouterr().out
            first = len(srv.received)
            assert first > 0
            assert main([*argv, "--tokenizer", str(tiny_lm_dir)]) == 0
            assert "auto picks" in capsys.readouterr().out
            again = srv.received[first:]
            # only the modes that render the chat template locally were asked again
            assert not any(r.path.endswith("/chat/completions") for r in again)
            assert all(r.path.endswith("/completions") for r in again)
            if srv is chat_only:
                assert "echo scoring: unknown" in out and "completions unknown" in out
                assert again == []  # /completions refused: nothing depends on the tokenizer
            else:
                assert again
    finally:
        chat_only.stop()
        full.stop()


def test_tokenizer_comes_from_a_model_file_folder_or_alias(tmp_path, tiny_lm_dir):
    """--model naming a local folder, .gguf file or alias (as llama.cpp's server names models)
    carries its tokenizer: a chat prompt goes through /completions with no --tokenizer."""
    import asyncio

    from iro_blackbox.params import SamplingParams
    from iro_blackbox.providers.base import Extend
    from iro_blackbox.providers.openai import OpenAIProvider

    gguf = tmp_path / "Some-Model.Q4.gguf"
    gguf.write_bytes(b"GGUF")
    assert OpenAIProvider(str(gguf)).tokenizer_spec == str(gguf)
    assert OpenAIProvider("smollm2-135m-instruct").tokenizer_spec == "smollm2-135m-instruct"
    assert OpenAIProvider("served-name").tokenizer_spec is None
    srv = FakeOpenAIServer().start()
    try:
        p = OpenAIProvider(str(tiny_lm_dir), base_url=srv.base_url, mode="completions")
        assert p.tokenizer_spec == str(tiny_lm_dir)
        chat = [{"role": "user", "content": "Say hi."}]

        async def go():
            try:
                return await p.extend([Extend(chat, max_tokens=2, params=SamplingParams(0.0))])
            finally:
                await p.aclose()

        (row,) = asyncio.run(go())
        assert row and row[0].text
        sent = [r.body["prompt"] for r in srv.received if r.path.endswith("/completions")]
        assert sent and all("Say hi." in x and x != "Say hi." for x in sent)  # the template
    finally:
        srv.stop()
