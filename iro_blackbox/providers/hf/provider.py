"""The local provider `hf`: a transformers causal LM, chunked generation with KV-cache reuse.

    p = HFProvider("smollm2-135m-instruct")          # CUDA + bf16 when available, else CPU fp32
    [[c]] = await p.extend([Extend(messages, max_tokens=16, params=SamplingParams(seed=1))])
    [[c2]] = await p.extend([Extend(messages, prefix=c.text, handle=c.handle, max_tokens=16)])

How a call runs:
- Every row of a call (sum of n over requests) goes through ONE batched forward pass per token:
  rows are left padded, carry an attention mask and their own position ids, so prompts of
  different lengths mix freely. Calls made in the same event-loop tick (asyncio.gather, the
  prompts of a search) are handed to the worker together, so they share a batch however fast the
  worker is; calls made while a batch runs (other coroutines, other HTTP clients, other threads
  with their own event loops) are queued and merged into the next batch.
  The torch work runs in the provider's own worker thread (`_serve`), which settles each call's
  future on the caller's loop, so the event loop stays free and no call depends on another
  caller's loop staying alive. A search sends one call at a time, its prompts in lockstep
  (search/batching.py), so its batches never depend on how fast the worker is.
- A row starts from its context tokens: prompt (chat template applied) + prefix (tokenized the
  first time). With a live handle the context's KV cache comes from the previous batch instead
  (see kv.py) and only the handle's last token is fed again: continuation is token exact. Rows
  with identical contexts (n > 1) are encoded once and their cache rows repeated.
- Sampling: temperature (0 = greedy), top_p, top_k. Row r draws its uniforms from its own
  torch.Generator seeded by derive_seed(seed, prompt, prefix, sample_index + i) and samples by
  inverse CDF, so a seeded request gives the same text alone or in any batch.
- A chunk ends at EOS ("stop", EOS not in the text), at a stop string ("stop", text cut before
  it; the search spans the end of the prefix too), or after max_tokens ("length").
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import deque
from typing import Any

import torch
from transformers import DynamicCache

from ...errors import ConfigError, InputError
from ...models import pick_device
from ...params import check_positive_int
from ..base import Chunk, Extend, Prompt, ProviderStats
from ..chat_template import (
    PromptEncoder,
    check_prompt,
    prompt_key,
    render_prompt,
)
from ..local_requests import check_extend, sample_seeds
from .kv import (
    GatheredCache,
    KVBlock,
    KVHandle,
    KVStore,
    PreallocatedLayer,
    RowSource,
    gather_rows,
)
from .loading import eos_ids, load_model, parse_dtype, plain_dynamic_cache
from .rows import Job, Row, RowText, settle
from .sampling import sample_next

_owner_ids = itertools.count(1)


class HFProvider:
    """A local transformers causal LM behind the Provider protocol (registry name "hf").

    model: alias, folder, .gguf file or hub id (see iro_blackbox.models.resolve_model).
    device: "cuda", "cpu" or None/"auto" (CUDA when available).
    dtype: None/"auto" (bf16 on CUDA, fp32 on CPU), "float32", "bfloat16", "float16".
    max_batch_rows: most rows in one batched forward pass; larger calls run in several batches.
    kv_budget_mb: memory for KV caches kept for handles (least recently used evicted first; the
        newest batch is always kept). 0 turns KV reuse off: every call re-encodes its context.
    """

    name = "hf"

    def __init__(
        self,
        model: str = "smollm2-135m-instruct",
        device: str | None = None,
        dtype: Any = None,
        max_batch_rows: int = 64,
        kv_budget_mb: float = 512.0,
        *,
        _loaded: tuple[Any, Any, str] | None = None,
    ):
        check_positive_int("max_batch_rows", max_batch_rows)
        if isinstance(kv_budget_mb, bool) or not isinstance(kv_budget_mb, (int, float)):
            raise ConfigError(f"kv_budget_mb must be a number >= 0, got {kv_budget_mb!r}")
        if kv_budget_mb < 0:
            raise ConfigError(f"kv_budget_mb must be a number >= 0, got {kv_budget_mb!r}")
        if _loaded is None:
            dev = pick_device(device)
            lm, tok, model_name = load_model(model, dev, parse_dtype(dtype, dev))
        else:
            lm, tok, model_name = _loaded
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        self.model = lm.eval()
        self.tokenizer = tok
        self.model_name = model_name
        self.device = str(next(lm.parameters()).device)
        self.dtype = next(lm.parameters()).dtype
        self.max_batch_rows = max_batch_rows
        self.stats = ProviderStats()
        self.kv_stats = {"handle_hits": 0, "handle_misses": 0, "encoded_tokens": 0,
                         "reused_tokens": 0, "forward_passes": 0}  # fmt: skip
        self._owner = next(_owner_ids)
        self._enc = PromptEncoder(tok)
        self._kv = KVStore(int(kv_budget_mb * 2**20))
        self._kv_enabled = kv_budget_mb > 0 and plain_dynamic_cache(lm)
        # in-place KV buffers instead of a concatenation per decode step (plain layers only)
        self._preallocate = plain_dynamic_cache(lm)
        self._eos = eos_ids(lm, tok)
        self._text = RowText(tok, self._eos, self._owner)
        self._pad = tok.pad_token_id if tok.pad_token_id is not None else min(self._eos, default=0)
        self.max_context = int(getattr(lm.config, "max_position_embeddings", 0) or 1 << 30)
        self._torch_lock = threading.Lock()  # one batch on the model at a time
        self._cv = threading.Condition()  # guards the queue and the worker below
        self._queue: deque[Row] = deque()
        self._held: dict[asyncio.AbstractEventLoop, list[Row]] = {}  # rows of this tick's calls
        self._worker: threading.Thread | None = None
        self._stop = False
        self._threads = torch.get_num_threads()

    @classmethod
    def from_options(cls, options: Any, store: Any = None) -> HFProvider:
        """The provider a run's ProviderOptions describe (model, device); no request cache."""
        return cls(options.model, device=options.device)

    @classmethod
    def from_model(cls, model: Any, tokenizer: Any, name: str | None = None, **kwargs: Any):
        """Wrap an already loaded (model, tokenizer) pair (tests, notebooks)."""
        name = name or getattr(model.config, "_name_or_path", "") or type(model).__name__
        return cls(_loaded=(model, tokenizer, name), **kwargs)

    # ---- small public helpers -------------------------------------------------------------

    def render_prompt(self, prompt: Prompt) -> str:
        """The text the model reads before the response (chat template applied to messages)."""
        return render_prompt(self.tokenizer, prompt)

    def count_prompt(self, prompt: Prompt) -> int:
        """Tokens of a prompt as the model reads it (chat template applied)."""
        return len(self._enc.prompt_ids(prompt))

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` in this model's vocabulary (no special tokens added)."""
        return len(self.tokenizer.encode(text, add_special_tokens=False)) if text else 0

    def describe(self) -> dict[str, Any]:
        return {
            "provider": self.name,
            "model": self.model_name,
            "device": self.device,
            "dtype": str(self.dtype).replace("torch.", ""),
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "max_context": self.max_context,
            "max_batch_rows": self.max_batch_rows,
            "kv_budget_mb": self._kv.budget_bytes / 2**20,
            "capabilities": {
                "n": True,
                "seed": True,
                "logprobs": True,
                "score": True,
                "stop": True,
                "kv_handles": self._kv_enabled,
                "token_exact_continuation": True,
            },
        }

    def cache_info(self) -> dict[str, Any]:
        """KV reuse counters and the memory held for handles."""
        return {**self.kv_stats, "blocks": len(self._kv), "bytes": self._kv.nbytes,
                "evicted_blocks": self._kv.evicted}  # fmt: skip

    async def aclose(self) -> None:
        """Drop the KV caches kept for handles (after the running batch, if any)."""

        def clear() -> None:
            with self._cv:
                self._stop = True
                self._cv.notify_all()
            with self._torch_lock:
                self._kv.clear()

        await asyncio.to_thread(clear)

    # ---- extend: validation, queueing, coalescing -------------------------------------------

    async def extend(self, requests: list[Extend]) -> list[list[Chunk]]:
        if not isinstance(requests, list):
            raise InputError(f"extend takes a list of Extend, got {type(requests).__name__}")
        loop = asyncio.get_running_loop()
        job = Job(loop, loop.create_future(), [], 0)
        rows = [row for i, req in enumerate(requests) for row in self._rows(job, i, req)]
        if not rows:
            return [list(r) for r in job.results]  # type: ignore[misc]
        job.remaining = len(rows)
        self._threads = torch.get_num_threads()  # the caller's setting, applied in the worker
        with self._cv:
            waiting = self._held.setdefault(loop, [])
            first = not waiting
            waiting.extend(rows)
        if first:  # after every coroutine woken in this tick has added its rows
            loop.call_soon(self._release, loop)
        return await job.future

    def _release(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hand the rows this loop's calls made in one tick to the worker, as one queue entry:
        calls made together (asyncio.gather, many prompts of a search) share a batch whatever the
        worker thread is doing, so batching does not depend on timing."""
        with self._cv:
            self._queue.extend(self._held.pop(loop, []))
            self._cv.notify()
            if self._worker is None or not self._worker.is_alive():
                self._stop = False
                self._worker = threading.Thread(target=self._serve, name="iro-hf", daemon=True)
                self._worker.start()

    def _rows(self, job: Job, i: int, req: Any) -> list[Row]:
        """Validate one request and turn it into its n rows (raises before anything is queued)."""
        n, max_tokens, start, params = check_extend(i, req)
        pkey = prompt_key(req.prompt)
        handle = req.handle
        if not (
            isinstance(handle, KVHandle)
            and handle.owner == self._owner
            and handle.prompt_key == pkey
            and handle.response_text == req.prefix
        ):
            if handle is not None:
                self.kv_stats["handle_misses"] += 1
            handle = None
        if handle is not None:
            context, n_prompt = handle.token_ids, handle.n_prompt
        else:
            pids = self._enc.prompt_ids(req.prompt, pkey)
            context, n_prompt = pids + tuple(self._enc.encode_text(req.prefix)), len(pids)
        if not context:
            raise InputError("the prompt is empty: give it some text")
        if len(context) + max_tokens > self.max_context:
            raise ConfigError(
                f"max_tokens {max_tokens} + context {len(context)} tokens exceeds the model's "
                f"context of {self.max_context} tokens"
            )
        job.results.append([None] * n)
        return [
            Row(job, i, j, pkey, req.prefix, params, max_tokens, seed, context, n_prompt, handle)
            for j, seed in enumerate(sample_seeds(req, params, n, start))
        ]

    def _serve(self, idle_seconds: float = 30.0) -> None:
        """Worker thread: run queued rows in batches of at most max_batch_rows; exit when idle."""
        while True:
            with self._cv:
                if not self._queue and not self._stop:
                    self._cv.wait(timeout=idle_seconds)
                if not self._queue:
                    self._worker = None
                    return
                batch: list[Row] = []
                while self._queue and len(batch) < self.max_batch_rows:
                    row = self._queue.popleft()
                    if not row.job.future.done():  # skip rows of failed or cancelled calls
                        batch.append(row)
            if not batch:
                continue
            try:
                self._run_batch(batch)
            except BaseException as e:  # noqa: BLE001 - delivered to every caller in the batch
                for job in {id(r.job): r.job for r in batch}.values():
                    settle(job, exc=e)
                continue
            for row in batch:
                row.job.results[row.req][row.sample] = row.chunk
                row.job.remaining -= 1
                if row.job.remaining == 0:
                    settle(row.job, value=row.job.results)

    # ---- the batch: prefill + decode loop (runs in a worker thread) --------------------------

    def _use_callers_threads(self) -> None:
        """Worker threads keep the torch thread count they started with: follow the caller's."""
        if torch.get_num_threads() != self._threads:
            torch.set_num_threads(self._threads)

    def _run_batch(self, rows: list[Row]) -> None:
        with self._torch_lock, torch.inference_mode():
            self._use_callers_threads()
            self.stats.requests += 1
            for row in rows:
                self._attach_cache(row)
            block = self._generate(rows)
            if block is not None and self._kv_enabled:
                self._kv.add(block)
            for r, row in enumerate(rows):
                row.chunk = self._text.chunk(row, block, r)
                self.stats.prompt_tokens += row.chunk.usage.prompt_tokens
                self.stats.completion_tokens += row.chunk.usage.completion_tokens

    def _attach_cache(self, row: Row) -> None:
        """Use the handle's KV cache when its block is still kept, else re-encode the context."""
        row.new, row.logprobs, row.sampled, row.finish, row.text = [], [], 0, None, None
        block = None
        if row.handle is not None and self._kv_enabled:
            block = self._kv.get(row.handle.block_id)
        if block is not None and row.handle.row < block.rows:
            row.source = RowSource(block, row.handle.row, len(row.context) - 1)
            row.pending = row.context[-1:]
            self.kv_stats["handle_hits"] += 1
        else:
            if row.handle is not None:
                self.kv_stats["handle_misses"] += 1
            row.source, row.pending = None, row.context

    def _generate(self, rows: list[Row]) -> KVBlock | None:
        """Prefill every row, then sample one token per row per forward pass until all finish.
        Returns the batch's KV cache as a block (None when KV reuse is off)."""
        dev = self.device
        B = len(rows)
        steps = max(r.max_tokens for r in rows)
        cache, mask, logits, pos, cur = self._prefill(rows, steps)

        # Per-row sampling settings and pre-drawn uniforms (each row from its own generator).
        temps = torch.tensor([r.params.temperature or 1.0 for r in rows], device=dev)
        greedy = torch.tensor([r.params.greedy for r in rows], device=dev)
        top_p = torch.tensor([float(r.params.top_p) for r in rows], device=dev)
        top_k = torch.tensor([r.params.top_k for r in rows], device=dev)
        filtered = (top_p < 1.0) | (top_k > 0)
        uniforms = torch.zeros(B, steps)
        for b, r in enumerate(rows):
            if not r.params.greedy:
                g = torch.Generator().manual_seed(r.seed)
                uniforms[b, : r.max_tokens] = torch.rand(r.max_tokens, generator=g)
        uniforms = uniforms.to(dev)
        want_lp = any(r.params.logprobs for r in rows)
        active = torch.ones(B, dtype=torch.bool, device=dev)
        live = list(range(B))

        for step in range(steps):
            tok = sample_next(
                logits, temps, greedy | ~active, top_p, top_k, filtered, uniforms[:, step]
            )
            lps = None
            if want_lp:
                lps = (logits.gather(1, tok[:, None])[:, 0] - logits.logsumexp(-1)).tolist()
            toks = tok.tolist()
            still = [
                b for b in live if not self._text.take(rows[b], toks[b], lps[b] if lps else None)
            ]
            if len(still) < len(live):
                active[sorted(set(live) - set(still))] = False
            live = still
            if not live:
                break
            # Feed the sampled tokens; finished rows get a masked pad.
            feed = torch.where(active, tok, torch.full_like(tok, self._pad))
            mask[:, cur] = active
            cur += 1
            logits = self._forward(feed[:, None], mask[:, :cur], pos[:, None], cache)
            pos += 1

        if not self._kv_enabled:
            return None
        kv = [
            lyr.filled() if isinstance(lyr, PreallocatedLayer) else (lyr.keys, lyr.values)
            for lyr in cache.layers
        ]
        return KVBlock([k for k, _ in kv], [v for _, v in kv], mask[:, :cur])

    def _prefill(self, rows: list[Row], steps: int):
        """Gather the rows' cached KV, feed their pending tokens (left padded) in one forward pass.
        Returns (cache, mask [B, S+P+steps] with room for the decode steps, next-token logits
        [B, V], next position ids [B], columns used)."""
        dev = self.device
        B = len(rows)
        # Rows with the same cache source and pending tokens are encoded once, then repeated.
        keys = [
            (id(r.source.block), r.source.row, r.source.n_valid) if r.source else None for r in rows
        ]
        uniq: dict[Any, int] = {}
        inverse = [
            uniq.setdefault((k, r.pending), len(uniq)) for k, r in zip(keys, rows, strict=True)
        ]
        firsts = [rows[inverse.index(u)] for u in range(len(uniq))]
        saved = sum(len(r.pending) for r in rows) - sum(len(r.pending) for r in firsts)
        if saved <= B:  # repeating cache rows costs a copy: only worth it for long contexts
            firsts, inverse = rows, list(range(B))
        U = len(firsts)

        gathered: GatheredCache | None = gather_rows([r.source for r in firsts], dev)
        S = gathered.length if gathered is not None else 0
        P = max(len(r.pending) for r in firsts)
        plen = torch.tensor([len(r.pending) for r in firsts], device=dev)
        ids = torch.full((U, P), self._pad, dtype=torch.long)
        for u, r in enumerate(firsts):
            ids[u, P - len(r.pending) :] = torch.tensor(r.pending, dtype=torch.long)
        ids = ids.to(dev)
        mask = torch.zeros(U, S + P + steps, dtype=torch.bool, device=dev)
        if gathered is not None:
            mask[:, :S] = gathered.mask
        mask[:, S : S + P] = torch.arange(P, device=dev)[None, :] >= (P - plen)[:, None]
        start = (
            gathered.n_valid
            if gathered is not None
            else torch.zeros(U, dtype=torch.long, device=dev)
        )
        positions = (
            start[:, None] + torch.arange(P, device=dev)[None, :] - (P - plen)[:, None]
        ).clamp(min=0)
        self.kv_stats["encoded_tokens"] += int(plen.sum())
        self.kv_stats["reused_tokens"] += int(start.sum())

        cache = self._new_cache(gathered, S + P + steps)
        logits = self._forward(ids, mask[:, : S + P], positions, cache)
        pos = start + plen
        cur = S + P
        if U < B:
            inv = torch.tensor(inverse, device=dev)
            cache.batch_select_indices(inv)
            mask, logits, pos = mask[inv], logits[inv], pos[inv]
        return cache, mask, logits, pos, cur

    def _new_cache(self, gathered: GatheredCache | None, capacity: int) -> DynamicCache:
        """The batch's cache: preallocated for every column it will hold (see kv.py), starting
        from the gathered columns of earlier batches when there are any."""
        cache = DynamicCache(config=self.model.config)
        if self._preallocate:
            cache.layers = [PreallocatedLayer(capacity) for _ in cache.layers]
        if gathered is not None:
            for layer, k, v in zip(cache.layers, gathered.keys, gathered.values, strict=True):
                if isinstance(layer, PreallocatedLayer):
                    layer.preload(k, v)
                else:
                    layer.lazy_initialization(k, v)
                    layer.keys, layer.values = k, v
        return cache

    def _forward(self, ids, mask, positions, cache) -> torch.Tensor:
        """One batched forward pass; returns the next-token logits [B, V] in fp32."""
        self.kv_stats["forward_passes"] += 1
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return out.logits[:, -1, :].float()

    # ---- score -------------------------------------------------------------------------------

    async def score(self, prompt: Prompt, text: str) -> list[float]:
        """Token logprobs of `text` as the response to `prompt` (one forward pass)."""
        check_prompt(prompt)
        if not isinstance(text, str):
            raise InputError(f"text must be a string, got {type(text).__name__}")
        pids = self._enc.prompt_ids(prompt)
        tids = self._enc.encode_text(text)
        if not tids:
            return []
        if not pids:
            raise InputError("the prompt is empty: give it some text")
        if len(pids) + len(tids) > self.max_context:
            raise ConfigError(
                f"prompt + text exceed the model's context of {self.max_context} tokens"
            )
        self._threads = torch.get_num_threads()
        return await asyncio.to_thread(self._score_sync, list(pids), tids)

    def _score_sync(self, pids: list[int], tids: list[int]) -> list[float]:
        with self._torch_lock, torch.inference_mode():
            self._use_callers_threads()
            self.stats.requests += 1
            self.stats.prompt_tokens += len(pids) + len(tids)
            self.kv_stats["forward_passes"] += 1
            ids = torch.tensor([pids + tids], device=self.device)
            logits = self.model(input_ids=ids, logits_to_keep=len(tids) + 1).logits[0, :-1].float()
            target = torch.tensor(tids, device=self.device)
            lp = logits.gather(1, target[:, None])[:, 0] - logits.logsumexp(-1)
            return lp.tolist()
