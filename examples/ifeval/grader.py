"""IFEval's strict checkers as an iro-bb python grader: the reward is the fraction of the
prompt's instructions the answer follows (Google's `test_instruction_following_strict`: an empty
answer follows nothing).

The checkers come from the `if-verifiable` package (0.1.2, byte-for-byte Google's
instructions.py). Its package __init__ imports `datasets` for a hub loader that grading never
needs, so the `ifeval` subpackage is imported without running it.

Some checkers draw a random argument where the item's does not fit (Google's letter-frequency
checker swaps a non-letter such as "#" or "!" for a random letter), so the same answer could get
two grades (Google's evaluation draws anew at every grading). Here the draws come from Python's
global `random` seeded by the crc32 of the item's prompt (its state restored afterwards; the
python grader's workers grade one answer at a time): one fixed draw per prompt, the same grade
every time.
"""

from __future__ import annotations

import importlib.util
import random
import sys
import types
import zlib


def _registry():
    if "if_verifiable" not in sys.modules:
        spec = importlib.util.find_spec("if_verifiable")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError(
                "the IFEval checkers are not installed: pip install 'iro-bb[ifeval]' "
                "(or: pip install --no-deps if-verifiable==0.1.2 langdetect immutabledict)"
            )
        pkg = types.ModuleType("if_verifiable")
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules["if_verifiable"] = pkg
    from if_verifiable.ifeval import instructions_registry

    return instructions_registry.INSTRUCTION_DICT


INSTRUCTIONS = _registry()


def followed(response: str, item: dict) -> list[bool]:
    """One flag per instruction of the item, as IFEval's strict evaluation decides it (any random
    argument drawn from the item's own seed: see the module's docstring)."""
    state = random.getstate()
    random.seed(zlib.crc32(item["prompt"].encode("utf-8")))
    try:
        out = []
        for iid, kwargs in zip(item["instruction_id_list"], item["kwargs"], strict=True):
            checker = INSTRUCTIONS[iid](iid)
            checker.build_description(**{k: v for k, v in (kwargs or {}).items() if v is not None})
            args = checker.get_instruction_args()
            if args and "prompt" in args:
                checker.build_description(prompt=item["prompt"])
            out.append(bool(response.strip()) and bool(checker.check_following(response)))
        return out
    finally:
        random.setstate(state)


def grade(sample: dict, item: dict) -> float:
    flags = followed(sample["output_text"], item)
    return sum(flags) / len(flags)
