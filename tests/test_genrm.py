"""The generative value model (value/genrm.py): p(yes) of the shipped SmolLM2 judging a partial
answer, and its fine-tuned form learning a rule from graded examples."""

from __future__ import annotations

import pytest

from iro_blackbox.value import ValueExample

pytestmark = pytest.mark.slow

PROMPT = "Write one short sentence about the sea, entirely in capital letters."
WORDS = ["the sea is wide", "waves roll in", "boats sail far", "fish swim deep", "gulls cry loud",
         "the tide comes back", "salt is in the air", "the shore is long", "sand is warm",
         "storms come fast", "the sea is blue", "whales sing low"]  # fmt: skip


def graded(words: list[str]) -> list[ValueExample]:
    out = []
    for w in words:
        out.append(ValueExample(PROMPT, w.upper() + ".", 1.0))  # follows the instruction
        out.append(ValueExample(PROMPT, w.capitalize() + ".", 0.0))  # does not
    return out


def separation(judge, examples: list[ValueExample]) -> float:
    s = judge.score([e.prompt for e in examples], [e.partial for e in examples])
    good = [x for x, e in zip(s, examples, strict=True) if e.target == 1.0]
    bad = [x for x, e in zip(s, examples, strict=True) if e.target == 0.0]
    return sum(good) / len(good) - sum(bad) / len(bad)


def test_fine_tuned_judge_learns_the_rule_on_unseen_answers():
    from iro_blackbox.value.genrm import GenerativeValue

    judge = GenerativeValue("smollm2-135m-instruct", batch_size=8)
    unseen = graded(WORDS[8:])
    before = separation(judge, unseen)
    scores = judge.score([PROMPT], ["THE SEA."])
    assert len(scores) == 1 and 0.0 < scores[0] < 1.0  # a probability
    fit = judge.fit(graded(WORDS[:8]), top_layers=2, epochs=8, lr=2e-4, seed=0)
    assert fit["train_examples"] == 16 and fit["trained_parameters"] > 0
    after = separation(judge, unseen)
    assert after > before + 0.15 and after > 0.15, (before, after)
