"""Reading a search's prefixes on from their parents: the two-tower answer tower's cache.

In chunk-level beam search every candidate is a beam of the previous step plus one chunk, and the
value model scored that beam a step ago. The answer tower is causal, so a candidate's per-token
states are its parent's states followed by those of the new tokens read with the parent's cached
keys and values: only the chunk is read. Candidates with the same number of shared and new tokens
(a search step's usual case) are read in one batch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import torch

# prefixes whose cache is kept for the next step (two steps of 16 searches of W*K = 16): about
# 14 KB a token for SmolLM2-135M's first 8 layers (keys, values and states), some 480 MB for 512
# prefixes of 64 tokens
MAX_KV = 512
BATCH = 32  # candidates read in one forward pass


class PrefixReader:
    """Per-token states of texts through `lm` (a causal decoder stack, e.g. Towers.answer_lm),
    each read on from the longest cached text it starts with."""

    def __init__(self, lm: Any, max_kept: int = MAX_KV):
        self.lm, self.max_kept = lm, max_kept
        # text -> (token ids, [(keys, values)] per layer, [n_tokens, d] states)
        self._kept: dict[str, tuple[list[int], list[tuple[torch.Tensor, torch.Tensor]], Any]] = {}

    def clear(self) -> None:
        self._kept.clear()

    def _shared(self, text: str, ids: list[int]) -> tuple[Any, int]:
        """The kept entry of the longest text that `text` extends, and how many leading tokens
        they share (never the parent's last one: it may merge with what follows)."""
        parent = max(
            (k for k in self._kept if len(k) < len(text) and text.startswith(k)),
            key=len,
            default=None,
        )
        if parent is None:
            return None, 0
        entry = self._kept[parent]
        pids, m = entry[0], 0
        while m < min(len(pids), len(ids)) - 1 and pids[m] == ids[m]:
            m += 1
        return (entry, m) if m else (None, 0)

    @torch.no_grad()
    def states(self, items: Sequence[tuple[str, list[int]]]) -> list[torch.Tensor]:
        """[len(ids), d] states of each (text, non-empty token ids), in order."""
        out: list[Any] = [None] * len(items)
        groups: dict[tuple[int, int], list[tuple[int, Any]]] = defaultdict(list)
        for i, (text, ids) in enumerate(items):
            entry, m = self._shared(text, ids)  # held here: keeping new texts may evict it
            groups[(m, len(ids) - m)].append((i, entry))
        for (m, _), members in groups.items():
            for start in range(0, len(members), BATCH):
                self._read(items, members[start : start + BATCH], m, out)
        return out

    def _read(self, items: Sequence[tuple[str, list[int]]], batch: list, m: int, out: list) -> None:
        from transformers import DynamicCache

        cache = None
        if m:
            layers = len(batch[0][1][1])
            cache = DynamicCache(
                ddp_cache_data=[
                    tuple(
                        torch.cat([entry[1][layer][j][..., :m, :] for _, entry in batch])
                        for j in (0, 1)
                    )
                    for layer in range(layers)
                ]
            )
        ids = torch.tensor([items[i][1][m:] for i, _ in batch])
        res = self.lm(
            input_ids=ids,
            attention_mask=torch.ones(len(batch), m + ids.shape[1], dtype=torch.long),
            cache=cache,
            use_cache=True,
        )
        for row, (i, entry) in enumerate(batch):
            tail = res.last_hidden_state[row]
            states = tail if entry is None else torch.cat([entry[2][:m], tail])
            kv = [  # the layers the stack ran (a cache may hold empty ones past them)
                (lay.keys[row : row + 1], lay.values[row : row + 1])
                for lay in res.cache.layers
                if lay.keys is not None
            ]
            out[i] = states
            self._keep(items[i][0], items[i][1], kv, states)

    def _keep(self, text: str, ids: list[int], kv: list, states: torch.Tensor) -> None:
        if text in self._kept:
            return
        if len(self._kept) >= self.max_kept:  # oldest first: the search's earlier steps
            self._kept.pop(next(iter(self._kept)))
        self._kept[text] = (list(ids), kv, states)
