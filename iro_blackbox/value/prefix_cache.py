"""Scoring many extensions of one prefix with a decoder backbone: encode the shared token prefix
once, then run only the suffixes on top of its KV cache.

Chunk-level beam search scores W*K candidates per step; the K successors of a beam share the
prompt and the beam's text so far and differ only in their last chunk. With last-token pooling a
causal backbone's state at the end of each candidate depends on the shared tokens only through
their keys/values, so those are computed once per group:

    sorted token lists -> groups with a long common prefix -> per batch of rows: one pass over
    the distinct shared prefixes, then one pass over every suffix on its gathered prefix cache

Groups are found by sorting the token lists (extensions of one prefix become neighbours) and
growing a group while the common prefix stays >= 90% of the group's current one. A group pays
when it has >= 2 members sharing >= `min_shared` tokens; everything else goes through the plain
length-bucketed path. Results equal the plain path up to float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

# `model` below is a ValueModel (model.py, which calls in here): its backbone, collate, pool,
# head_value, to_reward, autocast, score_ids, is_decoder and pooling are what is used.
ValueModel = Any

MIN_SHARED = 16  # shared tokens below which a separate prefix pass is not worth it
KEEP = 0.9  # a group grows while its common prefix stays >= KEEP x the current one


def _lcp(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def prefix_groups(
    seqs: Sequence[Sequence[int]], min_shared: int = MIN_SHARED
) -> tuple[list[tuple[int, list[int]]], list[int]]:
    """Split inputs into (shared length, member indices) groups worth a prefix pass, and the rest.

    The shared length leaves every member at least one token of its own (its last token is where
    the value is read)."""
    order = sorted(range(len(seqs)), key=lambda i: list(seqs[i]))
    groups: list[tuple[int, list[int]]] = []
    rest: list[int] = []

    def close(members: list[int], shared: int | None) -> None:
        if shared is None or len(members) < 2:
            rest.extend(members)
            return
        shared = min(shared, min(len(seqs[i]) for i in members) - 1)
        if shared >= min_shared:
            groups.append((shared, members))
        else:
            rest.extend(members)

    members: list[int] = []
    shared: int | None = None
    for i in order:
        if not members:
            members, shared = [i], None
            continue
        common = _lcp(seqs[members[-1]], seqs[i])
        if shared is None and common >= min_shared:
            members.append(i)
            shared = common
        elif shared is not None and common >= KEEP * shared and common >= min_shared:
            members.append(i)
            shared = min(shared, common)
        else:
            close(members, shared)
            members, shared = [i], None
    if members:
        close(members, shared)
    return groups, rest


def _cache_is_plain(cache) -> bool:
    from transformers.cache_utils import DynamicCache, DynamicLayer  # heavy: on first use

    layers = getattr(cache, "layers", None)
    return (
        isinstance(cache, DynamicCache)
        and bool(layers)
        and all(type(layer) is DynamicLayer for layer in layers)
    )


@torch.inference_mode()
def score_with_prefix_cache(
    model: ValueModel,
    seqs: Sequence[Sequence[int]],
    batch_size: int = 64,
    min_shared: int = MIN_SHARED,
) -> list[float]:
    """Like model.score_ids(seqs), reusing shared-prefix KV caches (decoder, last-token pooling)."""
    if not model.is_decoder or model.pooling != "last":
        return model.score_ids(seqs, batch_size=batch_size)
    groups, rest = prefix_groups(seqs, min_shared)
    if not groups:
        return model.score_ids(seqs, batch_size=batch_size)
    out = [0.0] * len(seqs)
    was_training = model.training
    model.eval()
    try:
        values = _score_groups(model, seqs, groups, batch_size)
    finally:
        model.train(was_training)
    if values is None:  # this architecture's cache cannot be reused: plain path for all
        return model.score_ids(seqs, batch_size=batch_size)
    for i, v in values.items():
        out[i] = v
    if rest:
        plain = model.score_ids([seqs[i] for i in rest], batch_size=batch_size)
        for i, v in zip(rest, plain, strict=True):
            out[i] = v
    return out


def _score_groups(
    model: ValueModel,
    seqs: Sequence[Sequence[int]],
    groups: list[tuple[int, list[int]]],
    batch_size: int,
) -> dict[int, float] | None:
    """Values of the grouped inputs by input index (None: the cache cannot be reused).

    Per batch of `batch_size` rows: one forward pass over the distinct shared prefixes of the
    rows' groups (right-padded), the cache rows gathered per member, then one forward pass over
    the members' suffixes with explicit positions (each suffix starts at its own prefix length;
    the prefix padding is masked out)."""
    dev = model.device
    rows = [
        (i, g)
        for g, (_, members) in enumerate(groups)
        for i in sorted(members, key=lambda i: len(seqs[i]))
    ]
    values: dict[int, float] = {}
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        gids = sorted({g for _, g in chunk})
        local = {g: j for j, g in enumerate(gids)}
        prefixes = [seqs[groups[g][1][0]][: groups[g][0]] for g in gids]
        p_ids, p_mask = model.collate(prefixes)  # (G, S)
        with model.scoring_autocast():
            cache = model.backbone(input_ids=p_ids, attention_mask=p_mask, use_cache=True).cache
        if not _cache_is_plain(cache):
            return None
        sel = torch.tensor([local[g] for _, g in chunk], dtype=torch.long, device=dev)
        cache.batch_select_indices(sel)  # (b, heads, S, d) per layer
        s_ids, s_mask = model.collate([seqs[i][groups[g][0] :] for i, g in chunk])  # (b, T)
        full_mask = torch.cat([p_mask[sel], s_mask], dim=1)  # (b, S + T)
        starts = torch.tensor([groups[g][0] for _, g in chunk], dtype=torch.long, device=dev)
        positions = starts[:, None] + torch.arange(s_ids.shape[1], device=dev)[None, :]
        with model.scoring_autocast():
            hidden = model.backbone(
                input_ids=s_ids,
                attention_mask=full_mask,
                position_ids=positions,
                cache=cache,
                use_cache=True,
            ).last_hidden_state  # (b, T, H)
            raw = model.head_value(model.pool(hidden, s_mask))
        for (i, _), v in zip(chunk, model.to_reward(raw).tolist(), strict=True):
            values[i] = float(v)
    return values
