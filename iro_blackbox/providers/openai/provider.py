"""The `openai` provider: any OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp, DeepSeek, ...).

    p = OpenAIProvider("smollm2-135m-instruct", base_url="http://127.0.0.1:8000/v1", store=store)
    chunks = await p.extend([Extend(messages, prefix="The answer", n=4, max_tokens=16)])

How a prefix is continued (mode="auto" picks the first that works, see `probe()`):
- "completions": POST /completions with prompt = chat template rendered locally (`tokenizer`,
  default: the model name when it is a local alias) + prefix; `logprobs=1` when asked.
- "chat-continue": POST /chat/completions with the prefix as a partial assistant message,
  `continue_final_message: true, add_generation_prompt: false` (vLLM).
- "chat": whole-response sampling only (an empty prefix); a prefix is a PermanentError.

Every sample is cached in the store's request_cache under the hash of (base URL, model, endpoint,
request body, seed, sample index), so a repeated run replays with zero HTTP requests and n=8 after
n=4 only asks for samples 4..7. The API key never enters a cache key, the store, describe(), logs
or error messages.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from typing import Any, Literal

from ...credentials import api_key_for
from ...errors import ConfigError, PermanentError, TransientError
from ...models import ALIASES
from ...params import SamplingParams, check_positive_int
from ...store.cache import RequestCacheStore
from ...tokenizers import load_tokenizer
from ...utils import canonical_json, derive_seed, stable_hash
from ..base import Chunk, Extend, Prompt, ProviderStats, Usage
from ..cache_writer import CacheWriter
from ..chat_template import check_prompt, prompt_key, render_prompt
from ..options import API_MODES
from . import batch
from .http import HttpClient, HTTPStatusError
from .pricing import count_tiktoken, is_openai_model, parse_prices
from .probe import CHAT, COMPLETIONS, echo_slice, probe_endpoint
from .ratelimit import RateLimiter
from .retry import RetryPolicy, call_with_retries

log = logging.getLogger("iro_blackbox.openai")

Mode = Literal["auto", "completions", "chat-continue", "chat"]
MODES = API_MODES
DEFAULT_BASE_URL = "https://api.openai.com/v1"
CACHE_VERSION = 1  # bump when the meaning of a cached entry changes
# OpenAI models whose chat endpoint takes max_completion_tokens instead of max_tokens
_MAX_COMPLETION_TOKENS_MODELS = ("o1", "o3", "o4", "gpt-5")


def _seed(base: int | None, sample_index: int) -> int | None:
    """The seed sent for sample `sample_index` (31 bits: some servers take int32 only)."""
    return None if base is None else derive_seed(base, sample_index) % (2**31)


# Set per extend()/score() call: once one request of the call fails permanently, the requests of
# the same call still queued for a slot are not sent (the first error is what the caller sees).
_CALL_FAILED: ContextVar[list[bool] | None] = ContextVar("iro_openai_call_failed", default=None)


class _Skipped(Exception):
    """A queued request not sent because another request of the same call failed for good."""


async def _gather_or_cancel(coros: list[Coroutine[Any, Any, Any]]) -> list[Any]:
    """Like gather, but the first failure cancels the rest (finished work is already cached)."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    if not tasks:
        return []
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        errors = [t.exception() for t in tasks if t.done() and t.exception() is not None]
        if errors:
            raise next((e for e in errors if not isinstance(e, _Skipped)), errors[0])
        return [t.result() for t in tasks]
    finally:
        for t in tasks:
            if not t.done():
                t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class OpenAIProvider:
    """Chunked generation from an OpenAI-compatible HTTP endpoint, every response cached.

    Args:
        model: the model name the server knows.
        base_url: endpoint root ending in /v1 (default OpenAI's).
        api_key: else env OPENAI_API_KEY, else the config file (see iro_blackbox.config); local
            servers need none (a dummy is sent).
        store: a Store; responses are cached in its request_cache table (None: no cache).
        cache: False = do not read the cache (responses are still written).
        mode: "auto" | "completions" | "chat-continue" | "chat" (whole responses only).
        tokenizer: local model spec whose chat template renders chat prompts for /completions
            (default: `model` when it is a local alias such as smollm2-135m-instruct).
        concurrency: HTTP requests in flight at most.
        rpm, tpm: requests / tokens per minute limits (None = none).
        timeout: seconds per HTTP request.
        max_retries: retries of a transient failure (429, 408, 5xx, timeout, reset, bad JSON).
        prices: USD per 1M tokens {"prompt": p, "completion": c} for cost accounting.
        sleep: async sleep used for backoff and rate limiting (tests inject a recorder).
        retry_policy: backoff settings (default RetryPolicy(max_retries)).
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        store: Any = None,
        cache: bool = True,
        mode: Mode = "auto",
        tokenizer: str | None = None,
        concurrency: int = 8,
        rpm: int | None = None,
        tpm: int | None = None,
        timeout: float = 60.0,
        max_retries: int = 6,
        prices: dict[str, float] | None = None,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
        retry_policy: RetryPolicy | None = None,
    ):
        if not isinstance(model, str) or not model.strip():
            raise ConfigError(f"model must be a non-empty string, got {model!r}")
        if mode not in MODES:
            raise ConfigError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        check_positive_int("concurrency", concurrency)
        check_positive_int("max_retries", max_retries, minimum=0)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url must start with http:// or https://, got {base_url!r}")
        self.model_name = model
        self.base_url = base_url
        self.mode: Mode = mode
        self.tokenizer_spec = tokenizer or self._alias_tokenizer(model)
        self.concurrency = concurrency
        self.timeout = float(timeout)
        self.stats = ProviderStats()
        self.prices = parse_prices(prices, model, base_url)
        self._sleep = sleep or asyncio.sleep
        self._policy = retry_policy or RetryPolicy(max_retries=max_retries)
        self._limiter = RateLimiter(rpm, tpm, sleep=self._sleep)
        self._rpm, self._tpm = rpm, tpm
        key = api_key_for(base_url, api_key)
        self._has_key = key is not None
        self._http = HttpClient(base_url, key, self.timeout)
        self._cache = None
        self._writer: CacheWriter | None = None
        if store is not None:
            self._cache = RequestCacheStore(store, enabled=cache)
            self._writer = CacheWriter(self._cache, self.name)
        self._sem: asyncio.Semaphore | None = None
        self._sem_loop: Any = None
        self._probe_lock: asyncio.Lock | None = None
        self._caps: dict[str, Any] | None = None
        self._n_honoured: dict[str, bool] = {}  # endpoint -> does the server honour n?
        self._rendered: dict[str, str] = {}

    @classmethod
    def from_options(cls, options: Any, store: Any = None) -> OpenAIProvider:
        """The provider a run's ProviderOptions describe; responses cached in `store`."""
        return cls(
            model=options.model,
            base_url=options.base_url,
            store=store,
            cache=not options.no_cache,
            mode=options.api_mode,
            tokenizer=options.tokenizer,
            concurrency=options.concurrency,
        )

    # ------------------------------------------------------------------ plumbing

    @staticmethod
    def _alias_tokenizer(model: str) -> str | None:
        return model if model.lower() in ALIASES else None

    def _loop_state(self) -> tuple[asyncio.Semaphore, asyncio.Lock]:
        loop = asyncio.get_running_loop()
        if self._sem is None or self._sem_loop is not loop:
            self._sem = asyncio.Semaphore(self.concurrency)
            self._probe_lock = asyncio.Lock()
            self._sem_loop = loop
        assert self._probe_lock is not None
        return self._sem, self._probe_lock

    async def __aenter__(self) -> OpenAIProvider:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def _on_retry(self, err: TransientError, wait: float, attempt: int) -> None:
        self.stats.retries += 1
        log.warning("retry %d in %.2fs after: %s", attempt, wait, self._http.scrub(str(err)))

    async def _post(self, endpoint: str, body: dict[str, Any], est_tokens: int) -> dict[str, Any]:
        """One logical request: rate limit, concurrency cap, retries of transient failures."""
        sem, _ = self._loop_state()

        async def attempt() -> dict[str, Any]:
            await self._limiter.acquire(est_tokens)
            failed = _CALL_FAILED.get()
            async with sem:
                if failed is not None and failed[0]:
                    raise _Skipped()
                self.stats.requests += 1
                try:
                    return await self._http.post_json(endpoint, body)
                except PermanentError:
                    if failed is not None:
                        failed[0] = True
                    raise

        return await call_with_retries(attempt, self._policy, self._sleep, self._on_retry)

    def _account(self, usage: Usage, est_tokens: int) -> None:
        self.stats.prompt_tokens += usage.prompt_tokens
        self.stats.completion_tokens += usage.completion_tokens
        self.stats.cost_usd += self.prices.cost(usage.prompt_tokens, usage.completion_tokens)
        self._limiter.settle(est_tokens, usage.prompt_tokens + usage.completion_tokens)

    # ------------------------------------------------------------------ probing

    async def _try(self, endpoint: str, body: dict[str, Any]) -> tuple[dict | None, str]:
        """A probe request: (reply, "") on success, (None, reason) when the server refuses it.
        401/403 are raised: no endpoint will work with a bad key."""
        try:
            return await self._post(endpoint, body, est_tokens=16), ""
        except HTTPStatusError as e:
            if e.status in (401, 403):
                raise
            return None, f"{e.status}: {e.detail}"

    async def probe(self) -> dict[str, Any]:
        """What the endpoint can do (cached in the provider and the store): which endpoints work,
        whether `n` is honoured, logprobs, chat continuation, echo scoring."""
        if self._caps is not None:
            return self._caps
        _, lock = self._loop_state()
        async with lock:
            if self._caps is not None:
                return self._caps
            req = {"kind": "probe", "v": CACHE_VERSION, "base_url": self.base_url}
            req["model"] = self.model_name
            key = stable_hash(req)
            hit = self._cache.get(key) if self._cache is not None else None
            if hit is not None:
                caps = hit
            else:
                token = _CALL_FAILED.set(None)  # a refused probe must not stop the caller's call
                try:
                    caps = await probe_endpoint(self._try, self.base_url, self.model_name)
                finally:
                    _CALL_FAILED.reset(token)
                if self._cache is not None:
                    self._cache.put(key, self.name, req, caps)
            for ep, field in ((COMPLETIONS, "completions_n"), (CHAT, "chat_n")):
                if caps.get(field) is not None:
                    self._n_honoured.setdefault(ep, bool(caps[field]))
            self._caps = caps
            return caps

    def describe(self) -> dict[str, Any]:
        """Settings and (once probed) capabilities; never the API key."""
        return {
            "provider": self.name,
            "model": self.model_name,
            "base_url": self.base_url,
            "mode": self.mode,
            "tokenizer": self.tokenizer_spec,
            "api_key_set": self._has_key,
            "concurrency": self.concurrency,
            "rpm": self._rpm,
            "tpm": self._tpm,
            "timeout": self.timeout,
            "max_retries": self._policy.max_retries,
            "prices_usd_per_1m": {
                "prompt": self.prices.prompt,
                "completion": self.prices.completion,
            },
            "cache": None
            if self._cache is None
            else ("read-write" if self._cache.enabled else "write-only"),
            "capabilities": self._caps,
            "n_honoured": dict(self._n_honoured),
        }

    # ------------------------------------------------------------------ requests

    def _render(self, prompt: Prompt) -> str:
        """Prompt text for /completions: chat messages through the local chat template."""
        if isinstance(prompt, str):
            return prompt
        key = prompt_key(prompt)
        if key not in self._rendered:
            if not self.tokenizer_spec:
                raise PermanentError(
                    f"openai: chat prompts sent to {self.base_url}{COMPLETIONS} need a chat "
                    "template: pass tokenizer=<local model spec> (e.g. smollm2-135m-instruct)"
                )
            self._rendered[key] = render_prompt(load_tokenizer(self.tokenizer_spec), prompt)
        return self._rendered[key]

    @staticmethod
    def _messages(prompt: Prompt) -> list[dict[str, str]]:
        if isinstance(prompt, str):
            return [{"role": "user", "content": prompt}]
        return [dict(m) for m in prompt]

    async def _choose_endpoint(self, req: Extend) -> str:
        """'completions', 'chat-continue' or 'chat' for this request."""
        mode = self.mode
        if mode == "auto":
            caps = await self.probe()
            can_render = isinstance(req.prompt, str) or self.tokenizer_spec is not None
            if caps["completions"] and can_render:
                mode = "completions"
            elif caps["chat_continue"]:
                mode = "chat-continue"
            elif caps["chat"]:
                mode = "chat"
            elif caps["completions"]:
                mode = "completions"  # _render explains the missing template
            else:
                raise PermanentError(
                    f"openai: neither /completions nor /chat/completions works at "
                    f"{self.base_url} for model '{self.model_name}': {'; '.join(caps['notes'])}"
                )
        if mode == "chat" and req.prefix:
            raise PermanentError(
                f"openai: {self.base_url} (model '{self.model_name}') cannot continue a partial "
                "answer: it has no usable /completions (or no chat template: pass tokenizer=) and "
                "no chat continuation (continue_final_message); only whole responses (empty "
                "prefix) can be sampled, e.g. Best-of-N"
            )
        return mode

    def _body(self, mode: str, req: Extend) -> tuple[str, dict[str, Any]]:
        """(endpoint, request body without n and seed)."""
        p: SamplingParams = req.params
        body: dict[str, Any] = {"model": self.model_name}
        if mode == "completions":
            endpoint = COMPLETIONS
            body["prompt"] = self._render(req.prompt) + req.prefix
        else:
            endpoint = CHAT
            msgs = self._messages(req.prompt)
            if mode == "chat-continue" and req.prefix:
                msgs.append({"role": "assistant", "content": req.prefix})
                body["continue_final_message"] = True
                body["add_generation_prompt"] = False
            body["messages"] = msgs
        if endpoint == CHAT and self.model_name.lower().startswith(_MAX_COMPLETION_TOKENS_MODELS):
            body["max_completion_tokens"] = (
                req.max_tokens
            )  # OpenAI reasoning models refuse max_tokens
        else:
            body["max_tokens"] = req.max_tokens
        body["temperature"] = float(p.temperature)
        if p.top_p < 1.0:
            body["top_p"] = float(p.top_p)
        if p.top_k > 0:
            body["top_k"] = p.top_k
        if p.stop:
            body["stop"] = list(p.stop)
        if p.logprobs:
            if endpoint == COMPLETIONS:
                body["logprobs"] = 1
            else:  # llama-cpp-python returns chat logprobs only with top_logprobs
                body["logprobs"], body["top_logprobs"] = True, 1
        return endpoint, body

    # -- the Batch API (batch.py), and the seam it uses ------------------------------------------

    async def prefetch(self, requests: list[Extend], **kw: Any) -> batch.BatchReport:
        """Fill the request cache with every sample of `requests` (whole responses) through the
        Batch API, at half price; the following extend() calls then replay them. `kw`: see
        batch.prefetch (cancel_check, on_status, poll_interval, ...)."""
        client = batch.BatchClient(
            self._http, max_retries=self._policy.max_retries, sleep=self._sleep
        )
        return await batch.prefetch(self, requests, client=client, **kw)

    @staticmethod
    def wire_seed(base: int | None, sample_index: int) -> int | None:
        """The seed sent for sample `sample_index` of a request seeded `base`."""
        return _seed(base, sample_index)

    @property
    def request_cache(self) -> Any:
        """The request cache in the store (None without a store)."""
        return self._cache

    async def plan(self, req: Extend) -> tuple[str, dict[str, Any]]:
        """(endpoint, request body without n and seed) that `extend` would send for `req`."""
        return self._body(await self._choose_endpoint(req), req)

    def cache_request(self, endpoint: str, body: dict, seed: int | None, idx: int) -> dict:
        """The request-cache record of sample `idx` of a planned body (its hash is the key)."""
        return self._cache_request(endpoint, body, seed, idx)

    def parse_reply(self, endpoint: str, body: dict, data: dict[str, Any], url: str) -> list[dict]:
        """Cacheable samples from a reply body; TransientError if it is malformed."""
        return self._parse(endpoint, body, data, url)

    def honours_n(self, endpoint: str) -> bool:
        """Whether the server returns n choices on `endpoint` (True until the probe says not)."""
        return self._n_honoured.get(endpoint, True)

    def _cache_request(self, endpoint: str, body: dict, seed: int | None, idx: int) -> dict:
        return {
            "v": CACHE_VERSION,
            "base_url": self.base_url,
            "model": self.model_name,
            "endpoint": endpoint,
            "body": body,
            "seed": seed,
            "sample_index": idx,
        }

    def _estimate_tokens(self, body: dict[str, Any], n: int) -> int:
        text = body.get("prompt") or canonical_json(body.get("messages", ""))
        limit = body.get("max_tokens") or body.get("max_completion_tokens") or 0
        return len(text) // 4 + limit * n

    def _count(self, text: str) -> int | None:
        """Token count where the server gave none: tiktoken for OpenAI models, else the local
        tokenizer when one is configured, else unknown."""
        if is_openai_model(self.model_name):
            return count_tiktoken(text)
        if self.tokenizer_spec:
            return len(
                load_tokenizer(self.tokenizer_spec)(text, add_special_tokens=False).input_ids
            )
        return None

    def _parse(self, endpoint: str, body: dict, data: dict[str, Any], url: str) -> list[dict]:
        """Cacheable sample dicts from a reply: text, finish_reason, logprobs, usage."""
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices:
            raise TransientError(f"openai: malformed reply from {url}: no choices")
        choices = sorted(choices, key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0)
        out = []
        for c in choices:
            if not isinstance(c, dict):
                raise TransientError(f"openai: malformed reply from {url}: bad choice")
            lps: list[float] | None = None
            if endpoint == COMPLETIONS:
                text = c.get("text")
                lp = c.get("logprobs") or {}
                if isinstance(lp, dict) and lp.get("token_logprobs") is not None:
                    lps = [float(x) if x is not None else 0.0 for x in lp["token_logprobs"]]
            else:
                msg = c.get("message") or {}
                text = msg.get("content") if isinstance(msg, dict) else None
                text = "" if text is None and isinstance(msg, dict) else text
                lp = c.get("logprobs") or {}
                if isinstance(lp, dict) and lp.get("content") is not None:
                    lps = [float(t.get("logprob", 0.0)) for t in lp["content"]]
            if not isinstance(text, str):
                raise TransientError(f"openai: malformed reply from {url}: choice without text")
            out.append(
                {
                    "text": text,
                    "finish_reason": "length" if c.get("finish_reason") == "length" else "stop",
                    "server_finish_reason": c.get("finish_reason"),
                    "logprobs": lps,
                }
            )
        # usage: the server's, split over the choices (sums stay exact); else counted locally
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        pt, ct = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if pt is None:
            prompt_text = body.get("prompt") or "\n".join(
                m.get("content", "") for m in body.get("messages", [])
            )
            pt = self._count(prompt_text) or 0
        per_choice_ct: list[int]
        if ct is None:
            per_choice_ct = []
            for s in out:
                n_tok = len(s["logprobs"]) if s["logprobs"] is not None else self._count(s["text"])
                per_choice_ct.append(n_tok or 0)
        else:
            per_choice_ct = _split(int(ct), len(out))
            if all(s["logprobs"] is not None for s in out) and sum(
                len(s["logprobs"]) for s in out
            ) == int(ct):
                per_choice_ct = [len(s["logprobs"]) for s in out]
        per_choice_pt = _split(int(pt), len(out))
        for s, p_, c_ in zip(out, per_choice_pt, per_choice_ct, strict=True):
            s["usage"] = {"prompt_tokens": p_, "completion_tokens": c_}
        return out

    async def _request_samples(
        self, endpoint: str, body: dict, seed_base: int | None, indices: list[int]
    ) -> dict[int, dict]:
        """Samples for `indices`: one request with n=len(indices) where the server honours n,
        else (or for what it left out) one request per sample with its own seed."""
        if len(indices) > 1 and self._n_honoured.get(endpoint, True):
            got = await self._send(endpoint, body, seed_base, indices, n=len(indices))
            if len(got) >= len(indices):
                self._n_honoured[endpoint] = True
                return got
            self._n_honoured[endpoint] = False
            rest = [i for i in indices if i not in got]
            for part in await _gather_or_cancel(
                [self._send(endpoint, body, seed_base, [i], n=1) for i in rest]
            ):
                got.update(part)
            return got
        results: dict[int, dict] = {}
        for part in await _gather_or_cancel(
            [self._send(endpoint, body, seed_base, [i], n=1) for i in indices]
        ):
            results.update(part)
        return results

    async def _send(
        self, endpoint: str, body: dict, seed_base: int | None, indices: list[int], n: int
    ) -> dict[int, dict]:
        """One HTTP request (with retries) for samples `indices[:n]`; caches what comes back."""
        wire = dict(body)
        if n > 1:
            wire["n"] = n
        seed = _seed(seed_base, indices[0])
        if seed is not None:
            wire["seed"] = seed
        est = self._estimate_tokens(body, n)
        data = await self._post(endpoint, wire, est)
        samples = self._parse(endpoint, body, data, self.base_url + endpoint)[: len(indices)]
        total = Usage()
        for s in samples:
            total += Usage(**s["usage"])
        self._account(total, est)
        got = dict(zip(indices, samples, strict=False))
        if self._writer is not None:
            self._writer.add(
                [
                    (stable_hash(r), r, s)
                    for i, s in got.items()
                    for r in [self._cache_request(endpoint, body, seed_base, i)]
                ],
            )
        return got

    @staticmethod
    def _chunk(sample: dict, cached: bool) -> Chunk:
        return Chunk(
            text=sample["text"],
            finish_reason=sample["finish_reason"],
            tokens=None,
            logprobs=sample.get("logprobs"),
            usage=Usage(**sample.get("usage", {})),
            cached=cached,
        )

    async def extend(self, requests: list[Extend]) -> list[list[Chunk]]:
        """chunks[i][j]: the j-th of requests[i].n continuations (sample index sample_index + j)."""
        token = _CALL_FAILED.set([False])
        try:
            return await self._extend(requests)
        finally:
            _CALL_FAILED.reset(token)
            if self._writer is not None:
                await self._writer.flush()  # a finished call is on disk, even a failed one

    async def _extend(self, requests: list[Extend]) -> list[list[Chunk]]:
        plans = []
        for r in requests:
            check_prompt(r.prompt)
            check_positive_int("n", r.n)
            check_positive_int("max_tokens", r.max_tokens)
            check_positive_int("sample_index", r.sample_index, minimum=0)
            endpoint, body = self._body(await self._choose_endpoint(r), r)
            idx = [r.sample_index + j for j in range(r.n)]
            reqs = [self._cache_request(endpoint, body, r.params.seed, i) for i in idx]
            plans.append((r, endpoint, body, idx, [stable_hash(q) for q in reqs]))
        hits: dict[str, dict] = {}
        if self._cache is not None:
            hits = self._cache.get_many([k for *_, keys in plans for k in keys])
        out: list[list[Chunk | None]] = []
        jobs = []
        for pos, (r, endpoint, body, idx, keys) in enumerate(plans):
            row: list[Chunk | None] = [None] * r.n
            missing = []
            for j, k in enumerate(keys):
                if k in hits:
                    row[j] = self._chunk(hits[k], cached=True)
                    self.stats.cache_hits += 1
                else:
                    missing.append(idx[j])
            out.append(row)
            if missing:
                jobs.append(self._fill(pos, r, endpoint, body, idx, missing, out))
        await _gather_or_cancel(jobs)
        return out  # type: ignore[return-value]

    async def _fill(
        self,
        pos: int,
        r: Extend,
        endpoint: str,
        body: dict,
        idx: list[int],
        missing: list[int],
        out: list[list[Chunk | None]],
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
                        for q in [self._cache_request(endpoint, body, seed, i)]
                    ],
                )
        else:
            got = await self._request_samples(endpoint, body, seed, missing)
        for i, s in got.items():
            out[pos][idx.index(i)] = self._chunk(s, cached=False)

    # ------------------------------------------------------------------ scoring

    async def score(self, prompt: Prompt, text: str) -> list[float]:
        """Token logprobs of `text` as the answer to `prompt` via /completions echo + logprobs
        (vLLM); PermanentError where the server cannot do it reliably (llama.cpp, OpenAI chat)."""
        caps = await self.probe()
        if not caps.get("echo_score"):
            raise PermanentError(
                f"openai: score() needs /completions with echo and logprobs, which {self.base_url} "
                f"(model '{self.model_name}') does not support reliably (vLLM does)"
            )
        head = self._render(prompt)
        body = {
            "model": self.model_name,
            "prompt": head + text,
            "max_tokens": 1,
            "echo": True,
            "logprobs": 1,
            "temperature": 0.0,
        }
        req = {"kind": "score", **self._cache_request(COMPLETIONS, body, None, 0)}
        key = stable_hash(req)
        hit = self._cache.get(key) if self._cache is not None else None
        if hit is not None:
            self.stats.cache_hits += 1
            return list(hit["logprobs"])
        data = await self._post(COMPLETIONS, body, self._estimate_tokens(body, 1))
        out = echo_slice(data, len(head), len(head) + len(text))
        if out is None:
            raise TransientError(
                f"openai: malformed echo reply from {self.base_url}{COMPLETIONS}"
            ) from None
        usage = data.get("usage") or {}
        self._account(
            Usage(usage.get("prompt_tokens", 0) or 0, usage.get("completion_tokens", 0) or 0), 0
        )
        if self._cache is not None:
            self._cache.put(key, self.name, req, {"logprobs": out})
        return out


def _split(total: int, parts: int) -> list[int]:
    """`total` split into `parts` integers that sum to it (remainder to the first ones)."""
    q, r = divmod(total, parts)
    return [q + (1 if i < r else 0) for i in range(parts)]
