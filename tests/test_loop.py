"""The IRO loop end to end, fast: a recording fake provider, a grader of the test's own, a tiny
real value model (1-layer BERT with the MiniLM tokenizer, trained by the real trainer) and a real
SQLite store. The same loop runs on the real SmolLM2 in test_align.py."""

from __future__ import annotations

import asyncio
import json

import pytest
from _fx_search import FakeProvider, FnGrader

from iro_blackbox.errors import ConfigError
from iro_blackbox.executors.base import LocalExecutor
from iro_blackbox.iro.config import AlignConfig
from iro_blackbox.iro.loop import AlignLoop
from iro_blackbox.iro.trainer import DefaultValueTrainer
from iro_blackbox.registry import EXECUTORS
from iro_blackbox.store import RunRepository, open_store

TRAIN = [f"Say something about day {i}." for i in range(6)]
EVAL = [f"Say something about night {i}." for i in range(3)]


def good_words(sample: str, _item) -> float:
    words = sample.split()
    return sum(w in ("good", "happy", "sun") for w in words) - 0.5 * words.count("bad")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("loop-data")
    train, evals = d / "train.jsonl", d / "eval.jsonl"
    train.write_text(
        "".join(json.dumps({"id": f"t{i}", "prompt": p}) + "\n" for i, p in enumerate(TRAIN))
    )
    evals.write_text(
        "".join(json.dumps({"id": f"e{i}", "prompt": p}) + "\n" for i, p in enumerate(EVAL))
    )
    return train, evals


def config(files, tmp_path, backbone, name="fast") -> AlignConfig:
    train, evals = files
    return AlignConfig.from_dict(
        {
            "data": str(train),
            "eval": str(evals),
            "iterations": 2,
            "w": 2,
            "k": 2,
            "l": 4,
            "max_tokens": 8,
            "value_backbone": str(backbone),
            "value_epochs": 1,
            "seed": 3,
            "concurrency": 1,  # 4 prompts searched at once: a search of 6 takes two waves
            "run_name": name,
            "out": str(tmp_path / name),
        }
    )


class RecordingTrainer(DefaultValueTrainer):
    def __init__(self, cfg):
        super().__init__(cfg, progress=False)
        self.trained: list[int] = []
        self.loaded: list[str] = []

    def train(self, rollouts, *, t, warm_start, out_dir):
        self.trained.append(t)
        return super().train(rollouts, t=t, warm_start=warm_start, out_dir=out_dir)

    def load(self, path):
        self.loaded.append(path)
        return super().load(path)


class FailingProvider(FakeProvider):
    """The fake provider, failing at its `fail_at`-th extend call (0-based)."""

    def __init__(self, fail_at: int):
        super().__init__()
        self.fail_at = fail_at

    async def extend(self, requests):
        if len(self.calls) == self.fail_at:
            self.calls.append(list(requests))
            raise RuntimeError("injected failure in the middle of a search")
        return await super().extend(requests)


def run_loop(cfg, db, provider, trainer=None, on_progress=None):
    store = open_store(db)
    try:
        loop = AlignLoop(
            cfg,
            store,
            provider=provider,
            grader=FnGrader(good_words),
            trainer=trainer or RecordingTrainer(cfg),
            progress=False,
            on_progress=on_progress,
        )
        res = asyncio.run(loop.run())
        assert res.estimate is loop.plan.estimate  # the plan the pre-flight settled
        return res
    finally:
        store.close()


def stored_rollouts(db, name):
    store = open_store(db)
    repo = RunRepository(store)
    run = repo.find(name)
    rows = []
    for t, phase, method in [
        (0, "eval", "best_of_n"),
        (1, "train", "sample"),
        (1, "eval", "cbs"),
        (2, "train", "cbs"),
        (2, "eval", "cbs"),
    ]:
        for r in repo.rollouts(run.id, t, phase, method):
            rows.append((t, phase, method, r.example_id, r.search, r.idx, r.response, r.reward))
    store.close()
    return rows


@pytest.fixture(scope="module")
def reference(files, tmp_path_factory, tiny_bert_dir):
    """One uninterrupted 2-iteration run, and the provider call count at each stage's start."""
    tmp = tmp_path_factory.mktemp("ref")
    cfg = config(files, tmp, tiny_bert_dir)
    provider = FakeProvider()
    stages: dict[str, int] = {}
    trainer = RecordingTrainer(cfg)
    res = run_loop(
        cfg,
        str(tmp / "ref.db"),
        provider,
        trainer,
        on_progress=lambda p: stages.setdefault(p["stage"], len(provider.calls)),
    )
    return {"res": res, "db": str(tmp / "ref.db"), "provider": provider, "stages": stages,
            "trainer": trainer}  # fmt: skip


def test_two_iterations_store_every_step(reference, tiny_bert_dir):
    res, db = reference["res"], reference["db"]
    assert [(i["t"], i["stage"]) for i in res.iterations] == [(0, "done"), (1, "done"), (2, "done")]
    assert reference["trainer"].trained == [1, 2]
    rows = stored_rollouts(db, "fast")
    count = {}
    for t, phase, method, *_ in rows:
        count[(t, phase, method)] = count.get((t, phase, method), 0) + 1
    n = 2 * 2  # W*K
    assert count[(0, "eval", "best_of_n")] == len(EVAL) * n  # the base policy, N samples
    assert count[(1, "train", "sample")] == len(TRAIN) * n  # R = W*K samples per prompt
    # t = 2: ceil(R / W) = 2 guided searches per prompt, each its own `search` index
    searches = {(ex, s) for t, ph, m, ex, s, *_ in rows if (t, ph) == (2, "train")}
    assert {s for _, s in searches} == {0, 1} and len(searches) == 2 * len(TRAIN)
    assert all(r[7] is not None for r in rows)  # every rollout graded
    store = open_store(db)
    repo = RunRepository(store)
    run = repo.find("fast")
    assert run.status == "done" and run.metrics["iro_mean_reward"] is not None
    for t in (1, 2):  # the reweight step kept one candidate per prompt
        kept = [
            r
            for r in repo.rollouts(run.id, t, "train", "sample" if t == 1 else "cbs")
            if r.selected
        ]
        assert len({r.example_id for r in kept}) == len(kept) == len(TRAIN)
        rec = repo.value_model(run.id, t)
        assert rec is not None and rec.backbone == str(tiny_bert_dir)
        assert rec.metrics["n_examples"] > 0 and rec.config["model"]["backbone"] == str(
            tiny_bert_dir
        )
    m1 = repo.iteration(run.id, 1).metrics
    for key in (
        "eval_mean_reward",
        "eval_grader_reward",
        "win_rate_vs_base",
        "train_mean_reward",
        "tokens",
        "value",
    ):
        assert m1.get(key) is not None, key
    assert m1["eval_grader_reward"] >= m1["eval_mean_reward"]  # the grader picks among its answers
    base = repo.iteration(run.id, 0).metrics
    assert base["bon_mean_reward"] >= base["eval_mean_reward"] and base["bon_n"] == n
    m2 = repo.iteration(run.id, 2).metrics  # pi_2 paired with pi_1 on the held-out prompts
    assert m2["eval_gain"] == pytest.approx(m2["eval_mean_reward"] - m1["eval_mean_reward"])
    store.close()
    assert (res.out_dir / "report.html").is_file() and (res.out_dir / "value" / "v2").is_dir()


def test_rerun_of_a_finished_run_does_nothing(reference, files, tmp_path, tiny_bert_dir):
    cfg = config(files, tmp_path, tiny_bert_dir)
    cfg = cfg.replace(out=str(reference["res"].out_dir))
    provider, trainer = FakeProvider(), RecordingTrainer(cfg)
    before = stored_rollouts(reference["db"], "fast")
    res = run_loop(cfg, reference["db"], provider, trainer)
    assert provider.calls == [] and trainer.trained == []  # value models loaded, not trained
    assert stored_rollouts(reference["db"], "fast") == before
    assert res.metrics == reference["res"].metrics


def test_resume_after_a_failure_mid_search(reference, files, tmp_path, tiny_bert_dir):
    """A provider failing in the middle of iteration 2's guided rollouts: the run is 'failed'
    with everything before stored; re-running it asks the provider only for what is missing,
    loads V_1 instead of training it again, and ends with exactly the uninterrupted run's rows."""
    cfg = config(files, tmp_path, tiny_bert_dir)
    db = str(tmp_path / "resumed.db")
    start = reference["stages"]["t=2 rollouts: guided search 1/2"]
    with pytest.raises(RuntimeError, match="injected failure"):
        run_loop(cfg, db, FailingProvider(fail_at=start + 2))
    store = open_store(db)
    repo = RunRepository(store)
    run = repo.find("fast")
    assert run.status == "failed" and "injected failure" in run.error
    assert (
        repo.iteration(run.id, 1).stage == "done" and repo.iteration(run.id, 2).stage == "pending"
    )
    done = {(r.example_id, r.search) for r in repo.rollouts(run.id, 2, "train", "cbs")}
    store.close()
    # the first guided search finished for some prompts, not all
    assert 0 < len(done) < len(TRAIN), done

    provider, trainer = FakeProvider(), RecordingTrainer(cfg)
    res = run_loop(cfg, db, provider, trainer)
    assert [i["stage"] for i in res.iterations] == ["done", "done", "done"]
    assert trainer.trained == [2] and len(trainer.loaded) == 1  # V_1 was loaded, V_2 trained
    assert 0 < len(provider.calls) < len(reference["provider"].calls) - start
    # no whole-answer sampling again (base evaluation, t = 1 rollouts: n = W*K = 4 per request)
    assert all(r.n == 2 for call in provider.calls for r in call)
    assert stored_rollouts(db, "fast") == stored_rollouts(reference["db"], "fast")
    assert res.metrics == reference["res"].metrics


class GatedTrainer(RecordingTrainer):
    """The real trainer whose gate rejects the value models of the iterations in `reject`."""

    def __init__(self, cfg, reject):
        super().__init__(cfg)
        self.reject = reject
        self.gated: list[tuple[int, int]] = []  # (t, value models in use before V_t)

    def gate(self, previous, betas, model, beta, rollouts, *, t):
        self.gated.append((t, len(previous)))
        ok = t not in self.reject
        return {"accepted": ok, "reason": "test verdict", "pairs": 0}


def scores(db, name, t, phase, method):
    store = open_store(db)
    repo = RunRepository(store)
    run = repo.find(name)
    out = [r.score for r in repo.rollouts(run.id, t, phase, method)]
    metrics = repo.iteration(run.id, t).metrics
    store.close()
    return out, metrics


def test_a_value_model_the_gate_rejects_never_steers(files, tmp_path, tiny_bert_dir):
    cfg = config(files, tmp_path, tiny_bert_dir, name="gated")
    trainer = GatedTrainer(cfg, reject={1})
    db = str(tmp_path / "gated.db")
    res = run_loop(cfg, db, FakeProvider(), trainer)
    report = (res.out_dir / "report.html").read_text()
    assert "V_1 is NOT used (pi_t = pi_{t-1}): test verdict" in report
    # V_1 rejected: V_2 is checked against no value model in use, not against V_1
    assert trainer.gated == [(1, 0), (2, 0)]
    s1, m1 = scores(db, "gated", 1, "eval", "cbs")
    assert m1["value"]["gate"]["accepted"] is False
    assert set(s1) <= {0.0, None}  # pi_1 = the base policy: no value model scored its search
    s2, m2 = scores(db, "gated", 2, "eval", "cbs")
    assert m2["value"]["gate"]["accepted"] is True and len(set(s2)) > 1
    # the aligned policy that generate / eval / serve load steers with V_2 alone, as pi_2 did
    from iro_blackbox import load_run

    policy = load_run("gated", db=db)
    assert policy.used() == [2] and policy.used(1) == []
    assert policy.scorer().models == [policy.value_models[1]] and policy.scorer(1).models == []
    policy.store.close()
    # a resumed run restores the verdicts from the store instead of re-checking
    again = GatedTrainer(cfg, reject=set())
    run_loop(cfg, db, FakeProvider(), again)
    assert again.gated == [] and again.trained == []

    # --no-gate: every value model steers and no check runs
    cfg = config(files, tmp_path, tiny_bert_dir, name="ungated").replace(gate=False)
    trainer = GatedTrainer(cfg, reject={1})
    run_loop(cfg, str(tmp_path / "ungated.db"), FakeProvider(), trainer)
    assert trainer.gated == []
    s1, m1 = scores(str(tmp_path / "ungated.db"), "ungated", 1, "eval", "cbs")
    assert "gate" not in m1["value"] and len(set(s1)) > 1


def test_rerank_policy_gain_vs_the_previous_iteration(files, tmp_path, tiny_bert_dir):
    """--policy rerank at T = 2: pi_2's gain is paired with pi_1's rerank answers."""
    cfg = config(files, tmp_path, tiny_bert_dir, name="rerank").replace(policy="rerank")
    res = run_loop(cfg, str(tmp_path / "rerank.db"), FakeProvider())
    m1, m2 = (res.iterations[t]["metrics"] for t in (1, 2))
    assert m2["eval_gain"] is not None and m2["eval_gain_stderr"] is not None
    # the same held-out prompts: the mean of the paired gains is the difference of the means
    assert m2["eval_gain"] == pytest.approx(m2["eval_mean_reward"] - m1["eval_mean_reward"])
    assert m1["eval_gain"] == pytest.approx(
        m1["eval_mean_reward"] - res.iterations[0]["metrics"]["eval_mean_reward"]
    )


class ClosingExecutor(LocalExecutor):
    """The local executor, registered under a name of its own, counting its closes."""

    closed = 0

    async def aclose(self):
        type(self).closed += 1
        await super().aclose()


class ClosingGrader(FnGrader):
    closed = 0

    async def aclose(self):
        self.closed += 1


def test_a_run_refused_before_its_first_request_closes_what_it_opened(
    files, tmp_path, tiny_bert_dir
):
    EXECUTORS.register("closing-test", ClosingExecutor)
    store = open_store(str(tmp_path / "refused.db"))
    try:
        cfg = config(files, tmp_path, tiny_bert_dir).replace(executor="closing-test")

        def attempt(c):
            grader, provider = ClosingGrader(good_words), FakeProvider()
            loop = AlignLoop(c, store, provider=provider, grader=grader, progress=False,
                             trainer=RecordingTrainer(c))  # fmt: skip
            with pytest.raises(ConfigError) as e:
                asyncio.run(loop.run())
            assert provider.calls == []
            return grader, str(e.value)

        # refused at the budget check: a budget applies to API providers only
        grader, err = attempt(cfg.replace(max_requests=5))
        assert "apply to API providers" in err
        assert ClosingExecutor.closed == 1 and grader.closed == 1
        # refused when opening the run: one of that name exists with other options
        RunRepository(store).create("fast", cfg.replace(seed=4).to_dict(), str(tmp_path), [])
        grader, err = attempt(cfg)
        assert "already exists with different options (seed)" in err
        assert ClosingExecutor.closed == 2 and grader.closed == 1
    finally:
        EXECUTORS.unregister("closing-test")
        store.close()


def test_two_tower_value_models_train_steer_and_reload(files, tmp_path, tiny_bert_dir, tiny_lm_dir):
    """--value-model twotower through the whole loop (tiny random Llama towers), with grader
    relabelling and two heads: V_t trained, saved, used by the search, loaded again on a re-run."""
    cfg = config(files, tmp_path, tiny_bert_dir, name="towers").replace(
        value_model="twotower",
        tower_backbone=str(tiny_lm_dir),
        answer_layers=1,
        value_relabel=2,
        value_heads=2,
    )
    db = str(tmp_path / "towers.db")
    trainer = RecordingTrainer(cfg)
    res = run_loop(cfg, db, FakeProvider(), trainer)
    assert trainer.trained == [1, 2] and res.metrics["iro_mean_reward"] is not None
    assert (res.out_dir / "value" / "v1" / "twotower.json").is_file()
    s1, m1 = scores(db, "towers", 1, "eval", "cbs")
    value = m1["value"]
    # each sampled answer also graded for 2 other prompts: 3x the rollouts of the iteration
    assert value["relabelled"] == 2 * len(TRAIN) * 4  # 4 = W*K samples per prompt
    assert value["n_examples"] > 0 and value["val_pairs"] >= 0 and "gate" in value
    again = RecordingTrainer(cfg)
    res2 = run_loop(cfg, db, FakeProvider(), again)
    assert again.trained == [] and len(again.loaded) == 2 and res2.metrics == res.metrics
    # generate / eval / serve load a run's value models with the same one loader
    from iro_blackbox.value import load_saved
    from iro_blackbox.value.twotower import TwoTowerValue

    v1 = load_saved(res.out_dir / "value" / "v1")
    assert isinstance(v1, TwoTowerValue) and len(v1.heads) == 2
    same = again.load(again.loaded[0])
    assert v1.score(["Say hi."], ["Hello"]) == same.score(["Say hi."], ["Hello"])
