"""vLLM for real, on CPU: the `vllm` provider on the offline engine (token-exact continuation,
seeds, one engine call for concurrent searches, scoring, a run end to end), the openai provider
against vLLM's own server (the probe finds token-ID prompts and `n`; a search sends one request per
beam), and the bad inputs (no vLLM in that Python, a model vLLM cannot load) as one line."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

from iro_blackbox.dataset import Example
from iro_blackbox.errors import ConfigError, ModelNotFoundError
from iro_blackbox.params import SamplingParams
from iro_blackbox.providers.base import Extend, TokenHandle
from iro_blackbox.search import SearchParams, cbs

pytestmark = pytest.mark.slow

COUNT = [{"role": "user", "content": "Count from 1 to 10, separated by commas."}]
PROMPTS = [
    [{"role": "user", "content": "Write one sentence about the sea."}],
    [{"role": "user", "content": "Write one sentence about a forest."}],
    "Once upon a time",
]


def test_vllm_provider_continues_token_exact_and_seeded(vllm_provider):
    p = vllm_provider
    sp = SamplingParams(temperature=0.0)

    async def go():
        first = (await p.extend([Extend(COUNT, "1, 2, 3, 4,", n=1, max_tokens=4, params=sp)]))[0][0]
        h = first.handle
        assert isinstance(h, TokenHandle) and h.response_text == "1, 2, 3, 4," + first.text
        # continuing from the handle = continuing the whole text greedily in one go
        nxt = (await p.extend([Extend(COUNT, h.response_text, 1, 4, sp, handle=h)]))[0][0]
        whole = (await p.extend([Extend(COUNT, "1, 2, 3, 4,", 1, 8, sp)]))[0][0]
        return first, nxt, whole

    first, nxt, whole = asyncio.run(go())
    assert first.text.startswith(" 5,") and first.finish_reason == "length"
    assert first.text + nxt.text == whole.text
    assert first.tokens + nxt.tokens == whole.tokens

    seeded = SamplingParams(temperature=1.0, seed=11)

    async def sample(index):
        r = await p.extend([Extend(PROMPTS[0], "", n=3, max_tokens=8, params=seeded,
                                   sample_index=index)])  # fmt: skip
        return [c.text for c in r[0]]

    a, b, c = asyncio.run(sample(0)), asyncio.run(sample(0)), asyncio.run(sample(3))
    assert a == b and len(set(a)) > 1 and a != c  # same seed -> same samples; others differ
    # sample j does not depend on the request it came in: samples 1..2 of a call from index 1
    assert asyncio.run(sample(1))[:2] == a[1:]


def test_concurrent_searches_share_one_engine_call_and_scoring(vllm_provider):
    p = vllm_provider
    sp = SamplingParams(seed=2)

    async def go():
        before = p.calls
        rows = await asyncio.gather(*[
            p.extend([Extend(pr, "", n=2, max_tokens=6, params=sp)]) for pr in PROMPTS
        ])  # fmt: skip
        return p.calls - before, rows

    calls, rows = asyncio.run(go())
    assert calls == 1 and all(len(r[0]) == 2 and r[0][0].text for r in rows)
    lps = asyncio.run(p.score(COUNT, "1, 2, 3"))
    assert len(lps) == p.count_tokens("1, 2, 3") and all(x <= 0 for x in lps)
    assert sum(lps) > -10  # the model finds counting likely


def test_cbs_and_a_run_on_the_vllm_provider(vllm_provider, tmp_path):
    from iro_blackbox.iro.config import AlignConfig
    from iro_blackbox.iro.loop import AlignLoop
    from iro_blackbox.store import open_store

    params = SearchParams(w=2, k=2, l=4, max_tokens=12, sampling=SamplingParams(seed=4))
    exs = [Example(id=f"p{i}", prompt=pr) for i, pr in enumerate(PROMPTS)]
    before = vllm_provider.calls
    res = asyncio.run(cbs(exs, vllm_provider, None, params))
    steps = vllm_provider.calls - before
    assert all(r.best.text.strip() for r in res)
    assert steps <= 3  # every beam of every prompt extended together: one call per step

    train, evals = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    train.write_text("".join(json.dumps({"id": f"t{i}", "prompt": f"Say one thing about {w}."})
                             + "\n" for i, w in enumerate(["rain", "queues", "mondays"])))  # fmt: skip
    evals.write_text(json.dumps({"id": "e0", "prompt": "Say one thing about traffic."}) + "\n")
    cfg = AlignConfig.from_dict(dict(
        data=str(train), eval=str(evals), provider="vllm", iterations=1, w=2, k=2, l=8,
        max_tokens=16, value_epochs=1, seed=3, out=str(tmp_path / "run"),
    ))  # fmt: skip
    loop = AlignLoop(cfg, open_store(str(tmp_path / "s.db")), provider=vllm_provider,
                     progress=False)  # fmt: skip
    out = asyncio.run(loop.run())
    assert [i["stage"] for i in out.iterations] == ["done", "done"]
    assert out.metrics["iro_mean_reward"] is not None


def test_openai_provider_on_vllms_server_uses_token_ids_and_n(vllm_server, store):
    from iro_blackbox.providers.openai import OpenAIProvider

    p = OpenAIProvider("smollm2-135m-instruct", base_url=vllm_server.base_url, store=store,
                       tokenizer="smollm2-135m-instruct")  # fmt: skip
    params = SearchParams(w=2, k=3, l=4, max_tokens=8, sampling=SamplingParams(seed=4))

    async def go():
        try:
            line = await p.prepare(needs_continuation=True)
            before = p.stats.requests
            exs = [Example(id=f"p{i}", prompt=pr) for i, pr in enumerate(PROMPTS[:2])]
            res = await cbs(exs, p, None, params)
            return line, res, p.stats.requests - before
        finally:
            await p.aclose()

    line, res, sent = asyncio.run(go())
    caps = p.describe()["capabilities"]
    modes = caps["modes"]
    assert modes["token-ids"]["works"] and modes["chat-continue"]["works"], modes
    assert caps["choice"] == "token-ids" and "api mode token-ids" in line
    assert caps["n"] is True and caps["seed"] is True
    assert all(r.best.text.strip() for r in res)
    # n honoured: one request per beam per step (2 prompts x <= 2 steps x W = 2), not per sample
    assert sent <= 2 * 2 * params.w


def test_no_vllm_in_that_python_is_one_line(tmp_path):
    from iro_blackbox.providers.vllm import VLLMProvider

    p = VLLMProvider("smollm2-135m-instruct", python=sys.executable, log_dir=tmp_path)
    with pytest.raises(ConfigError, match="vLLM is not installed in .*pip install vllm"):
        asyncio.run(p.prepare())
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"hi {i}"}) + "\n" for i in range(4)))
    r = subprocess.run(
        [sys.executable, "-m", "iro_blackbox.cli.app", "align", str(data), "--provider", "vllm",
         "--vllm-python", sys.executable, "--db", str(tmp_path / "s.db"), "-q"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode != 0 and len(lines) == 1 and "vLLM is not installed" in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    from _fx_pg import sql_rows

    assert sql_rows(str(tmp_path / "s.db"), "SELECT count(*) FROM runs") == [
        (0,)
    ]  # nothing written


def test_a_model_vllm_cannot_load_is_one_line(vllm_python, tmp_path):
    """A transformers folder of an architecture vLLM does not implement (a tiny random llama
    renamed), refused when the engine starts, before any run does work."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from iro_blackbox.providers.hf.loading import plain_model_folder
    from iro_blackbox.providers.vllm import VLLMProvider

    cfg = LlamaConfig(vocab_size=49152, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, head_dim=16)  # fmt: skip
    folder = tmp_path / "tiny"
    LlamaForCausalLM(cfg).save_pretrained(folder)
    conf = json.loads((folder / "config.json").read_text())
    conf["architectures"] = ["MadeUpForCausalLM"]
    (folder / "config.json").write_text(json.dumps(conf))
    tok_src = plain_model_folder("smollm2-135m-instruct")
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        (folder / name).write_bytes((__import__("pathlib").Path(tok_src) / name).read_bytes())
    p = VLLMProvider(str(folder), python=vllm_python, dtype="float32", log_dir=tmp_path)
    with pytest.raises(ModelNotFoundError) as e:
        asyncio.run(p.prepare())
    msg = str(e.value)
    assert "vLLM cannot load model" in msg and "\n" not in msg and "log:" in msg
    assert "MadeUpForCausalLM" in msg
    assert not p.engine.alive


# Prompts whose prefill does not fit one engine step: vLLM's CPU build schedules at most 4096
# tokens a step (max_num_batched_tokens, in its log), so with chunked prefill one of them would be
# prefilled in pieces, and the token sampled after a partial piece of a seeded request discarded.
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
LONG = [[{"role": "user", "content": f"Story {i}: " + " ".join(WORDS[(i + j) % 12]
                                                             for j in range(150))}]
        for i in range(24)]  # fmt: skip
STEP_TOKENS = 4096


def long_batch(p, prompts=LONG):
    sp = SamplingParams(temperature=1.0, seed=5)
    reqs = [Extend(pr, "", n=1, max_tokens=4, params=sp) for pr in prompts]
    return [r[0].text for r in asyncio.run(p.extend(reqs))]


def test_seeded_samples_of_prompts_past_one_steps_token_budget(vllm_provider):
    """Whole prompts per step (chunked prefill off on CPU): the engine lives, and a seeded sample
    is the same drawn in a big batch or on its own."""
    p = vllm_provider
    assert p.describe()["engine"]["chunked_prefill"] is False
    assert sum(p.count_prompt(pr) for pr in LONG) > STEP_TOKENS
    texts = long_batch(p)
    assert all(texts) and len(set(texts)) > 1
    assert long_batch(p, LONG[5:8]) == texts[5:8]
    assert p.engine.alive


def test_an_engine_failure_names_its_root_cause_and_log(vllm_python, tmp_path):
    """With chunked prefill on, vLLM's CPU worker dies on a seeded request ("CPU Generator does
    not use offset"): the error carries that line and the log's path, not only EngineDeadError.
    One prompt longer than a step's token budget is prefilled in pieces whatever the timing of
    the requests (a batch of shorter prompts is split only when they land in the same step)."""
    from iro_blackbox.errors import ProviderError
    from iro_blackbox.providers.vllm import VLLMProvider

    p = VLLMProvider("smollm2-135m-instruct", python=vllm_python, dtype="float32",
                     max_model_len=8192, chunked_prefill=True, log_dir=tmp_path)  # fmt: skip
    one = [[{"role": "user", "content": " ".join(WORDS[j % 12] for j in range(4000))}]]
    try:
        asyncio.run(p.prepare())
        assert p.count_prompt(one[0]) > STEP_TOKENS
        with pytest.raises(ProviderError) as e:
            long_batch(p, one)
    finally:
        asyncio.run(p.aclose())
    msg = str(e.value)
    assert "\n" not in msg and "EngineDeadError" in msg, msg
    assert "the engine's error: RuntimeError: CPU Generator does not use offset" in msg, msg
    assert str(p.engine.log_path) in msg and p.engine.log_path.parent == tmp_path
    assert "stack trace (above)" not in msg and "the engine stopped" in msg


def test_the_engine_and_its_workers_end_when_the_process_that_started_them_is_killed(
    vllm_python, tmp_path
):
    """A SIGKILLed (or SIGTERMed) iro-bb cannot close its engine: the engine, busy with a batch
    nobody will read, notices its parent is gone and ends its whole process group at once (vLLM's
    engine core and worker hold gigabytes), instead of when the batch is done."""
    import os
    import signal
    import time

    script = (
        "import asyncio, sys, time\n"
        "from iro_blackbox.providers.vllm import VLLMProvider\n"
        f"p = VLLMProvider('smollm2-135m-instruct', python={vllm_python!r}, dtype='float32',\n"
        f"                 max_model_len=1024, log_dir={str(tmp_path)!r})\n"
        "asyncio.run(p.prepare())\n"
        "import threading\n"
        "s = {'prompt': 0, 'temperature': 1.0, 'top_p': 1.0, 'top_k': 0, 'max_tokens': 500,\n"
        "     'stop': None, 'logprobs': False}\n"
        "work = {'op': 'generate', 'prompts': [[504, 3243, 314, 260]],\n"
        "        'samples': [{**s, 'seed': i} for i in range(2000)]}\n"  # tens of minutes here
        "threading.Thread(target=p.engine.call, args=(work,), daemon=True).start()\n"
        "time.sleep(5)\n"
        "print(p.engine._proc.pid, flush=True)\n"
        "time.sleep(3600)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        group = int(child.stdout.readline())
        os.killpg(group, 0)  # the engine's group is alive
    finally:
        child.kill()
        child.wait()

    def alive() -> bool:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        return True

    deadline = time.monotonic() + 120  # a condition waited for, generously: not a speed test
    while alive() and time.monotonic() < deadline:
        time.sleep(0.5)
    if alive():
        os.killpg(group, signal.SIGKILL)
        pytest.fail("the vLLM engine's processes outlived the process that started them")
