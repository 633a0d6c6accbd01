"""Search logic with a recording fake provider and deterministic scorers / graders.

The same searches run on the real SmolLM2 in test_search_real.py."""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
import zlib
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest
from _fx_search import (
    WORDS,
    FakeProvider,
    FnGrader,
    FnScorer,
    WordValue,
    count_word,
    make_examples,
)

from iro_blackbox.dataset import prompt_text
from iro_blackbox.errors import Cancelled, ConfigError, IroError, ProviderError
from iro_blackbox.params import SamplingParams
from iro_blackbox.providers.base import Chunk, Usage
from iro_blackbox.registry import SEARCHES
from iro_blackbox.search import (
    Coalescer,
    CombinedScorer,
    SearchParams,
    best_of_n,
    cbs,
    sample,
    select,
    summarize,
)

SEEDED = SamplingParams(temperature=1.0, seed=7)


def P(**kw) -> SearchParams:
    kw.setdefault("sampling", SEEDED)
    return SearchParams(**kw)


# -- params -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw, name",
    [
        ({"w": 0}, "w"),
        ({"k": -1}, "k"),
        ({"l": "8"}, "l"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"n": 0}, "n"),
        ({"concurrency": 0}, "concurrency"),
        ({"w": True}, "w"),
        ({"selection": "best"}, "selection"),
        ({"selection_temperature": -0.5}, "selection_temperature"),
        ({"final": "reward"}, "final"),
        ({"sampling": "hot"}, "sampling"),
        ({"sampling": {"temperature": -1}}, "temperature"),
        ({"grade_all": "yes"}, "grade_all"),
    ],
)
def test_params_errors_name_the_parameter(kw, name):
    with pytest.raises(ConfigError) as e:
        SearchParams(**kw)
    assert str(e.value).startswith(name + " ")


def test_params_defaults_and_round_trip():
    p = SearchParams()
    assert (p.w, p.k, p.l, p.max_tokens, p.n) == (4, 4, 16, 128, 16)
    assert p.selection == "diverse" and p.final == "auto" and p.sampling.temperature == 1.0
    assert SearchParams(w=2, k=3).n == 6 and SearchParams(w=2, k=3, n=5).n == 5
    q = SearchParams(w=2, k=2, l=8, sampling=SamplingParams(seed=3, stop=["\n"]))
    assert SearchParams.from_dict(q.to_dict()) == q
    with pytest.raises(ConfigError, match="unknown search parameter.*beams"):
        SearchParams.from_dict({"beams": 3})


def test_registry():
    assert SEARCHES.names() == ["best_of_n", "cbs", "rerank", "sample"]
    assert SEARCHES.get("cbs") is cbs and SEARCHES.get("best_of_n") is best_of_n
    with pytest.raises(ConfigError, match="unknown search 'beam'.*best_of_n, cbs, rerank, sample"):
        SEARCHES.get("beam")


# -- selection rules --------------------------------------------------------------------------


def test_topw_keeps_best_scores_ties_first():
    texts = ["a", "b", "c", "d", "e"]
    assert select("topw", texts, [0.1, 0.9, 0.5, 0.9, 0.0], 3) == [1, 3, 2]
    assert select("topw", texts, [0.0] * 5, 2) == [0, 1]
    assert select("topw", texts[:2], [1.0, 2.0], 4) == [1, 0]  # fewer than m: all of them


def test_diverse_drops_duplicates_then_pads_with_best_duplicates():
    texts = ["x", "x", "y", "x", "z", "y"]
    scores = [5.0, 4.0, 3.0, 2.0, 1.0, 0.5]
    # top-W would keep three copies of "x"
    assert select("topw", texts, scores, 3) == [0, 1, 2]
    assert select("diverse", texts, scores, 3) == [0, 2, 4]
    # only 3 unique texts: pad with the best duplicates
    assert select("diverse", texts, scores, 5) == [0, 2, 4, 1, 3]
    # texts held by finished beams count as seen
    assert select("diverse", texts, scores, 2, taken={"x"}) == [2, 4]


def test_softmax_reproducible_and_unique():
    texts = [f"t{i}" for i in range(8)] + ["t0", "t0"]
    scores = [float(i % 4) for i in range(8)] + [9.0, 9.0]
    a = select("softmax", texts, scores, 4, temperature=1.0, rng=random.Random(11))
    b = select("softmax", texts, scores, 4, temperature=1.0, rng=random.Random(11))
    assert a == b
    assert len({texts[i] for i in a}) == 4  # unique texts only
    picks = {
        tuple(select("softmax", texts, scores, 4, temperature=1.0, rng=random.Random(s)))
        for s in range(20)
    }
    assert len(picks) > 1  # it samples
    # temperature 0: best unique texts
    assert select("softmax", texts, scores, 3, temperature=0, rng=random.Random(0)) == [8, 3, 7]
    # fewer unique than m: pad with best duplicates
    assert select("softmax", ["a", "a", "a"], [1.0, 3.0, 2.0], 2, rng=random.Random(0)) == [1, 2]


def test_softmax_probabilities_follow_exp_score_over_temperature():
    texts, scores, temp = ["a", "b", "c"], [0.0, 1.0, 2.0], 0.5
    rng = random.Random(5)
    counts = Counter(
        texts[select("softmax", texts, scores, 1, temperature=temp, rng=rng)[0]]
        for _ in range(6000)
    )
    z = sum(math.exp(s / temp) for s in scores)
    for t, s in zip(texts, scores, strict=True):
        assert abs(counts[t] / 6000 - math.exp(s / temp) / z) < 0.025


# -- scorer -----------------------------------------------------------------------------------


def test_combined_scorer_sums_values_over_betas_in_a_thread():
    v1, v2 = WordValue("good", 1.0), WordValue("sun", 3.0)
    scorer = CombinedScorer([v1, v2], betas=[2.0, 0.5])
    out = asyncio.run(scorer.score(["p", "p", "p"], ["good good sun", "", "sun"]))
    assert out == pytest.approx([2 / 2 + 3 / 0.5, 0.0, 3 / 0.5])
    assert threading.main_thread().name not in v1.threads | v2.threads
    assert asyncio.run(CombinedScorer([v1]).score(["p"], ["good"])) == [1.0]  # betas default 1
    empty = CombinedScorer()
    assert empty.empty and asyncio.run(empty.score(["p", "q"], ["a", "b"])) == [0.0, 0.0]


def test_combined_scorer_validation():
    with pytest.raises(ConfigError, match="betas must give one value per value model"):
        CombinedScorer([WordValue("a")], betas=[1.0, 2.0])
    with pytest.raises(ConfigError, match=r"betas\[1\] must be a number > 0, got 0"):
        CombinedScorer([WordValue("a"), WordValue("b")], betas=[1.0, 0])

    class Short:
        def score(self, prompts, partials):
            return [0.0]

    with pytest.raises(IroError, match="returned 1 scores for 2 prefixes"):
        asyncio.run(CombinedScorer([Short()]).score(["p", "p"], ["a", "b"]))
    with pytest.raises(ConfigError, match="async score"):
        asyncio.run(sample(make_examples(1), FakeProvider(), object(), P(n=2)))


# -- coalescing -------------------------------------------------------------------------------


def test_coalescer_merges_calls_of_one_tick_and_shares_errors():
    seen: list[list[int]] = []

    async def double(xs):
        seen.append(list(xs))
        if -1 in xs:
            raise ValueError("boom")
        return [2 * x for x in xs]

    async def main():
        c = Coalescer(double)
        a, b, e = await asyncio.gather(c([1, 2]), c([3]), c([]))
        assert (a, b, e) == ([2, 4], [6], [])
        r = await asyncio.gather(c([5]), c([-1]), return_exceptions=True)
        assert all(isinstance(x, ValueError) for x in r)  # one call, one error for both
        return c

    c = asyncio.run(main())
    assert seen == [[1, 2, 3], [5, -1]] and c.calls == 2


class _BatchingProvider(FakeProvider):
    """Batches like the local `hf` provider: calls queue for one worker thread, which runs every
    row queued meanwhile as one batch (at most `max_rows`) after a random pause; and what a chunk
    says depends on its batch, as a real model's logits do on the rows padded beside them. A
    search repeats itself only if its batches do."""

    def __init__(self, pause_seed: int, max_rows: int = 16):
        super().__init__(stop_prob=0.1)
        self.pauses = random.Random(pause_seed)
        self.max_rows = max_rows
        self.batches: list[list[tuple[str, str, int]]] = []
        self._queue: list[tuple[Any, int, Any, Any]] = []  # loop, request, job results, future
        self._cv = threading.Condition()
        threading.Thread(target=self._serve, daemon=True).start()

    async def extend(self, requests):
        loop, fut = asyncio.get_running_loop(), asyncio.get_running_loop().create_future()
        job = {"left": len(requests), "out": [None] * len(requests)}
        with self._cv:
            self._queue += [(loop, (i, r), job, fut) for i, r in enumerate(requests)]
            self._cv.notify()
        return await fut

    def _serve(self) -> None:
        while True:
            with self._cv:
                while not self._queue:
                    self._cv.wait()
                batch, rows = [], 0
                while self._queue and rows + self._queue[0][1][1].n <= self.max_rows:
                    batch.append(self._queue.pop(0))
                    rows += batch[-1][1][1].n
                batch = batch or [self._queue.pop(0)]
            time.sleep(self.pauses.random() * 0.003)
            self.batches.append(
                [(r.prefix, prompt_text(r.prompt), r.sample_index) for _, (_, r), _, _ in batch]
            )
            for loop, (i, r), job, fut in batch:
                chunks = [self.chunk(r, j) for j in range(r.n)]
                job["out"][i] = [
                    c if zlib.crc32(f"{c.text}|{rows}".encode()) % 3 else replace(c, finish_reason="stop")
                    for c in chunks
                ]  # fmt: skip
                job["left"] -= 1
                if job["left"] == 0:
                    loop.call_soon_threadsafe(fut.set_result, job["out"])


class _SlowWordValue(WordValue):
    """A value model whose score takes a random time (CombinedScorer runs it in a thread)."""

    def __init__(self, word: str, pause_seed: int):
        super().__init__(word)
        self.pauses = random.Random(pause_seed)

    def score(self, prompts, partials):
        time.sleep(self.pauses.random() * 0.004)
        return super().score(prompts, partials)


def test_cbs_batches_and_answers_do_not_depend_on_thread_timing():
    """Issue 20, item 9: the demo's iteration 2 (a guided search) differed between two seeded runs
    because which prompts shared a provider call depended on which worker thread (the model's or
    the value models') finished first. In lockstep every call holds the rows of every prompt in
    flight, in example order, whatever the timing."""
    runs = []
    for pause_seed in range(4):
        prov = _BatchingProvider(pause_seed)
        scorer = CombinedScorer([_SlowWordValue("tea", pause_seed + 100)])
        grader = FnGrader(lambda x, _: x.count("a"))
        params = P(w=2, k=2, l=2, max_tokens=12, concurrency=4, final="score")
        res = asyncio.run(cbs(make_examples(12), prov, scorer, params, grader=grader))
        runs.append((prov.batches, [[(c.text, c.score) for c in r.candidates] for r in res]))
    assert all(r == runs[0] for r in runs[1:])
    assert max(len({p for _, p, _ in b}) for b in runs[0][0]) == 4  # the prompts share batches


# -- sample and best_of_n ---------------------------------------------------------------------


def test_sample_one_request_per_prompt_first_is_the_answer():
    prov, grader = FakeProvider(), FnGrader(lambda s, it: len(s))
    exs = make_examples(3)
    res = asyncio.run(sample(exs, prov, None, P(n=5, max_tokens=12), grader=grader))
    assert len(prov.calls) == 1 and len(prov.calls[0]) == 3  # all prompts in one call
    for r, ex, req in zip(res, exs, prov.calls[0], strict=True):
        assert r.example is ex and r.method == "sample"
        assert (req.n, req.max_tokens, req.sample_index, req.prefix) == (5, 12, 0, "")
        assert len(r.candidates) == 5 and r.best is r.candidates[0] and r.best.selected
        assert r.picked_by == "first"
        assert [c.index for c in r.candidates] == list(range(5))
        assert all(c.reward == len(c.text) for c in r.candidates)  # all graded
        assert all(c.completion_tokens == len(c.text.split()) <= 12 for c in r.candidates)
        assert r.usage.completion_tokens == sum(c.completion_tokens for c in r.candidates)
        assert r.usage.graded == 5 and r.usage.provider_calls == 1 and r.usage.chunks == 5
    assert len(grader.calls) == 1 and len(grader.calls[0]) == 15  # graded in one batch


def test_best_of_n_by_grader_ties_first_and_by_score():
    prov = FakeProvider()
    exs = make_examples(2)
    params = P(n=8, max_tokens=10)
    base = asyncio.run(sample(exs, prov, None, params))
    grader = FnGrader(lambda s, it: min(s.split().count("good"), 1))  # many ties at 1
    res = asyncio.run(best_of_n(exs, FakeProvider(), None, params, grader=grader))
    for b, r in zip(base, res, strict=True):
        assert [c.text for c in r.candidates] == [c.text for c in b.candidates]  # same draws
        rewards = [c.reward for c in r.candidates]
        assert r.best.index == rewards.index(max(rewards)) and r.picked_by == "grader"
        assert sum(c.selected for c in r.candidates) == 1
    # no grader: by the scorer's S
    scorer = FnScorer(count_word("rain"))
    res = asyncio.run(best_of_n(exs, FakeProvider(), scorer, params))
    for r in res:
        s = [c.score for c in r.candidates]
        assert r.picked_by == "score" and r.best.index == s.index(max(s))
        assert all(c.reward is None for c in r.candidates)
    with pytest.raises(ConfigError, match="final='grader' needs a grader"):
        asyncio.run(best_of_n(exs, FakeProvider(), None, P(final="grader")))


def test_grade_all_false_grades_only_what_the_pick_needs():
    grader = FnGrader(lambda s, it: 1.0)
    res = asyncio.run(
        sample(make_examples(1), FakeProvider(), None, P(n=4, grade_all=False), grader)
    )
    assert [c.reward for c in res[0].candidates] == [1.0, None, None, None]


# -- cbs ----------------------------------------------------------------------------------------


def test_cbs_respects_max_tokens_and_chunk_length():
    prov = FakeProvider(stop_prob=0.0)  # never stops: every beam runs to max_tokens
    params = P(w=2, k=3, l=4, max_tokens=10, selection="topw")
    res = asyncio.run(cbs(make_examples(2), prov, FnScorer(count_word("sun")), params))
    for r in res:
        finals = [c for c in r.candidates if c.final]
        assert len(finals) == 2
        assert all(c.completion_tokens == 10 and c.finish_reason == "length" for c in finals)
        assert all(len(c.text.split()) == 10 for c in finals)
        assert r.usage.steps == 3  # 4 + 4 + 2 tokens
        assert r.usage.completion_tokens == 2 * 3 * 10  # W*K chunks every step
    assert [sorted({q.max_tokens for q in call}) for call in prov.calls] == [[4], [4], [2]]


def test_cbs_one_provider_call_per_step_for_all_prompts_with_handles_and_distinct_indices():
    prov = FakeProvider(stop_prob=0.0)
    w, k = 3, 2
    exs = make_examples(4)
    params = P(w=w, k=k, l=3, max_tokens=9, concurrency=4)
    asyncio.run(cbs(exs, prov, FnScorer(count_word("tea")), params))
    assert len(prov.calls) == 3
    assert all(len(call) == 4 * w for call in prov.calls)  # every beam of every prompt
    for step, call in enumerate(prov.calls):
        for req in call:
            if step == 0:
                assert req.prefix == "" and req.handle is None
            else:  # continuing a beam passes back the handle of the chunk that made it
                assert req.handle == FakeProvider.handle_for(req.prompt, req.prefix)
    for ex in exs:
        idx = [
            (step, r.sample_index + j)
            for step, call in enumerate(prov.calls)
            for r in call
            if r.prompt == ex.prompt
            for j in range(r.n)
        ]
        flat = [i for _, i in idx]
        assert len(flat) == len(set(flat)) == 3 * w * k  # distinct for every candidate
        assert {i for s, i in idx if s == 1} == set(range(w * k, 2 * w * k))


def test_cbs_k_first_prunes_early_then_finishes_the_kept_beams():
    """k_first=5, k=1: W*5 first chunks, the best W by value kept, each then finished alone."""
    prov = FakeProvider(stop_prob=0.0)
    w = 2
    exs = make_examples(2)
    params = P(w=w, k=1, k_first=5, l=3, max_tokens=9, concurrency=2, selection="topw")
    res = asyncio.run(cbs(exs, prov, FnScorer(count_word("tea")), params))
    assert [sorted({q.n for q in call}) for call in prov.calls] == [[5], [1], [1]]
    for ex, r in zip(exs, res, strict=True):
        idx = [
            r_.sample_index + j for call in prov.calls for r_ in call if r_.prompt == ex.prompt
            for j in range(r_.n)
        ]  # fmt: skip
        assert sorted(idx) == list(range(w * 5 + 2 * w))  # distinct, first step first
        assert r.usage.completion_tokens == w * 5 * 3 + 2 * w * 3
        first = [c for c in prov.calls[0] if c.prompt == ex.prompt]
        assert len(first) == w and all(q.prefix == "" for q in first)
        # the kept beams are the first step's best by value, continued without branching
        finals = [c for c in r.candidates if c.final]
        assert len(finals) == w
    with pytest.raises(ConfigError, match="k_first"):
        P(k_first=0)


def test_select_lineage_keeps_each_parents_best_successor():
    texts = ["a1", "a2", "b1", "b2", "c1", "c2"]
    parents = [0, 0, 1, 1, 2, 2]
    scores = [0.9, 0.8, 0.1, 0.3, 0.95, 0.2]
    # topw would keep parent 0 twice; lineage keeps one successor per parent, parents' order
    assert select("topw", texts, scores, 3) == [4, 0, 1]
    assert select("lineage", texts, scores, 3, parents=parents) == [0, 3, 4]
    # a text an earlier parent's pick holds is passed over for the parent's next best
    same = ["x", "y", "x", "z"]
    assert select("lineage", same, [0.5, 0.1, 0.9, 0.2], 2, parents=[0, 0, 1, 1]) == [0, 3]
    # no parents (the first step): diverse
    assert select("lineage", texts, scores, 3) == select("diverse", texts, scores, 3)
    with pytest.raises(ValueError, match="parents"):
        select("lineage", texts, scores, 3, parents=[0, 1])


def test_cbs_lineage_beams_part_at_the_first_chunk():
    """lineage: after the first step every beam extends only itself, so the W final beams keep
    W different first chunks, which topw (same value, same samples) does not."""
    exs = make_examples(3)
    firsts = {}
    for rule in ("topw", "lineage"):
        prov = FakeProvider(stop_prob=0.0)
        params = P(w=3, k=3, l=2, max_tokens=8, concurrency=3, selection=rule)
        res = asyncio.run(cbs(exs, prov, FnScorer(count_word("tea")), params))
        firsts[rule] = [len({c.chunks[0] for c in r.candidates if c.final}) for r in res]
        if rule == "lineage":
            for call in prov.calls[1:]:  # after the first step: one request per beam, n = K
                by_prompt = Counter(q.prompt for q in call)
                assert set(by_prompt.values()) <= {3}
    assert firsts["lineage"] == [3, 3, 3]
    assert min(firsts["topw"]) < 3


def test_cbs_finished_beams_are_kept_and_not_extended():
    def script(req, j):
        if req.prefix == "" and req.sample_index + j == 0:
            return (" all done", "stop")  # one successor of beam 0 stops at step 0
        return (" more words", "length")

    prov = FakeProvider(script=script)
    scorer = FnScorer(lambda p, x: 10.0 if "done" in x else -len(x))
    params = P(w=2, k=2, l=2, max_tokens=8, selection="topw")
    (r,) = asyncio.run(cbs(make_examples(1), prov, scorer, params))
    assert not any("done" in q.prefix for q in prov.requests)  # never extended
    assert [len(call) for call in prov.calls] == [2, 1, 1, 1]  # only the other beam goes on
    finals = [c for c in r.candidates if c.final]
    assert [c.text for c in finals] == [" all done", " more words" * 4]
    assert r.best.text == " all done" and r.best.finish_reason == "stop"  # the best S
    assert r.best.completion_tokens == 2 and finals[1].completion_tokens == 8


def test_cbs_keeps_dropped_finished_candidates():
    def script(req, j):
        i = req.sample_index + j
        return (f" end{i}", "stop") if i % 2 else (f" go{i}", "length")

    prov = FakeProvider(script=script)
    params = P(w=2, k=2, l=1, max_tokens=3, selection="topw")
    (r,) = asyncio.run(cbs(make_examples(1), prov, FnScorer(lambda p, x: -len(x)), params))
    finals = [c for c in r.candidates if c.final]
    dropped = [c for c in r.candidates if not c.final]
    assert len(finals) == 2 and dropped
    assert all(c.finish_reason in ("stop", "length") for c in dropped)
    assert [c.index for c in r.candidates] == list(range(len(r.candidates)))
    assert sum(c.selected for c in r.candidates) == 1
    # the answer is the best S among every complete answer: here a short one dropped at step 0
    assert r.best.score == max(c.score for c in r.candidates) and not r.best.final


def test_cbs_answer_by_grader_or_by_score():
    # successors: "good" scores high with the value model, "happy" is what the grader likes
    def script(req, j):
        return ([" good", " happy"][j % 2], "stop")

    exs = make_examples(1)
    scorer = FnScorer(count_word("good"))
    grader = FnGrader(lambda s, it: s.split().count("happy"))
    params = P(w=2, k=2, l=4, max_tokens=4, selection="diverse")
    (by_grader,) = asyncio.run(cbs(exs, FakeProvider(script=script), scorer, params, grader))
    assert by_grader.best.text == " happy" and by_grader.picked_by == "grader"
    (by_score,) = asyncio.run(cbs(exs, FakeProvider(script=script), scorer, params))
    assert by_score.best.text == " good" and by_score.picked_by == "score"
    (forced,) = asyncio.run(
        cbs(
            exs,
            FakeProvider(script=script),
            scorer,
            P(**{**params.to_dict(), "final": "score"}),
            grader,
        )
    )
    assert forced.best.text == " good" and forced.best.reward == 0.0  # graded all the same


def test_cbs_value_guidance_beats_sampling_and_empty_scorer_runs():
    exs = make_examples(6)
    params = P(w=4, k=4, l=4, max_tokens=16, concurrency=6)
    scorer = CombinedScorer([WordValue("good")])
    guided = asyncio.run(cbs(exs, FakeProvider(), scorer, params))
    base = asyncio.run(sample(exs, FakeProvider(), None, params))
    g = sum(r.best.text.split().count("good") for r in guided) / len(exs)
    b = sum(r.best.text.split().count("good") for r in base) / len(exs)
    assert g > b + 1.0, (g, b)
    blind = asyncio.run(cbs(exs, FakeProvider(), None, params))  # S = 0: random survival
    assert all(sum(c.final for c in r.candidates) == 4 for r in blind)
    assert all(c.score == 0.0 for r in blind for c in r.candidates)


def test_cbs_softmax_selection_is_reproducible():
    exs = make_examples(3)
    params = P(w=3, k=3, l=3, max_tokens=12, selection="softmax", selection_temperature=0.5)
    runs = [
        asyncio.run(cbs(exs, FakeProvider(), FnScorer(count_word("sun")), params)) for _ in range(2)
    ]
    assert [[c.text for c in r.candidates] for r in runs[0]] == [
        [c.text for c in r.candidates] for r in runs[1]
    ]


def test_cbs_concurrency_cap_and_on_result():
    prov = FakeProvider(delay=0.001)
    exs = make_examples(7)
    seen: list[str] = []
    params = P(w=2, k=2, l=3, max_tokens=9, concurrency=2)
    res = asyncio.run(
        cbs(
            exs,
            prov,
            FnScorer(count_word("walk")),
            params,
            on_result=lambda r: seen.append(r.example.id),
        )
    )
    assert max(len(s) for s in prov.prompts_per_call()) == 2  # never more than 2 prompts in flight
    assert sorted(seen) == sorted(e.id for e in exs) and [r.example.id for r in res] == [
        e.id for e in exs
    ]

    async def async_cb(r):
        await asyncio.sleep(0)
        seen.append("async:" + r.example.id)

    asyncio.run(SEARCHES.get("sample")(exs[:2], FakeProvider(), None, params, on_result=async_cb))
    assert seen[-2:] == ["async:ex0", "async:ex1"] or sorted(seen[-2:]) == [
        "async:ex0",
        "async:ex1",
    ]


def test_on_result_raising_stops_the_search():
    prov = FakeProvider(delay=0.001)
    done: list[str] = []

    def cb(r):
        done.append(r.example.id)
        raise Cancelled("stop requested")

    with pytest.raises(Cancelled, match="stop requested"):
        asyncio.run(
            cbs(
                make_examples(6),
                prov,
                None,
                P(w=2, k=2, l=2, max_tokens=6, concurrency=2),
                on_result=cb,
            )
        )
    assert len(done) == 1
    assert len(prov.calls) < 6 * 3  # the rest was not searched


def test_chat_prompts_and_providers_without_token_counts():
    prov = FakeProvider(stop_prob=0.0, report_tokens=False)
    scorer = FnScorer(count_word("good"))
    exs = make_examples(2, chat=True)
    res = asyncio.run(cbs(exs, prov, scorer, P(w=2, k=2, l=4, max_tokens=8)))
    assert prov.calls[0][0].prompt == exs[0].prompt  # messages passed through
    assert {p for call in scorer.calls for p, _ in call} == {e.text for e in exs}
    assert all(r.usage.steps == 2 for r in res)  # counted by the requested chunk size


def test_provider_returning_too_few_chunks_fails_clearly():
    with pytest.raises(ProviderError, match="returned 1 continuations for a request of n=2"):
        asyncio.run(cbs(make_examples(1), FakeProvider(wrong_n=True), None, P(w=1, k=2, l=2)))


def test_scripted_chunk_objects_and_dedup_scoring():
    calls = []

    def script(req, j):
        return Chunk(" same", "stop", usage=Usage(3, 1))

    class Counting(FnScorer):
        async def score(self, prompts, partials):
            calls.append(len(partials))
            return await super().score(prompts, partials)

    (r,) = asyncio.run(
        cbs(make_examples(1), FakeProvider(script=script), Counting(lambda p, x: 0), P(w=3, k=2))
    )
    assert calls == [1]  # six identical prefixes scored once
    assert r.usage.prompt_tokens == 18 and r.usage.completion_tokens == 6
    assert all(w in WORDS or w == "same" for w in r.best.text.split())


def test_cbs_answer_is_the_best_of_every_complete_answer():
    # beam A stops early with a low score; beam B runs to max_tokens with a higher score: both are
    # answers (Best-of-N counts truncated samples too), the grader picks the better one
    def script(req, j):
        if req.prefix == "" and req.sample_index + j == 0:
            return (" short", "stop")
        return (" long", "length")

    scorer = FnScorer(lambda p, x: len(x.split()) if "long" in x else -5.0)
    grader = FnGrader(lambda s, it: len(s))
    params = P(w=2, k=2, l=1, max_tokens=3, selection="diverse")
    (r,) = asyncio.run(cbs(make_examples(1), FakeProvider(script=script), scorer, params, grader))
    finals = {c.text: c for c in r.candidates if c.final}
    assert set(finals) == {" short", " long long long"}
    assert r.best.text == " long long long" and r.best.finish_reason == "length"

    # a finished candidate that selection dropped can still be the answer: at the last step the
    # grader sees all W*K complete answers, not only the W that selection kept
    def numbered(req, j):
        return (f" w{req.sample_index + j}", "length")

    scorer = FnScorer(lambda p, x: {" w0": 1.0, " w1": 0.5}.get(x, 0.0))
    grader = FnGrader(lambda s, it: 1.0 if s == " w3" else 0.0)
    params = P(w=2, k=2, l=1, max_tokens=1, selection="topw")
    (r,) = asyncio.run(cbs(make_examples(1), FakeProvider(script=numbered), scorer, params, grader))
    assert [c.text for c in r.candidates if c.final] == [" w0", " w1"]  # best S first
    assert len(r.candidates) == 4  # the two dropped ones are kept as candidates
    assert r.best.text == " w3" and not r.best.final
    # by score alone the answer is the best S
    params = P(w=2, k=2, l=1, max_tokens=1, selection="topw", final="score")
    (r,) = asyncio.run(cbs(make_examples(1), FakeProvider(script=numbered), scorer, params, grader))
    assert r.best.text == " w0"


def test_cbs_diverse_does_not_keep_a_copy_of_a_finished_beam():
    # step 0 keeps " x" (finished) and "" (an empty chunk); at step 1 the empty beam draws " x"
    # again and " z": diverse selection treats " x" as taken and keeps " z", top-W keeps " x"
    def script(req, j):
        if req.sample_index < 4:  # step 0
            return (" x", "stop") if j == 0 else ("", "length")
        return (" x", "stop") if j == 0 else (" z", "stop")

    scorer = FnScorer(lambda p, x: {" x": 1.0, " z": 0.5}.get(x, 0.0))
    finals = {}
    for rule in ("diverse", "topw"):
        params = P(w=2, k=2, l=1, max_tokens=3, selection=rule)
        (r,) = asyncio.run(cbs(make_examples(1), FakeProvider(script=script), scorer, params))
        finals[rule] = sorted(c.text for c in r.candidates if c.final)
    assert finals["diverse"] == [" x", " z"]
    assert finals["topw"] == [" x", " x"]


def test_summarize_totals_for_equal_compute():
    exs = make_examples(3)
    grader = FnGrader(lambda s, it: s.split().count("sun"))
    params = P(w=2, k=2, l=4, max_tokens=8)
    bon = asyncio.run(best_of_n(exs, FakeProvider(), None, params, grader))
    guided = asyncio.run(cbs(exs, FakeProvider(), FnScorer(count_word("sun")), params, grader))
    for res in (bon, guided):
        s = summarize(res)
        assert s["prompts"] == 3
        assert s["mean_reward"] == pytest.approx(sum(r.best.reward for r in res) / 3)
        assert s["completion_tokens"] == sum(r.usage.completion_tokens for r in res)
        assert s["candidates"] == sum(len(r.candidates) for r in res)
    # equal N = W*K: best_of_n generates at most N * max_tokens tokens per prompt, cbs at most
    # W*K chunks of L tokens per step
    assert summarize(bon)["completion_tokens_per_prompt"] <= 4 * 8
    assert all(r.usage.completion_tokens <= r.usage.steps * 4 * 4 for r in guided)
    assert summarize([])["mean_reward"] is None
