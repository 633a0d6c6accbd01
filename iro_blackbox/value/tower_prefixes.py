"""Reading a search's prefixes on from their parents: the two-tower answer tower's cache.

In chunk-level beam search every candidate is a beam of the previous step plus one chunk, and the
value model scored that beam a step ago. The answer tower is causal, so a candidate's per-token
states are its parent's states followed by those of the new tokens read with the parent's cached
keys and values: only the chunk is read. Candidates with the same number of shared and new tokens
(a search step's usual case) are read in one batch. The states equal a whole pass over each
candidate up to float rounding (about 1e-6), so a near-tie between two candidates may break
differently than when every candidate is read whole. Decoders with sliding-window layers are read
whole (Towers.reads_on).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import torch

# tokens of kept prefixes (a search's last two steps, for their children): about 14 KB a token
# for SmolLM2-135M's first 8 layers (keys, values and states), so some 460 MB at most
MAX_KEPT_TOKENS = 32_768
BATCH = 32  # candidates read in one forward pass


class PrefixReader:
    """Per-token states of texts through `lm` (a causal decoder stack, e.g. Towers.answer_lm),
    each read on from the longest cached text it starts with."""

    def __init__(self, lm: Any, max_tokens: int = MAX_KEPT_TOKENS):
        self.lm, self.max_tokens = lm, max_tokens
        self.n_layers = len(lm.layers)
        # text -> (token ids, [(keys, values)] per layer, [n_tokens, d] states); oldest first
        self._kept: dict[str, tuple[list[int], list[tuple[torch.Tensor, torch.Tensor]], Any]] = {}
        self._tokens = 0
        self._lock = threading.Lock()  # one Towers serves every scorer of the process

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()
            self._tokens = 0

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

    def states(self, items: Sequence[tuple[str, list[int]]]) -> list[torch.Tensor]:
        """[len(ids), d] states of each (text, non-empty token ids), in order."""
        with self._lock:
            return self._states(items)

    @torch.no_grad()
    def _states(self, items: Sequence[tuple[str, list[int]]]) -> list[torch.Tensor]:
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
            kv = [  # the layers the stack ran (the cache may hold empty ones past them); copies,
                # so a kept row does not hold its whole batch
                (lay.keys[row : row + 1].clone(), lay.values[row : row + 1].clone())
                for lay in res.cache.layers[: self.n_layers]
            ]
            out[i] = states
            self._keep(items[i][0], items[i][1], kv, states.clone())

    def _keep(self, text: str, ids: list[int], kv: list, states: torch.Tensor) -> None:
        if text in self._kept or len(ids) > self.max_tokens:
            return
        while self._kept and self._tokens + len(ids) > self.max_tokens:  # the oldest steps go
            self._tokens -= len(self._kept.pop(next(iter(self._kept)))[0])
        self._kept[text] = (list(ids), kv, states)
        self._tokens += len(ids)
