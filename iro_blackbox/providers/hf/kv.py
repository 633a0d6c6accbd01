"""KV-cache bookkeeping for the local provider: handles, blocks, a byte-bounded LRU, row gathering.

After each batched generation the provider keeps the batch's KV cache as one `KVBlock`:
per layer keys/values of shape [B, H, S, D] plus a boolean column mask [B, S] saying which columns
of each row hold real tokens (rows are left padded, and rows that finished early stop adding real
columns). Each returned chunk gets a `KVHandle` naming (block, row) and carrying the row's token ids.

To continue a set of handles, `gather_rows` builds one batch cache from any mix of blocks: the rows
are selected (and repeated: beam search keeps W of W*K rows and extends each K times), blocks of
different lengths are left padded to a common length. A handle always re-feeds its last token, so
the cache is used for its first len(token_ids) - 1 real columns only: whatever a row computed after
that (an EOS, tokens past a stop string, padding) is masked away.

When a handle's block has been evicted, the handle still holds the token ids: the provider
re-encodes them (token exact, just slower).
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass, field

import torch
from transformers.cache_utils import DynamicLayer


@dataclass(frozen=True, eq=False)
class KVHandle:
    """Opaque continuation token for prompt + response so far (Chunk.handle / Extend.handle)."""

    owner: int  # id of the provider instance that made it (handles do not travel between models)
    block_id: int  # the KVBlock holding this row's cache (may have been evicted since)
    row: int  # row of the block
    prompt_key: str  # canonical prompt, to check the handle is used with the same prompt
    response_text: str  # prefix + chunk text: the Extend.prefix this handle continues
    token_ids: tuple[int, ...]  # prompt + response token ids, exactly as the model read them
    n_prompt: int  # how many of token_ids belong to the prompt

    @property
    def response_ids(self) -> tuple[int, ...]:
        return self.token_ids[self.n_prompt :]

    def __repr__(self) -> str:
        return (
            f"KVHandle(block={self.block_id}, row={self.row}, tokens={len(self.token_ids)}, "
            f"response_chars={len(self.response_text)})"
        )


_block_ids = itertools.count(1)


@dataclass(eq=False)
class KVBlock:
    """The KV cache of one generation batch. keys[l], values[l]: [B, H, S, D]; mask: [B, S] bool."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    mask: torch.Tensor
    id: int = field(default_factory=lambda: next(_block_ids))

    @property
    def rows(self) -> int:
        return self.mask.shape[0]

    @property
    def length(self) -> int:
        return self.mask.shape[1]

    @property
    def nbytes(self) -> int:
        """Memory held, counting whole buffers where the tensors are views of larger ones."""
        kv = sum(t.untyped_storage().nbytes() for t in itertools.chain(self.keys, self.values))
        return kv + self.mask.numel()


class KVStore:
    """Blocks by id, least recently used evicted first once their bytes exceed `budget_bytes`.
    The newest block is never evicted (the search is about to continue from it)."""

    def __init__(self, budget_bytes: int):
        self.budget_bytes = budget_bytes
        self._blocks: OrderedDict[int, KVBlock] = OrderedDict()
        self.nbytes = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._blocks)

    def add(self, block: KVBlock) -> None:
        self._blocks[block.id] = block
        self.nbytes += block.nbytes
        while self.nbytes > self.budget_bytes and len(self._blocks) > 1:
            _, old = self._blocks.popitem(last=False)
            self.nbytes -= old.nbytes
            self.evicted += 1

    def get(self, block_id: int) -> KVBlock | None:
        block = self._blocks.get(block_id)
        if block is not None:
            self._blocks.move_to_end(block_id)
        return block

    def clear(self) -> None:
        self._blocks.clear()
        self.nbytes = 0


@dataclass
class RowSource:
    """Where a batch row's cache comes from: the first `n_valid` real columns of block row `row`."""

    block: KVBlock
    row: int
    n_valid: int


@dataclass
class GatheredCache:
    """A batch cache built from handles. mask [B, S] bool marks real columns; n_valid [B] counts them."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    mask: torch.Tensor
    n_valid: torch.Tensor

    @property
    def length(self) -> int:
        return self.mask.shape[1]


def _valid_columns(block: KVBlock, rows: torch.Tensor, n_valid: torch.Tensor) -> torch.Tensor:
    """[b, S] bool: the first n_valid real columns of each selected row."""
    m = block.mask.index_select(0, rows)
    return m & (m.cumsum(1) <= n_valid[:, None])


def gather_rows(
    sources: list[RowSource | None], device: torch.device | str
) -> GatheredCache | None:
    """One batch cache for `sources` (row i of the batch from sources[i]; None = no cache).

    Rows from blocks of different lengths are right aligned (left padded with masked zero columns).
    Returns None when no row has a cache. Takes no copy when the batch is exactly one whole block
    in order (the common case of a search that keeps every row).
    """
    B = len(sources)
    groups: dict[int, tuple[KVBlock, list[int], list[int], list[int]]] = {}
    for i, src in enumerate(sources):
        if src is None:
            continue
        g = groups.setdefault(src.block.id, (src.block, [], [], []))
        g[1].append(i)
        g[2].append(src.row)
        g[3].append(src.n_valid)
    if not groups:
        return None

    S = max(g[0].length for g in groups.values())
    n_valid = torch.zeros(B, dtype=torch.long)
    for i, src in enumerate(sources):
        if src is not None:
            n_valid[i] = src.n_valid
    layers = len(next(iter(groups.values()))[0].keys)

    if len(groups) == 1 and len(next(iter(groups.values()))[1]) == B:
        block, _, rows, nv = next(iter(groups.values()))
        rows_t = torch.tensor(rows, dtype=torch.long, device=block.mask.device)
        mask = _valid_columns(block, rows_t, torch.tensor(nv, device=block.mask.device))
        if rows == list(range(block.rows)):
            keys, values = list(block.keys), list(block.values)
        else:
            keys = [k.index_select(0, rows_t) for k in block.keys]
            values = [v.index_select(0, rows_t) for v in block.values]
        return _trim(GatheredCache(keys, values, mask, n_valid.to(mask.device)))

    ref = next(iter(groups.values()))[0].keys[0]
    H, D = ref.shape[1], ref.shape[3]
    keys = [torch.zeros(B, H, S, D, dtype=ref.dtype, device=ref.device) for _ in range(layers)]
    values = [torch.zeros(B, H, S, D, dtype=ref.dtype, device=ref.device) for _ in range(layers)]
    mask = torch.zeros(B, S, dtype=torch.bool, device=ref.device)
    for block, pos, rows, nv in groups.values():
        pos_t = torch.tensor(pos, dtype=torch.long, device=ref.device)
        rows_t = torch.tensor(rows, dtype=torch.long, device=ref.device)
        off = S - block.length
        mask[pos_t, off:] = _valid_columns(block, rows_t, torch.tensor(nv, device=ref.device))
        for layer in range(layers):
            keys[layer][pos_t, :, off:] = block.keys[layer].index_select(0, rows_t)
            values[layer][pos_t, :, off:] = block.values[layer].index_select(0, rows_t)
    return _trim(GatheredCache(keys, values, mask, n_valid.to(device)))


def _trim(cache: GatheredCache, waste: float = 0.25) -> GatheredCache:
    """Drop columns no row uses when they are more than `waste` of the length (saves attention
    work on later steps at the price of one copy)."""
    used = cache.mask.any(0)
    n_used = int(used.sum())
    if cache.length - n_used <= waste * cache.length:
        return cache
    cols = used.nonzero().squeeze(1)
    return GatheredCache(
        [k.index_select(2, cols) for k in cache.keys],
        [v.index_select(2, cols) for v in cache.values],
        cache.mask.index_select(1, cols),
        cache.n_valid,
    )


class PreallocatedLayer(DynamicLayer):
    """A DynamicLayer whose keys/values live in buffers sized for the whole batch generation
    (prompt + prefix + every decode step), filled in place.

    transformers' DynamicLayer concatenates the new column onto the whole cache at every decode
    step: a copy of [B, H, S, D] per layer per token, quadratic in the answer length, and a fresh
    multi-megabyte allocation each time (the allocator's behaviour then decides how long a run
    takes). Here `update` writes the new columns into the buffer and returns views of the filled
    part, so a decode step copies only its own column.
    """

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self.length = 0
        self._k: torch.Tensor | None = None
        self._v: torch.Tensor | None = None

    def _allocate(self, like_k: torch.Tensor, like_v: torch.Tensor) -> None:
        B, H, _, D = like_k.shape
        # never zeroed: only the filled columns are ever read (attention sees `keys[:length]`)
        self._k = like_k.new_empty(B, H, self.capacity, D)
        self._v = like_v.new_empty(B, H, self.capacity, like_v.shape[-1])
        self.device = like_k.device
        self.is_initialized = True

    def preload(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Start from an existing cache (the columns gathered from earlier batches)."""
        self._allocate(keys, values)
        n = keys.shape[-2]
        self._k[:, :, :n] = keys
        self._v[:, :, :n] = values
        self._set_length(n)

    def _set_length(self, n: int) -> None:
        self.length = n
        self.keys = self._k[:, :, :n]
        self.values = self._v[:, :, :n]

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: object, **kwargs: object
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self._k is None:
            self._allocate(key_states, value_states)
        n = key_states.shape[-2]
        end = self.length + n
        if end > self.capacity:  # more columns than planned: grow (never expected)
            grown_k = self._k.new_empty(*self._k.shape[:2], end, self._k.shape[-1])
            grown_v = self._v.new_empty(*self._v.shape[:2], end, self._v.shape[-1])
            grown_k[:, :, : self.length] = self._k[:, :, : self.length]
            grown_v[:, :, : self.length] = self._v[:, :, : self.length]
            self._k, self._v, self.capacity = grown_k, grown_v, end
        self._k[:, :, self.length : end] = key_states
        self._v[:, :, self.length : end] = value_states
        self._set_length(end)
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self._k is not None:
            self._k = self._k[indices, ...]
            self._v = self._v[indices, ...]
            self._set_length(self.length)

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self._k is not None:
            self._k = self._k.repeat_interleave(repeats, dim=0)
            self._v = self._v.repeat_interleave(repeats, dim=0)
            self._set_length(self.length)

    def filled(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The filled columns (views of the buffers: the spare room of rows that ended early is
        small, and a copy would cost more than it frees)."""
        return self.keys, self.values
