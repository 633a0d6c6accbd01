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


def test_greedy_is_one_temperature_zero_answer_per_prompt(finished_hf_run):
    from iro_blackbox.iro.evaluate import evaluate

    run = finished_hf_run
    a = evaluate(run.name, run.evals, db=run.db, progress=False, methods=["greedy"], limit=2)
    g = a["methods"]["greedy"]
    assert set(a["methods"]) == {"greedy"}
    assert 0 < g["tokens_per_prompt"] <= a["max_tokens"]
    assert g["win_rate_vs_base"] is None  # greedy alone draws no base samples to compare with
    assert -1.0 <= g["mean_reward"] <= 1.0
    # the same text as transformers' own greedy decoding of the prompt
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from iro_blackbox.dataset import load_examples
    from iro_blackbox.providers.chat_template import render_prompt
    from iro_blackbox.providers.hf.loading import plain_model_folder

    first = load_examples(run.evals)[0]
    path = plain_model_folder("smollm2-135m-instruct")
    tok = AutoTokenizer.from_pretrained(path)
    lm = AutoModelForCausalLM.from_pretrained(path)
    text = render_prompt(tok, first.prompt)  # as the hf provider renders it
    ids = tok(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    out = lm.generate(ids, do_sample=False, max_new_tokens=a["max_tokens"])
    want = tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    assert a["greedy_answers"][first.id].strip() == want.strip()
