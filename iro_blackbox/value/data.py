"""Training data of a value model: every response prefix, with the final reward as its target.

IRO step 3 regresses V(x, y_<=i) onto r(x, y) at every prefix of every kept response, from the
empty response to the full one (Monte-Carlo return, gamma = 1). We only have the policy's text,
so prefixes are cut at token boundaries of the VALUE model's tokenizer:

    rollouts = [("Say hi.", "Hello there!", 0.8), ("Say hi.", "Go away.", -0.5, 2.0)]
    examples = make_value_examples(rollouts, ValueTrainConfig(prefix_mode="token"))
    # [ValueExample("Say hi.", "", 0.8, 1.0, 0), ValueExample("Say hi.", "Hello", 0.8, 1.0, 0), ...]
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from ..errors import InputError
from ..tokenizers import load_tokenizer
from ..utils import derive_seed
from .config import ValueTrainConfig


class ValueExample(NamedTuple):
    """One training example: the model reads prompt + join + partial and should predict target.

    `rollout` groups the prefixes of one response (validation splits never cut a group);
    -1 means "a group of its own". `position`: which cut of its response this prefix is (0 the
    empty prefix, then one per chunk): the search compares prefixes of the same prompt at the
    same step, so ranking losses and metrics pair examples of equal prompt and position; -1 means
    unknown (such examples are never paired).
    """

    prompt: str
    partial: str
    target: float
    weight: float = 1.0
    rollout: int = -1
    position: int = -1
    origin: int = -1  # the rollout that sampled this answer: itself, or for a relabelled copy the
    # original (-2: a copy whose original is not among these rollouts; -1: not known, own)


class RolloutData(NamedTuple):
    """A graded response: prompt text, response text, reward, sample weight."""

    prompt: str
    response: str
    reward: float
    weight: float = 1.0
    source: str = ""  # grader relabelling: the prompt this answer was sampled for ("": `prompt`)


def as_rollout(item: Any, index: int = 0) -> RolloutData:
    """Accept (prompt, response, reward[, weight[, source]]) tuples, dicts or objects with those fields
    (e.g. store Rollout rows, whose `weight` may be None)."""
    source: Any = ""
    if isinstance(item, (tuple, list)):
        if len(item) not in (3, 4, 5):
            raise InputError(
                f"rollout {index}: expected (prompt, response, reward[, weight[, source]]), "
                f"got {len(item)} items"
            )
        prompt, response, reward = item[0], item[1], item[2]
        weight = item[3] if len(item) >= 4 else 1.0
        source = item[4] if len(item) == 5 else ""
    elif isinstance(item, dict):
        try:
            prompt, response, reward = item["prompt"], item["response"], item["reward"]
        except KeyError as e:
            raise InputError(f"rollout {index}: missing key {e.args[0]!r}") from None
        weight = item.get("weight", 1.0)
        source = item.get("source", "")
    else:
        try:
            prompt, response, reward = item.prompt, item.response, item.reward
        except AttributeError as e:
            raise InputError(f"rollout {index}: {e}") from None
        weight = getattr(item, "weight", 1.0)
        source = getattr(item, "source", "") or ""
    if weight is None:
        weight = 1.0
    if not isinstance(prompt, str) or not isinstance(response, str):
        raise InputError(f"rollout {index}: prompt and response must be text")
    if reward is None or isinstance(reward, bool) or not isinstance(reward, (int, float)):
        raise InputError(f"rollout {index}: reward must be a number, got {reward!r}")
    if reward != reward or reward in (float("inf"), float("-inf")):
        raise InputError(f"rollout {index}: reward must be finite, got {reward!r}")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
        raise InputError(f"rollout {index}: weight must be a number >= 0, got {weight!r}")
    if not isinstance(source, str):
        raise InputError(f"rollout {index}: source must be text, got {source!r}")
    if source == prompt:  # sampled for its own prompt
        source = ""
    return RolloutData(prompt, response, float(reward), float(weight), source)


def token_ends(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    """For each text, the character offset where each of its tokens ends (value tokenizer, no
    special tokens), increasing and without repeats."""
    if not texts:
        return []
    try:
        enc = tokenizer(
            list(texts), add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        offsets = enc["offset_mapping"]
    except (NotImplementedError, ValueError, TypeError, KeyError):
        offsets = None
    out: list[list[int]] = []
    for i, text in enumerate(texts):
        if offsets is not None:
            ends = [int(e) for _, e in offsets[i]]
        else:  # slow tokenizer without offsets: decode growing token prefixes
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            ends = []
            for j in range(1, len(ids) + 1):
                piece = tokenizer.decode(ids[:j], skip_special_tokens=True)
                ends.append(
                    len(piece) if text.startswith(piece) else round(j * len(text) / len(ids))
                )
        clean: list[int] = []
        for e in ends:
            e = min(max(e, 0), len(text))
            if 0 < e < len(text) and (not clean or e > clean[-1]):
                clean.append(e)
        out.append(clean)
    return out


def cut_points(
    ends: list[int], length: int, config: ValueTrainConfig, rng: random.Random
) -> list[int]:
    """Character offsets where a response is cut: always 0 (empty) and `length` (full), plus the
    interior token boundaries chosen by config.prefix_mode."""
    if config.prefix_mode == "token":
        inner = ends
    elif config.prefix_mode == "chunk":
        inner = ends[config.chunk_tokens - 1 :: config.chunk_tokens]
    else:  # random
        k = min(config.k_random, len(ends))
        inner = sorted(rng.sample(ends, k)) if k else []
    cuts = [0, *inner, length] if length > 0 else [0]
    return sorted(set(cuts))


def make_value_examples(
    rollouts: Iterable[Any], config: ValueTrainConfig | None = None, tokenizer: Any = None
) -> list[ValueExample]:
    """Every prefix (empty .. full, chosen by config.prefix_mode) of every rollout, each with the
    rollout's final reward as target and its weight as sample weight.

    rollouts: (prompt, response, reward[, weight]) tuples, dicts or objects with those fields.
    tokenizer: the value model's tokenizer (e.g. `ValueModel.tokenizer`); default: the tokenizer
    of config.model.backbone. Examples come out in rollout order, empty prefix first.
    """
    config = config or ValueTrainConfig()
    items = [as_rollout(r, i) for i, r in enumerate(rollouts)]
    if tokenizer is None:
        tokenizer = load_tokenizer(config.model.backbone)
    ends = token_ends(tokenizer, [r.response for r in items])
    sampled = {
        (r.prompt, r.response): i for i, r in reversed(list(enumerate(items))) if not r.source
    }
    examples: list[ValueExample] = []
    for i, (r, e) in enumerate(zip(items, ends, strict=True)):
        rng = random.Random(derive_seed("value-cuts", config.seed, i))
        origin = sampled.get((r.source, r.response), -2) if r.source else i
        for pos, c in enumerate(cut_points(e, len(r.response), config, rng)):
            examples.append(
                ValueExample(r.prompt, r.response[:c], r.reward, r.weight, i, pos, origin)
            )
    return examples


AUTO_PROMPT_SPLIT = 20  # split_by="auto" groups by prompt from this many distinct prompts on


def split_examples(
    examples: Sequence[ValueExample], config: ValueTrainConfig
) -> tuple[list[int], list[int], str]:
    """Train/validation indices. Groups (prompts or rollouts) never straddle the split, and no
    sampled answer does either (grader relabelling grades one answer for several prompts):
    validation holds only the held-apart groups' own answers, and no copy of those answers is
    trained on, so validation never scores an answer the model has seen (measured on IFEval:
    0.86 validation pair accuracy against 0.61 on prompts never seen, before this rule).
    Relabelled rows of the validation groups (answers of training prompts) are used by neither
    side."""
    prompts = {e.prompt for e in examples}
    split_by = config.split_by
    if split_by == "auto":
        split_by = "prompt" if len(prompts) >= AUTO_PROMPT_SPLIT else "rollout"
    if split_by == "prompt":
        keys = [("p", e.prompt) for e in examples]
    else:
        keys = [("r", e.rollout) if e.rollout >= 0 else ("i", i) for i, e in enumerate(examples)]
    own = [e.origin == e.rollout or e.origin == -1 for e in examples]
    # held apart: groups of answers as sampled (a relabelled copy is never a group of its own)
    groups = sorted({k for k, o in zip(keys, own, strict=True) if o}, key=repr)
    n_val = int(round(config.val_fraction * len(groups)))
    if config.val_fraction > 0 and len(groups) >= 2:
        n_val = min(max(n_val, 1), len(groups) - 1)
    else:
        n_val = 0
    rng = random.Random(config.seed)
    rng.shuffle(groups)
    val_groups = set(groups[:n_val])
    # validation scores only held-apart answers as sampled for their own prompt ...
    val = [i for i, k in enumerate(keys) if k in val_groups and own[i]]
    held = {examples[i].origin for i in val if examples[i].origin >= 0}
    # ... and training never sees those answers, not even relabelled for another prompt
    train = [
        i for i, k in enumerate(keys) if k not in val_groups and examples[i].origin not in held
    ]
    return train, val, split_by
