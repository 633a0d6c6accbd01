"""`iro-bb eval --methods rerank`: the run's value models choosing among N whole base answers
(value-reranked sampling), beside the aligned policy at the same N; on a finished hf run."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_rerank_picks_the_best_scored_of_n_whole_answers(finished_hf_run):
    from iro_blackbox.iro.evaluate import evaluate

    run = finished_hf_run
    out = evaluate(run.name, run.evals, db=run.db, progress=False, methods=["base", "rerank"])
    m = out["methods"]
    assert set(m) == {"base", "rerank"}
    r = m["rerank"]
    assert r["answers_per_prompt"] == out["n"]  # N = W*K whole answers, no chunk search
    assert r["value_models"] == 1 and r["grader_pick_reward"] >= r["mean_reward"] - 1e-9
    assert -1.0 <= r["mean_reward"] <= 1.0 and r["tokens_per_prompt"] > 0
    with pytest.raises(Exception, match="unknown method"):
        evaluate(run.name, run.evals, db=run.db, progress=False, methods=["reranked"])
