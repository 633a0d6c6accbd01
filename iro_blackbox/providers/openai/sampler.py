"""The cached sampler: every sample the openai provider draws, asked for once and replayed.

Each sample is cached in the store's request_cache under the hash of (base URL, model, endpoint,
request body, seed, sample index), so a repeated run replays with zero HTTP requests and n=8 after
n=4 only asks for samples 4..7. `n` fans out: one request with n choices where the server honours
`n`, else (or for what it left out) one request per sample with its own seed; a greedy request is
asked once and stored under every index. The API key never enters a cache key.
"""

from __future__ import annotations

from typing import Any

from ...params import check_positive_int
from ...utils import stable_hash
from ..base import Chunk, Extend, ProviderStats, TokenHandle, Usage
from ..cache_writer import CacheWriter
from ..chat_template import check_prompt, prompt_key
from .modes import Mode
from .negotiation import Negotiator
from .tokens import TokenCounter
from .transport import CALL_FAILED, Transport, gather_or_stop
from .wire import build_body, context_ids, parse_reply, wire_seed

CACHE_VERSION = 1  # bump when the meaning of a cached entry changes


class CachedSampler:
    """extend() of the openai provider: plan each request, replay what the cache has, ask the
    endpoint for the rest (fanning `n` out as the server allows) and cache every answer."""

    def __init__(
        self,
        name: str,
        model_name: str,
        transport: Transport,
        negotiator: Negotiator,
        tokens: TokenCounter,
        stats: ProviderStats,
        cache: Any = None,
    ):
        self.name = name
        self.model_name = model_name
        self.base_url = transport.base_url
        self.transport = transport
        self.negotiator = negotiator
        self.tokens = tokens
        self.stats = stats
        self.cache = cache  # RequestCacheStore or None
        self._writer = CacheWriter(cache, name) if cache is not None else None

    # -- planning ---------------------------------------------------------------------------
    def cache_request(self, endpoint: str, body: dict, seed: int | None, idx: int) -> dict:
        """The request-cache record of sample `idx` of a planned body (its hash is the key)."""
        return {
            "v": CACHE_VERSION,
            "base_url": self.base_url,
            "model": self.model_name,
            "endpoint": endpoint,
            "body": body,
            "seed": seed,
            "sample_index": idx,
        }

    async def plan(self, req: Extend) -> tuple[Mode, str, dict[str, Any]]:
        """(mode, endpoint, request body without n and seed) that extend() sends for `req`."""
        mode = await self.negotiator.mode_for(req)
        endpoint, body = build_body(
            mode, req, self.model_name, self.tokens, self.negotiator.temperature_ok()
        )
        return mode, endpoint, body

    def parse(self, endpoint: str, body: dict, data: dict[str, Any], url: str) -> list[dict]:
        """Cacheable samples from a reply body; TransientError if it is malformed."""
        return parse_reply(endpoint, body, data, url, self.tokens, self.transport.prices)

    # -- extend -----------------------------------------------------------------------------
    async def extend(self, requests: list[Extend]) -> list[list[Chunk]]:
        """chunks[i][j]: the j-th of requests[i].n continuations (sample index sample_index + j)."""
        token = CALL_FAILED.set([False])
        try:
            return await self._extend(requests)
        finally:
            CALL_FAILED.reset(token)
            if self._writer is not None:
                await self._writer.flush()  # a finished call is on disk, even a failed one

    async def _extend(self, requests: list[Extend]) -> list[list[Chunk]]:
        plans = []
        for r in requests:
            check_prompt(r.prompt)
            check_positive_int("n", r.n)
            check_positive_int("max_tokens", r.max_tokens)
            check_positive_int("sample_index", r.sample_index, minimum=0)
            mode, endpoint, body = await self.plan(r)
            idx = [r.sample_index + j for j in range(r.n)]
            reqs = [self.cache_request(endpoint, body, r.params.seed, i) for i in idx]
            plans.append((r, mode, endpoint, body, idx, [stable_hash(q) for q in reqs]))
        hits: dict[str, dict] = {}
        if self.cache is not None:
            hits = self.cache.get_many([k for *_, keys in plans for k in keys])
        out: list[list[Chunk | None]] = []
        jobs = []
        for r, mode, endpoint, body, idx, keys in plans:
            row: list[Chunk | None] = [None] * r.n
            missing = []
            for j, k in enumerate(keys):
                if k in hits:
                    row[j] = self._chunk(hits[k], True, r, mode)
                    self.stats.cache_hits += 1
                else:
                    missing.append(idx[j])
            out.append(row)
            if missing:
                jobs.append(self._fill(r, mode, endpoint, body, missing, row, idx))
        await gather_or_stop(jobs)
        return out  # type: ignore[return-value]

    async def _fill(
        self,
        r: Extend,
        mode: Mode,
        endpoint: str,
        body: dict,
        missing: list[int],
        row: list[Chunk | None],
        idx: list[int],
    ) -> None:
        seed = r.params.seed
        if r.params.greedy:
            # greedy answers do not depend on the sample: ask once, store it under every index
            first = await self._send(endpoint, body, seed, missing[:1], n=1)
            sample = first[missing[0]]
            got = {i: sample for i in missing}
            if len(missing) > 1 and self._writer is not None:
                self._writer.add(
                    [
                        (stable_hash(q), q, sample)
                        for i in missing[1:]
                        for q in [self.cache_request(endpoint, body, seed, i)]
                    ],
                )
        else:
            got = await self._request_samples(endpoint, body, seed, missing)
        for i, s in got.items():
            row[idx.index(i)] = self._chunk(s, False, r, mode)

    async def _request_samples(
        self, endpoint: str, body: dict, seed_base: int | None, indices: list[int]
    ) -> dict[int, dict]:
        """Samples for `indices`: one request with n=len(indices) where the server honours n,
        else (or for what it left out) one request per sample with its own seed."""
        honoured = self.negotiator.n_honoured
        if len(indices) > 1 and honoured.get(endpoint, True):
            got = await self._send(endpoint, body, seed_base, indices, n=len(indices))
            if len(got) >= len(indices):
                honoured[endpoint] = True
                return got
            honoured[endpoint] = False
            rest = [i for i in indices if i not in got]
            for part in await gather_or_stop(
                [self._send(endpoint, body, seed_base, [i], n=1) for i in rest]
            ):
                got.update(part)
            return got
        results: dict[int, dict] = {}
        for part in await gather_or_stop(
            [self._send(endpoint, body, seed_base, [i], n=1) for i in indices]
        ):
            results.update(part)
        return results

    async def _send(
        self, endpoint: str, body: dict, seed_base: int | None, indices: list[int], n: int
    ) -> dict[int, dict]:
        """One request (with retries) for samples `indices[:n]`; caches what comes back."""
        wire = dict(body)
        if n > 1:
            wire["n"] = n
        seed = wire_seed(seed_base, indices[0])
        if seed is not None:
            wire["seed"] = seed
        est_in = self.tokens.estimate_input(body)
        max_out = int(body.get("max_tokens") or body.get("max_completion_tokens") or 0) * n
        data, hold = await self.transport.post(endpoint, wire, est_in, max_out)
        samples = self.parse(endpoint, body, data, self.base_url + endpoint)
        total = Usage()
        for s in samples:  # every choice returned is billed, even beyond what was asked
            total += Usage(**s["usage"])
        self.transport.account(total, hold, est_in + max_out)
        got = dict(zip(indices, samples[: len(indices)], strict=False))
        if self._writer is not None:
            self._writer.add(
                [
                    (stable_hash(r), r, s)
                    for i, s in got.items()
                    for r in [self.cache_request(endpoint, body, seed_base, i)]
                ],
            )
        return got

    def _chunk(self, sample: dict, cached: bool, req: Extend, mode: Mode) -> Chunk:
        handle = None
        ids = sample.get("token_ids")
        if mode.name == "token-ids":
            ctx = context_ids(req, self.tokens)
            new = ids if ids is not None else self.tokens.encode(sample["text"])
            handle = TokenHandle(
                prompt_key(req.prompt), req.prefix + sample["text"], ctx + tuple(new)
            )
        return Chunk(
            text=sample["text"],
            finish_reason=sample["finish_reason"],
            tokens=list(ids) if ids is not None else None,
            logprobs=sample.get("logprobs"),
            usage=Usage(**sample.get("usage", {})),
            cached=cached,
            handle=handle,
        )
