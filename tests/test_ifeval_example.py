"""The IFEval example's grader (examples/ifeval/grader.py: IFEval's own strict checkers) on fixed
answers, through iro-bb's python grader as a run uses it, and its data script."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from iro_blackbox.graders import load_grader

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ifeval"

LOWER_NO_COMMA = {
    "prompt": "Describe the sea in all lowercase letters and without any commas.",
    "instruction_id_list": ["change_case:english_lowercase", "punctuation:no_comma"],
    "kwargs": [{}, {}],
}
QUOTED_TITLE = {
    "prompt": "Wrap your whole answer in double quotes and give it a title in <<>>.",
    "instruction_id_list": ["startend:quotation", "detectable_format:title"],
    "kwargs": [{}, {}],
}
KEYWORDS = {
    "prompt": "Write about autumn. Include the keywords leaves and harvest.",
    "instruction_id_list": ["keywords:existence"],
    "kwargs": [{"keywords": ["leaves", "harvest"]}],
}


def grade(samples, items):
    grader = load_grader(str(EXAMPLE / "grader.json"))
    try:
        return asyncio.run(grader.grade(samples, items))
    finally:
        asyncio.run(grader.aclose())


def test_ifeval_grader_scores_the_share_of_instructions_followed():
    grades = grade(
        [
            "the sea is wide and blue and calm today",  # both followed
            "the sea is wide, blue and calm today",  # lowercase only
            "The Sea, wide and blue",  # neither
            "",  # an empty answer follows nothing (IFEval's strict rule)
            '"<<Sea>> the sea is calm"',  # both
            "<<Sea>> the sea is calm",  # title only
            "Golden leaves fall before the harvest.",
            "Golden leaves fall.",
        ],
        [LOWER_NO_COMMA] * 4 + [QUOTED_TITLE] * 2 + [KEYWORDS] * 2,
    )
    assert [g.error for g in grades] == [None] * 8
    assert [g.score for g in grades] == [1.0, 0.5, 0.0, 0.0, 1.0, 0.5, 1.0, 0.0]


def test_ifeval_grader_gives_an_answer_one_grade_where_a_checker_draws_at_random():
    """Google's letter-frequency checker swaps a non-letter ("#") for a random letter: graded in
    two processes (two interpreter seeds), each answer still gets one grade."""
    item = {
        "prompt": "make a tweet without capital letters. Include at least 4 hashtags",
        "instruction_id_list": ["keywords:letter_frequency"],
        "kwargs": [{"let_relation": "at least", "letter": "#", "let_frequency": 4}],
    }
    import string

    answers = [
        f"{c * 4} and {c.upper() * 4} {string.ascii_lowercase}" for c in string.ascii_lowercase
    ]
    first = [g.score for g in grade(answers, [item] * len(answers))]
    second = [g.score for g in grade(answers, [item] * len(answers))]
    assert first == second
    assert 0.0 in first and 1.0 in first  # one letter drawn: some answers have 4+ of it, some not


def test_prepare_writes_disjoint_splits_and_counts_what_it_drops(tmp_path):
    out = subprocess.run(
        [sys.executable, str(EXAMPLE / "prepare.py"), "--out", str(tmp_path), "--eval", "64"],
        check=True,
        capture_output=True,
        text=True,
    )
    summary = json.loads(out.stdout)
    assert summary["source_prompts"] == 541 and summary["eval"] == 64
    assert summary["dropped"]["needs NLTK punkt"] > 0
    assert summary["train"] + summary["eval"] + sum(summary["dropped"].values()) == 541
    train = [json.loads(x) for x in (tmp_path / "train.jsonl").read_text().splitlines()]
    held = [json.loads(x) for x in (tmp_path / "eval.jsonl").read_text().splitlines()]
    assert not {r["id"] for r in train} & {r["id"] for r in held}
    needs_punkt = {"length_constraints:number_sentences", "change_case:capital_word_frequency"}
    assert not any(needs_punkt & set(r["instruction_id_list"]) for r in train + held)
