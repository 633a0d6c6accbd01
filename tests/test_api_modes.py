"""Every way an API can continue an answer, verified against the real llama-cpp-python server:
directly (its /v1/completions continues; its chat answers a trailing assistant message as a new
turn; it refuses token-id prompts), and through fronts that speak each hosted dialect over it
(tests/_fx_dialects.py). Each working mode runs a small chunk-level beam search end to end."""

from __future__ import annotations

import asyncio
import json

import pytest

from iro_blackbox.dataset import Example
from iro_blackbox.errors import BudgetExceeded, ConfigError
from iro_blackbox.params import SamplingParams
from iro_blackbox.providers.openai import OpenAIProvider
from iro_blackbox.search import SearchParams, cbs

pytestmark = pytest.mark.slow

PROMPTS = [
    [{"role": "user", "content": "Write one sentence about the sea."}],
    [{"role": "user", "content": "Write one sentence about a forest."}],
]
PARAMS = SearchParams(w=2, k=2, l=4, max_tokens=8, sampling=SamplingParams(seed=4))


def run_cbs(provider):
    async def go():
        try:
            line = await provider.prepare(needs_continuation=True)
            exs = [Example(id=f"p{i}", prompt=p) for i, p in enumerate(PROMPTS)]
            return line, await cbs(exs, provider, None, PARAMS)
        finally:
            await provider.aclose()

    return asyncio.run(go())


def test_llama_server_is_probed_not_trusted(llama_proxy, store):
    p = OpenAIProvider(
        "smollm2-135m-instruct", base_url=llama_proxy.base_url, store=store,
        tokenizer="smollm2-135m-instruct",
    )  # fmt: skip
    line, res = run_cbs(p)
    caps = p.describe()["capabilities"]
    modes = caps["modes"]
    assert modes["completions"]["works"] and "' 5," in modes["completions"]["evidence"]
    # a trailing assistant message comes back as a new turn; token-id prompts are refused
    assert not modes["chat-prefill"]["works"] and "restarted" in modes["chat-prefill"]["evidence"]
    assert not modes["token-ids"]["works"] and "refused" in modes["token-ids"]["evidence"]
    assert caps["choice"] == "completions" and caps["seed"] is True and caps["n"] is False
    assert "api mode completions" in line
    assert all(r.best.text.strip() for r in res)
    bodies = [
        r.body
        for r in llama_proxy.received
        if r.path.endswith("/v1/completions") and isinstance(r.body.get("prompt"), str)
    ]
    # the search continued the answers: prompts end with a beam's text, template rendered
    assert any(b["prompt"].endswith(r.best.chunks[0]) for b in bodies for r in res)


DIALECT_CASES = [
    # (front, model, tokenizer, expected mode, a field the dialect puts on the last message)
    ("deepseek", "deepseek-chat", None, "chat-prefix", ("prefix", True)),
    ("mistral", "mistral-small-latest", None, "chat-prefix", ("prefix", True)),
    ("qwen", "qwen-plus", None, "chat-partial", ("partial", True)),
    ("prefill", "llama-3-8b", None, "chat-prefill", None),
    ("notemp", "o4-mini-like", None, "chat-prefill", None),
    ("vllm", "Qwen/Qwen2.5-7B-Instruct", "smollm2-135m-instruct", "token-ids", None),
]


@pytest.mark.parametrize(
    "front,model,tok,mode,field", DIALECT_CASES, ids=[c[0] for c in DIALECT_CASES]
)
def test_each_dialect_is_verified_and_runs_a_search(
    dialect_front, store, front, model, tok, mode, field
):
    f = dialect_front(front)
    p = OpenAIProvider(model, base_url=f.base_url, store=store, tokenizer=tok)
    line, res = run_cbs(p)
    caps = p.describe()["capabilities"]
    assert caps["choice"] == mode, caps["modes"]
    assert f"api mode {mode}" in line and all(r.best.text.strip() for r in res)
    continued = [
        b
        for _, b in f.received
        if (b.get("max_tokens") or b.get("max_completion_tokens")) == PARAMS.l
    ]
    if mode == "token-ids":
        assert all(isinstance(b["prompt"], list) for b in continued)
        # token exact: a beam's next request starts with the exact ids of its previous one
        ids = [tuple(b["prompt"]) for b in continued]
        assert any(len(b) > len(a) and b[: len(a)] == a for a in ids for b in ids)
        assert caps["completions_n"] is True  # one request per beam and step, not per sample
    else:
        steps = [b for b in continued if b["messages"][-1]["role"] == "assistant"]
        assert steps, "no request continued an answer"
        if field is not None:
            k, v = field
            assert all(b["messages"][-1].get(k) == v for b in steps)
    if front == "notemp":
        assert caps["temperature"] is False and "temperature" in line
        assert all("temperature" not in b for b in continued)
    # verified modes only: the others failed with their evidence
    others = {m: v for m, v in caps["modes"].items() if m not in (mode, "chat")}
    assert others and all(v["evidence"] for v in others.values())


@pytest.mark.parametrize("front,needle", [("newturn", "restarted"), ("refuse", "refused: 400")])
def test_no_continuation_is_refused_with_the_fix(dialect_front, store, front, needle):
    f = dialect_front(front)
    p = OpenAIProvider("gpt-4o-like", base_url=f.base_url, store=store)
    with pytest.raises(ConfigError) as e:
        run_cbs(p)
    msg = str(e.value)
    assert "cannot continue a partial answer" in msg and needle in msg
    assert "--policy rerank" in msg
    probes = f.count()
    # the probe is stored: a second attempt refuses with no request at all
    p2 = OpenAIProvider("gpt-4o-like", base_url=f.base_url, store=store)
    with pytest.raises(ConfigError, match="cannot continue a partial answer"):
        run_cbs(p2)
    assert f.count() == probes
    # a forced whole-answer mode is refused before even a probe
    p3 = OpenAIProvider("other-model", base_url=f.base_url, store=store, mode="chat")
    with pytest.raises(ConfigError, match="--api-mode chat gives whole answers only"):
        run_cbs(p3)
    assert f.count() == probes


def test_forced_mode_the_endpoint_fails_is_one_clear_line(dialect_front, store):
    f = dialect_front("newturn")
    p = OpenAIProvider("m", base_url=f.base_url, store=store, mode="chat-prefill")
    with pytest.raises(ConfigError, match=r"--api-mode chat-prefill does not work at .*restarted"):
        run_cbs(p)
    gen = [b for _, b in f.received if b.get("max_tokens") == PARAMS.l]
    assert gen == []  # only the probe's requests were sent


# -- align through the API: refusal, rerank, budgets --------------------------------------------
def _data(tmp_path):
    train, evals = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    train.write_text(
        "".join(
            json.dumps({"id": f"t{i}", "prompt": f"Write one sentence about a {w}."}) + "\n"
            for i, w in enumerate(["rainy Monday", "queue", "delayed train"])
        )  # fmt: skip
    )
    evals.write_text(
        "".join(
            json.dumps({"id": f"e{i}", "prompt": f"Write one sentence about {w}."}) + "\n"
            for i, w in enumerate(["laundry", "a broken umbrella"])
        )  # fmt: skip
    )
    return train, evals


def api_opts(base_url, **kw):
    opts = dict(
        provider="openai", base_url=base_url, model="smollm2-135m-instruct", iterations=1,
        w=2, k=2, l=8, max_tokens=16, value_epochs=1, seed=5, concurrency=4, progress=False,
    )  # fmt: skip
    return {**opts, **kw}


def test_align_refuses_before_any_request(llama_proxy, tmp_path):
    from iro_blackbox import align

    train, evals = _data(tmp_path)
    with pytest.raises(ConfigError, match="whole answers only"):
        align(train, eval=str(evals), db=str(tmp_path / "a.db"),
              **api_opts(llama_proxy.base_url, api_mode="chat"))  # fmt: skip
    assert llama_proxy.count() == 0
    # a dry run prints the plan and sends nothing either
    res = align(train, eval=str(evals), db=str(tmp_path / "a.db"), dry_run=True,
                **api_opts(llama_proxy.base_url))  # fmt: skip
    assert res.estimate.total.requests > 0 and llama_proxy.count() == 0


def test_budget_hit_mid_run_then_resume_repeats_no_request(llama_proxy, tmp_path):
    """The same run twice: uninterrupted, and stopped by --max-requests then re-run with a
    higher limit. The second sends exactly as many requests in all (none twice)."""
    from iro_blackbox import align

    train, evals = _data(tmp_path)
    opts = api_opts(llama_proxy.base_url)
    full = align(
        train, eval=str(evals), db=str(tmp_path / "full.db"), out=str(tmp_path / "f"), **opts
    )
    total = llama_proxy.count()
    assert full.spent["requests"] == total
    asked = sorted(r.raw for r in llama_proxy.received)
    llama_proxy.received.clear()
    db = str(tmp_path / "cut.db")
    with pytest.raises(BudgetExceeded, match="--max-requests 30"):
        align(train, eval=str(evals), db=db, out=str(tmp_path / "c"), max_requests=30, **opts)
    assert 0 < llama_proxy.count() <= 30
    from iro_blackbox.store import RunRepository, open_store

    repo = RunRepository(open_store(db))
    run = repo.get(full.name)
    assert run.status == "stopped" and run.spent["requests"] == llama_proxy.count()
    res = align(train, eval=str(evals), db=db, out=str(tmp_path / "c"), max_requests=10_000, **opts)
    assert llama_proxy.count() == total  # everything paid once: nothing asked twice
    assert res.spent["requests"] == total and res.iterations[-1]["stage"] == "done"
    # exactly the requests of the uninterrupted run (the server's text may differ between two
    # runs: llama.cpp reuses its prompt cache, which moves the floating point a little)
    assert sorted(r.raw for r in llama_proxy.received) == asked


def test_rerank_policy_on_a_whole_answer_endpoint(dialect_front, tmp_path):
    """--policy rerank on an endpoint that cannot continue answers: the run goes through, and
    eval compares it with the base policy and Best-of-N."""
    from iro_blackbox import align
    from iro_blackbox.iro.evaluate import evaluate

    f = dialect_front("newturn")
    train, evals = _data(tmp_path)
    db = str(tmp_path / "r.db")
    opts = api_opts(f.base_url, policy="rerank", iterations=2, guided_rollouts=2)
    res = align(train, eval=str(evals), db=db, out=str(tmp_path / "o"), **opts)
    assert [i["stage"] for i in res.iterations] == ["done", "done", "done"]
    gen = [b for _, b in f.received if b.get("max_tokens") == 16]  # the run's, not the probe's
    assert gen and all(b["messages"][-1]["role"] == "user" for b in gen)  # whole answers only
    from iro_blackbox.store import RunRepository, open_store

    repo = RunRepository(open_store(db))
    run = repo.find(res.name)
    t2 = repo.rollouts(run.id, 2, "train", "rerank")
    assert len(t2) == 3 * 2  # 1 search per prompt (2 rollouts / W=2), its W best answers kept
    ev = repo.rollouts(run.id, 1, "eval", "rerank")
    assert len(ev) == 2 * 4  # N = W*K answers per held-out prompt
    out = evaluate(res.name, evals, db=db, progress=False, methods=["base", "bon", "iro"])
    m = out["methods"]
    assert m["bon"]["mean_reward"] >= m["base"]["mean_reward"]
    assert m["iro"]["grader_pick_reward"] >= m["iro"]["mean_reward"]


def test_generate_and_serve_keep_to_their_own_budget(dialect_front, tmp_path):
    """A run's later use has its own limits: generate stops at --max-requests with its finished
    answers stored and continues when re-run with more; serve answers 429 insufficient_quota
    once its budget is spent and keeps serving what needs no request."""
    import openai
    from _fx_jobs import ServerThread

    from iro_blackbox import align, load_run
    from iro_blackbox.iro.generate import generate_file
    from iro_blackbox.providers.budget import Budget

    f = dialect_front("newturn")
    train, evals = _data(tmp_path)
    db = str(tmp_path / "g.db")
    res = align(train, eval=str(evals), db=db, out=str(tmp_path / "o"),
                **api_opts(f.base_url, policy="rerank"))  # fmt: skip
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(
        "".join(
            json.dumps({"id": f"p{i}", "prompt": f"Say something about {w}."}) + "\n"
            for i, w in enumerate(["tea", "snow", "maps", "owls"])
        )  # fmt: skip
    )
    import sqlite3

    db2 = str(tmp_path / "g2.db")
    with sqlite3.connect(db) as src, sqlite3.connect(db2) as dst:
        src.backup(dst)  # the same run, for an uninterrupted generate to count against
    f.received.clear()
    generate_file(res.name, prompts, tmp_path / "full.jsonl", db=db2, progress=False)
    full = len(f.received)
    assert full >= 4 and full % 4 == 0  # every prompt asks the same
    out = tmp_path / "out.jsonl"
    f.received.clear()
    with pytest.raises(BudgetExceeded, match="--max-requests 2"):
        generate_file(res.name, prompts, out, db=db, progress=False, budget=Budget(max_requests=2))
    first = len(f.received)
    assert 0 < first <= 2 and not out.exists()
    done = generate_file(res.name, prompts, out, db=db, progress=False,
                         budget=Budget(max_requests=full - first))  # fmt: skip
    assert len(f.received) == full  # nothing asked twice
    assert done["generated"] + done["reused"] == 4 and done["spent"]["requests"] == full - first
    assert out.read_text() == (tmp_path / "full.jsonl").read_text()

    policy = load_run(res.name, db=db, budget=Budget(max_requests=full // 4))
    with ServerThread(policy) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0, timeout=120)
        ok = client.completions.create(model="iro-test", prompt="Say something about rivers.",
                                       max_tokens=8, seed=1)  # fmt: skip
        assert ok.choices[0].text
        with pytest.raises(openai.RateLimitError, match=f"max-requests {full // 4}"):
            client.completions.create(model="iro-test", prompt="Say something about hills.",
                                      max_tokens=8, seed=1)  # fmt: skip
        again = client.completions.create(model="iro-test", prompt="Say something about rivers.",
                                          max_tokens=8, seed=1)  # fmt: skip
        assert again.choices[0].text == ok.choices[0].text  # replayed from the cache: no request
