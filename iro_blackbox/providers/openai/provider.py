"""The `openai` provider: any OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp, DeepSeek,
Mistral, Qwen, OpenRouter, ...).

    p = OpenAIProvider("smollm2-135m-instruct", base_url="http://127.0.0.1:8000/v1", store=store)
    print(await p.prepare(needs_continuation=True))     # probes (or reuses a stored probe)
    chunks = await p.extend([Extend(messages, prefix="The answer", n=4, max_tokens=16)])

How a prefix is continued: one of the modes of modes.py (token-ids, completions, chat-continue,
chat-prefix, chat-partial, chat-prefill, or chat for whole answers only). `mode="auto"` takes the
most exact one the probe verified (probe.py); a forced mode must pass the probe too. `prepare()`
says which mode runs, and refuses at once, with what would fix it, when a search needs
continuation and no mode can do it.

Every sample is cached in the store's request_cache under the hash of (base URL, model, endpoint,
request body, seed, sample index), so a repeated run replays with zero HTTP requests and n=8 after
n=4 only asks for samples 4..7. A BudgetGuard (budget.py) checks each request before it is sent.
The API key never enters a cache key, the store, describe(), logs or error messages.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from ...credentials import api_key_for
from ...errors import BudgetExceeded, ConfigError, PermanentError, ProviderError, TransientError
from ...models import ALIASES
from ...params import SamplingParams, check_positive_int
from ...store.cache import RequestCacheStore
from ...store.probes import ProbeStore
from ...tokenizers import load_tokenizer
from ...utils import canonical_json, derive_seed, stable_hash
from ..base import Chunk, Extend, Prompt, ProviderStats, TokenHandle, Usage
from ..budget import BudgetGuard, Hold
from ..cache_writer import CacheWriter
from ..chat_template import PromptEncoder, check_prompt, prompt_key, render_prompt
from ..options import API_MODES
from . import batch
from .http import HttpClient, HTTPStatusError
from .modes import CHAT, COMPLETIONS, MODES, PREFERENCE, Mode
from .pricing import count_tiktoken, is_openai_model, parse_prices
from .probe import PROBE_VERSION, Prober, echo_slice
from .ratelimit import RateLimiter
from .retry import RetryPolicy, call_with_retries

log = logging.getLogger("iro_blackbox.openai")

DEFAULT_BASE_URL = "https://api.openai.com/v1"
CACHE_VERSION = 1  # bump when the meaning of a cached entry changes
# OpenAI models whose chat endpoint takes max_completion_tokens instead of max_tokens
_MAX_COMPLETION_TOKENS_MODELS = ("o1", "o3", "o4", "gpt-5")


def _seed(base: int | None, sample_index: int) -> int | None:
    """The seed sent for sample `sample_index` (31 bits: some servers take int32 only)."""
    return None if base is None else derive_seed(base, sample_index) % (2**31)


# Set per extend()/score() call: once one request of the call fails for good, the requests of
# the same call still queued for a slot are not sent (the first error is what the caller sees).
_CALL_FAILED: ContextVar[list[bool] | None] = ContextVar("iro_openai_call_failed", default=None)


class _Skipped(Exception):
    """A queued request not sent because another request of the same call failed for good."""


async def _gather_or_stop(coros: list[Coroutine[Any, Any, Any]]) -> list[Any]:
    """Like gather; after the first failure the requests not yet sent are skipped, while those
    already in flight are awaited (their answers are paid for: they reach the cache), then the
    first real error is raised."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    if not tasks:
        return []
    failed = _CALL_FAILED.get()
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        if pending and any(t.exception() is not None for t in done):
            if failed is not None:
                failed[0] = True
            await asyncio.wait(pending)
        errors = [t.exception() for t in tasks if t.exception() is not None]
        if errors:
            raise next((e for e in errors if not isinstance(e, _Skipped)), errors[0])
        return [t.result() for t in tasks]
    finally:
        for t in tasks:
            if not t.done():
                t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


class OpenAIProvider:
    """Chunked generation from an OpenAI-compatible HTTP endpoint, every response cached.

    Args:
        model: the model name the server knows.
        base_url: endpoint root ending in /v1 (default OpenAI's).
        api_key: else the variable `api_key_env` names, else the config file's entry for
            `base_url`, else env OPENAI_API_KEY / the config file's api_key, but only for
            OpenAI's API or a `named_endpoint` (see iro_blackbox.credentials); local servers need
            none (a dummy is sent).
        api_key_env: the environment variable holding this endpoint's key.
        named_endpoint: the user named `base_url` (a command's --base-url); False for endpoints
            from a grader's spec, which never get OPENAI_API_KEY unless they are OpenAI's.
        store: a Store; responses are cached in its request_cache table, probe results in its
            probes table (None: no cache).
        cache: False = do not read the cache (responses are still written).
        mode: "auto" or a mode of modes.py.
        tokenizer: local model spec whose chat template renders prompts for the completions and
            token-ids modes (default: `model` when it is a local alias such as
            smollm2-135m-instruct, a .gguf file or a model folder).
        concurrency: HTTP requests in flight at most.
        rpm, tpm: requests / tokens per minute limits (None = none).
        timeout: seconds per HTTP request.
        max_retries: retries of a transient failure (429, 408, 5xx, timeout, reset, bad JSON).
        prices: USD per 1M tokens {"prompt": p, "completion": c}; default: the price list's.
        budget: checks every request before it is sent (None: no limits).
        reprobe: probe again even when a probe of this endpoint is stored.
        sleep: async sleep used for backoff and rate limiting (tests inject a recorder).
        clock: the rate limiter's clock (default time.monotonic; tests inject one).
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
        mode: str = "auto",
        tokenizer: str | None = None,
        concurrency: int = 8,
        rpm: int | None = None,
        tpm: int | None = None,
        timeout: float = 60.0,
        max_retries: int = 6,
        prices: dict[str, float] | None = None,
        budget: BudgetGuard | None = None,
        reprobe: bool = False,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
        retry_policy: RetryPolicy | None = None,
        clock: Callable[[], float] | None = None,
        api_key_env: str | None = None,
        named_endpoint: bool = True,
    ):
        if not isinstance(model, str) or not model.strip():
            raise ConfigError(f"model must be a non-empty string, got {model!r}")
        if mode not in API_MODES:
            raise ConfigError(f"api_mode must be one of {', '.join(API_MODES)}, got {mode!r}")
        check_positive_int("concurrency", concurrency)
        check_positive_int("max_retries", max_retries, minimum=0)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url must start with http:// or https://, got {base_url!r}")
        self.model_name = model
        self.base_url = base_url
        self.mode = mode
        self.tokenizer_spec = tokenizer or self._alias_tokenizer(model)
        self.concurrency = concurrency
        self.timeout = float(timeout)
        self.stats = ProviderStats()
        self.prices = parse_prices(prices, model, base_url)
        self.budget = budget
        self.reprobe = reprobe
        self._sleep = sleep or asyncio.sleep
        self._policy = retry_policy or RetryPolicy(max_retries=max_retries)
        self._limiter = RateLimiter(rpm, tpm, clock=clock, sleep=self._sleep)
        self._rpm, self._tpm = rpm, tpm
        key = api_key_for(base_url, api_key, key_env=api_key_env, named=named_endpoint)
        self._has_key = key is not None
        self._http = HttpClient(base_url, key, self.timeout)
        self._cache = None
        self._probes: ProbeStore | None = None
        self._writer: CacheWriter | None = None
        if store is not None:
            self._cache = RequestCacheStore(store, enabled=cache)
            self._probes = ProbeStore(store)
            self._writer = CacheWriter(self._cache, self.name)
        self._sem: asyncio.Semaphore | None = None
        self._sem_loop: Any = None
        self._probe_lock: asyncio.Lock | None = None
        self._caps: dict[str, Any] | None = None
        self._chosen: str | None = None  # the mode prepare() settled on
        self._n_honoured: dict[str, bool] = {}  # endpoint -> does the server honour n?
        self._rendered: dict[str, str] = {}
        self._encoder: PromptEncoder | None = None

    @classmethod
    def from_options(
        cls, options: Any, store: Any = None, budget: BudgetGuard | None = None
    ) -> OpenAIProvider:
        """The provider a run's ProviderOptions describe; responses cached in `store`."""
        prices = None
        if options.price_input is not None or options.price_output is not None:
            if options.price_input is None or options.price_output is None:
                raise ConfigError("give both --price-input and --price-output (USD per 1M tokens)")
            prices = {"prompt": options.price_input, "completion": options.price_output}
        return cls(
            model=options.model,
            base_url=options.base_url,
            store=store,
            cache=not options.no_cache,
            mode=options.api_mode,
            tokenizer=options.tokenizer,
            concurrency=options.concurrency,
            rpm=options.rpm,
            tpm=options.tpm,
            prices=prices,
            budget=budget,
            reprobe=options.reprobe,
            api_key_env=options.api_key_env,
        )

    @property
    def rate_limiter(self) -> RateLimiter:
        """The --rpm / --tpm limiter: the limits in force and its accounting."""
        return self._limiter

    # ------------------------------------------------------------------ plumbing

    @staticmethod
    def _alias_tokenizer(model: str) -> str | None:
        """The tokenizer `model` carries itself: an alias, a local .gguf file or a model folder
        (llama.cpp's server names a model by its file path)."""
        if model.lower() in ALIASES:
            return model
        path = Path(model).expanduser()
        if path.is_file() and path.suffix.lower() == ".gguf":
            return str(path)
        if path.is_dir() and (
            any((path / f).is_file() for f in TOKENIZER_FILES) or any(path.glob("*.gguf"))
        ):
            return str(path)
        return None

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

    def _count_retry(self, err: TransientError, wait: float, attempt: int) -> None:
        self.stats.retries += 1

    def _on_retry(self, err: TransientError, wait: float, attempt: int) -> None:
        self.stats.retries += 1
        log.warning("retry %d in %.2fs after: %s", attempt, wait, self._http.scrub(str(err)))

    async def _post(
        self,
        endpoint: str,
        body: dict[str, Any],
        est_input: int,
        max_output: int,
        policy: RetryPolicy | None = None,
        quiet: bool = False,
    ) -> tuple[dict[str, Any], Hold | None]:
        """One logical request: budget, rate limit, concurrency cap, retries of transient
        failures. Returns the reply and the budget hold its real usage settles."""
        sem, _ = self._loop_state()
        tries = [0]  # a retry after a 429 already waited the server's Retry-After

        async def attempt() -> tuple[dict[str, Any], Hold | None]:
            tries[0] += 1
            await self._limiter.acquire(est_input + max_output, retrying=tries[0] > 1)
            failed = _CALL_FAILED.get()
            async with sem:
                if failed is not None and failed[0]:
                    raise _Skipped()
                hold = None
                if self.budget is not None:
                    try:
                        hold = self.budget.reserve(est_input, max_output)
                    except BudgetExceeded:
                        if failed is not None:
                            failed[0] = True
                        raise
                self.stats.requests += 1
                try:
                    return await self._http.post_json(endpoint, body), hold
                except BaseException as e:
                    if getattr(e, "status", None) == 429:  # every caller slows down, not one
                        self._limiter.throttle(getattr(e, "retry_after", None))
                    if hold is not None:  # a refused or lost request: counted, not billed
                        self.budget.settle(hold)  # type: ignore[union-attr]
                    if isinstance(e, PermanentError) and failed is not None:
                        failed[0] = True
                    raise

        on_retry = self._count_retry if quiet else self._on_retry
        return await call_with_retries(attempt, policy or self._policy, self._sleep, on_retry)

    def _account(self, usage: Usage, hold: Hold | None, est_tokens: int) -> float:
        """Record a reply's usage and cost (stats, budget ledger, rate limiter); its cost."""
        self.stats.prompt_tokens += usage.prompt_tokens
        self.stats.completion_tokens += usage.completion_tokens
        cost = self.prices.cost(usage.prompt_tokens, usage.completion_tokens)
        if hold is not None and self.budget is not None:
            self.budget.settle(hold, usage.prompt_tokens, usage.completion_tokens)
        self.stats.cost_usd += cost
        self._limiter.settle(est_tokens, usage.prompt_tokens + usage.completion_tokens)
        return cost

    # ------------------------------------------------------------------ probing

    async def _try(self, endpoint: str, body: dict[str, Any]) -> tuple[dict | None, str]:
        """A probe request: (reply, "") on success, (None, reason) when the server refuses it
        (one retry of a transient failure: a refusal some servers give as a 500 is not worth
        six). 401/403 are raised: no endpoint will work with a bad key."""
        est = self._estimate_input(body)
        max_out = int(body.get("max_tokens") or 8) * int(body.get("n") or 1)
        try:
            data, hold = await self._post(
                endpoint,
                body,
                est,
                max_out,
                policy=RetryPolicy(max_retries=1, initial=0.2),
                quiet=True,
            )
        except HTTPStatusError as e:
            if e.status in (401, 403):
                raise
            return None, f"{e.status}: {e.detail}"
        except TransientError as e:
            return None, self._http.scrub(str(e))
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        self._account(
            Usage(int(usage.get("prompt_tokens") or est), int(usage.get("completion_tokens") or 0)),
            hold,
            est + max_out,
        )
        return data, ""

    def _probe_key(self) -> str:
        return ProbeStore.key(self.base_url, self.model_name, self.tokenizer_spec, PROBE_VERSION)

    def stored_probe(self) -> dict[str, Any] | None:
        """The stored probe of this endpoint and model, if any (no request)."""
        if self._probes is None or self.reprobe:
            return None
        return self._probes.get(self._probe_key())

    async def probe(self) -> dict[str, Any]:
        """What the endpoint can do (probe.py), stored per (base URL, model, tokenizer) and
        reused; a forced mode is checked the same way."""
        if self._caps is not None:
            return self._caps
        _, lock = self._loop_state()
        async with lock:
            if self._caps is not None:
                return self._caps
            caps = self.stored_probe()
            if caps is None:
                render = encode = None
                if self.tokenizer_spec:
                    render, encode = self._render, self._encode
                earlier = None  # the tokenizer-free results of a probe with another tokenizer
                if self._probes is not None and not self.reprobe:
                    earlier = self._probes.latest(self.base_url, self.model_name, PROBE_VERSION)
                token = _CALL_FAILED.set(None)  # a refused probe must not stop the caller's call
                try:
                    caps = await Prober(
                        self._try, self.base_url, self.model_name, render, encode
                    ).run(reuse=earlier)
                finally:
                    _CALL_FAILED.reset(token)
                if not (caps.get("completions") or caps.get("chat")):
                    raise ProviderError(  # nothing learnt: nothing stored
                        f"openai: {self.base_url} answered nothing for model '{self.model_name}' "
                        f"({'; '.join(caps.get('notes', [])) or 'no reply'})"
                    )
                if self._probes is not None:
                    self._probes.put(self._probe_key(), self.base_url, self.model_name, caps)
            for ep, field in ((COMPLETIONS, "completions_n"), (CHAT, "chat_n")):
                if caps.get(field) is not None:
                    self._n_honoured.setdefault(ep, bool(caps[field]))
            self._caps = caps
            return caps

    async def prepare(self, needs_continuation: bool, chat_prompts: bool = True) -> str:
        """Settle the mode before any paid request: probe (or reuse a stored probe), check a
        forced mode, and refuse with the fix when continuation is needed and no mode can do it.
        `chat_prompts`: some prompts are chat messages (the completions mode then needs the chat
        template, i.e. --tokenizer). Returns the line that says which mode runs."""
        if needs_continuation and self.mode != "auto" and not MODES[self.mode].continues:
            raise ConfigError(  # known without asking the endpoint anything
                f"--api-mode {self.mode} gives whole answers only, and chunk-level search needs "
                "a partial answer continued: choose a continuing mode (or auto), or align with "
                "--policy rerank"
            )
        caps = await self.probe()
        usable = {
            m: v
            for m, v in caps["modes"].items()
            if v.get("works")
            and not (MODES[m].template and chat_prompts and not self.tokenizer_spec)
        }
        if self.mode == "auto":
            mode = next((m for m in PREFERENCE if m in usable), None)
            if mode is None:
                raise ConfigError(
                    f"openai: no endpoint of {self.base_url} answers for model "
                    f"'{self.model_name}': {self._evidence(caps)}"
                )
        else:
            mode = self.mode
            verdict = caps["modes"].get(mode, {})
            if mode not in usable and verdict.get("works"):
                verdict = {"evidence": "chat prompts need the chat template: pass --tokenizer"}
            if mode not in usable:
                raise ConfigError(
                    f"--api-mode {mode} does not work at {self.base_url} for model "
                    f"'{self.model_name}': {verdict.get('evidence', 'not checked')}"
                    f"{self._works_instead(caps)}"
                )
        if needs_continuation and not MODES[mode].continues:
            raise ConfigError(self._no_continuation(caps))
        self._chosen = mode
        line = f"api mode {mode} at {self.base_url} ({MODES[mode].who}; {caps['modes'][mode]['evidence']})"
        warnings = self.sampling_warnings(caps)
        return line + ("; " + "; ".join(warnings) if warnings else "")

    @staticmethod
    def sampling_warnings(caps: dict[str, Any]) -> list[str]:
        """What the endpoint's handling of sampling parameters does to IRO (it needs varied,
        reproducible samples)."""
        out = []
        if caps.get("temperature") is False:
            out.append(
                "the endpoint refuses `temperature`: samples come at its default temperature "
                "(if that is low, candidates repeat and search has little to choose from)"
            )
        if caps.get("seed") is False:
            out.append(
                "the endpoint ignores `seed`: a re-run draws other samples (the request cache "
                "still replays everything already fetched)"
            )
        return out

    @staticmethod
    def _evidence(caps: dict[str, Any]) -> str:
        return "; ".join(
            f"{m}: {v['evidence']}" for m, v in caps.get("modes", {}).items()
        ) or "; ".join(caps.get("notes", []))

    @staticmethod
    def _works_instead(caps: dict[str, Any]) -> str:
        ok = [m for m, v in caps.get("modes", {}).items() if v.get("works")]
        return f" (modes that work: {', '.join(ok)})" if ok else ""

    def _no_continuation(self, caps: dict[str, Any]) -> str:
        fixes = []
        if caps.get("completions") and not self.tokenizer_spec:
            fixes.append(
                "pass --tokenizer with the model's tokenizer (a local folder or hub id): its "
                "/v1/completions endpoint answers, and with the chat template rendered locally "
                "the completions mode may continue answers"
            )
        if "deepseek.com" in self.base_url and not self.base_url.endswith("/beta"):
            fixes.append("use the base URL https://api.deepseek.com/beta (its chat prefix mode)")
        fixes.append(
            "or align with --policy rerank (whole answers: N samples, the best by the value models)"
        )
        tried = "; ".join(f"{m}: {v['evidence']}" for m, v in caps["modes"].items() if m != "chat")
        return (
            f"{self.base_url} cannot continue a partial answer for model '{self.model_name}', "
            f"which chunk-level search needs ({tried}). Fix: " + "; ".join(fixes)
        )

    def describe(self) -> dict[str, Any]:
        """Settings and (once probed) capabilities; never the API key."""
        return {
            "provider": self.name,
            "model": self.model_name,
            "base_url": self.base_url,
            "mode": self.mode,
            "chosen_mode": self._chosen,
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
                "source": self.prices.source,
            },
            "budget": None if self.budget is None else vars(self.budget.budget),
            "cache": None
            if self._cache is None
            else ("read-write" if self._cache.enabled else "write-only"),
            "capabilities": self._caps,
            "n_honoured": dict(self._n_honoured),
        }

    # ------------------------------------------------------------------ requests

    def _tokenizer(self) -> Any:
        if not self.tokenizer_spec:
            raise PermanentError(
                f"openai: the completions and token-ids modes render the chat template locally: "
                f"pass --tokenizer (the tokenizer of '{self.model_name}')"
            )
        return load_tokenizer(self.tokenizer_spec)

    def _render(self, prompt: Prompt) -> str:
        """Prompt text for /completions: chat messages through the local chat template."""
        if isinstance(prompt, str):
            return prompt
        key = prompt_key(prompt)
        if key not in self._rendered:
            self._rendered[key] = render_prompt(self._tokenizer(), prompt)
        return self._rendered[key]

    def _encode(self, text: str) -> list[int]:
        return list(self._tokenizer().encode(text, add_special_tokens=False)) if text else []

    def _prompt_ids(self, prompt: Prompt) -> tuple[int, ...]:
        if self._encoder is None:
            self._encoder = PromptEncoder(self._tokenizer())
        return self._encoder.prompt_ids(prompt)

    async def _mode_for(self, req: Extend) -> Mode:
        if self._chosen is None:
            if self.mode != "auto":  # forced and not checked (prepare() checks it): trusted
                self._chosen = self.mode
            else:
                await self.prepare(
                    needs_continuation=False, chat_prompts=isinstance(req.prompt, list)
                )
        mode = MODES[self._chosen]  # type: ignore[index]
        if req.prefix and not mode.continues:
            raise PermanentError(self._no_continuation(self._caps or {"modes": {}}))
        return mode

    def _context_ids(self, req: Extend) -> tuple[int, ...]:
        """token-ids mode: the exact ids of prompt + answer so far (the handle's, else encoded)."""
        h = req.handle
        pkey = prompt_key(req.prompt)
        if isinstance(h, TokenHandle) and h.prompt_key == pkey and h.response_text == req.prefix:
            return h.token_ids
        return self._prompt_ids(req.prompt) + tuple(self._encode(req.prefix))

    def _body(self, mode: Mode, req: Extend) -> tuple[str, dict[str, Any]]:
        """(endpoint, request body without n and seed)."""
        p: SamplingParams = req.params
        body: dict[str, Any] = {"model": self.model_name}
        if mode.name == "token-ids":
            body["prompt"] = list(self._context_ids(req))
            body["return_token_ids"] = True  # vLLM: the generated ids, for token-exact handles
        elif mode.name == "completions":
            body["prompt"] = self._render(req.prompt) + req.prefix
        else:
            body["messages"] = mode.messages(req.prompt, req.prefix)
            body.update(mode.extra(req.prefix))
        endpoint = mode.endpoint
        if req.response_format is not None and endpoint == CHAT and not req.prefix:
            body["response_format"] = req.response_format
        if endpoint == CHAT and self.model_name.lower().startswith(_MAX_COMPLETION_TOKENS_MODELS):
            body["max_completion_tokens"] = req.max_tokens  # OpenAI reasoning models
        else:
            body["max_tokens"] = req.max_tokens
        if (self._caps or {}).get("temperature", True) is not False:
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
        return self._body(await self._mode_for(req), req)

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

    def count_prompt(self, prompt: Prompt) -> int:
        """Input tokens of a prompt as it will be sent (estimates before a run)."""
        if self.tokenizer_spec:
            return len(self._prompt_ids(prompt))
        if isinstance(prompt, str):
            return self._estimate_input({"prompt": prompt})
        return self._estimate_input({"messages": prompt})

    def _estimate_input(self, body: dict[str, Any]) -> int:
        """Input tokens of a request body: counted where a tokenizer is known, else ~4 chars."""
        prompt = body.get("prompt")
        if isinstance(prompt, list):
            return len(prompt)
        text = prompt if isinstance(prompt, str) else canonical_json(body.get("messages", ""))
        counted = self._count(text) if len(text) < 20_000 else None
        return counted if counted is not None else len(text) // 4 + 1

    def _count(self, text: str) -> int | None:
        """Token count where the server gave none: tiktoken for OpenAI models, else the local
        tokenizer when one is configured, else unknown."""
        if is_openai_model(self.model_name):
            return count_tiktoken(text)
        if self.tokenizer_spec:
            return len(self._encode(text))
        return None

    def _parse(self, endpoint: str, body: dict, data: dict[str, Any], url: str) -> list[dict]:
        """Cacheable sample dicts from a reply: text, finish_reason, logprobs, token ids, usage."""
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices:
            raise TransientError(f"openai: malformed reply from {url}: no choices")
        choices = sorted(choices, key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0)
        out = []
        for c in choices:
            if not isinstance(c, dict):
                raise TransientError(f"openai: malformed reply from {url}: bad choice")
            lps: list[float] | None = None
            ids = None
            if endpoint == COMPLETIONS:
                text = c.get("text")
                lp = c.get("logprobs") or {}
                if isinstance(lp, dict) and lp.get("token_logprobs") is not None:
                    lps = [float(x) if x is not None else 0.0 for x in lp["token_logprobs"]]
                tids = c.get("token_ids")
                if isinstance(tids, list) and all(isinstance(t, int) for t in tids):
                    ids = tids
            else:
                msg = c.get("message") or {}
                text = msg.get("content") if isinstance(msg, dict) else None
                text = "" if text is None and isinstance(msg, dict) else text
                lp = c.get("logprobs") or {}
                if isinstance(lp, dict) and lp.get("content") is not None:
                    lps = [float(t.get("logprob", 0.0)) for t in lp["content"]]
            if not isinstance(text, str):
                raise TransientError(f"openai: malformed reply from {url}: choice without text")
            sample = {
                "text": text,
                "finish_reason": "length" if c.get("finish_reason") == "length" else "stop",
                "server_finish_reason": c.get("finish_reason"),
                "logprobs": lps,
            }
            if ids is not None:
                sample["token_ids"] = ids
            out.append(sample)
        # usage: the server's, split over the choices (sums stay exact); else counted locally
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        pt, ct = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if pt is None:
            pt = self._estimate_input(body)
        per_choice_ct: list[int]
        if ct is None:
            per_choice_ct = []
            for s in out:
                if s.get("token_ids") is not None:
                    n_tok = len(s["token_ids"])
                elif s["logprobs"] is not None:
                    n_tok = len(s["logprobs"])
                else:
                    n_tok = self._count(s["text"]) or 0
                per_choice_ct.append(n_tok)
        else:
            per_choice_ct = _split(int(ct), len(out))
            exact = [
                len(s["token_ids"]) if s.get("token_ids") is not None else
                len(s["logprobs"]) if s["logprobs"] is not None else None
                for s in out
            ]  # fmt: skip
            if None not in exact and sum(exact) == int(ct):  # type: ignore[arg-type]
                per_choice_ct = exact  # type: ignore[assignment]
        per_choice_pt = _split(int(pt), len(out))
        for s, p_, c_ in zip(out, per_choice_pt, per_choice_ct, strict=True):
            s["usage"] = {"prompt_tokens": p_, "completion_tokens": c_}
            s["cost_usd"] = self.prices.cost(p_, c_)
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
            for part in await _gather_or_stop(
                [self._send(endpoint, body, seed_base, [i], n=1) for i in rest]
            ):
                got.update(part)
            return got
        results: dict[int, dict] = {}
        for part in await _gather_or_stop(
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
        est_in = self._estimate_input(body)
        max_out = int(body.get("max_tokens") or body.get("max_completion_tokens") or 0) * n
        data, hold = await self._post(endpoint, wire, est_in, max_out)
        samples = self._parse(endpoint, body, data, self.base_url + endpoint)
        total = Usage()
        for s in samples:  # every choice returned is billed, even beyond what was asked
            total += Usage(**s["usage"])
        self._account(total, hold, est_in + max_out)
        got = dict(zip(indices, samples[: len(indices)], strict=False))
        if self._writer is not None:
            self._writer.add(
                [
                    (stable_hash(r), r, s)
                    for i, s in got.items()
                    for r in [self._cache_request(endpoint, body, seed_base, i)]
                ],
            )
        return got

    def _chunk(self, sample: dict, cached: bool, req: Extend, mode: Mode) -> Chunk:
        handle = None
        ids = sample.get("token_ids")
        if mode.name == "token-ids":
            ctx = self._context_ids(req)
            new = ids if ids is not None else self._encode(sample["text"])
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
            mode = await self._mode_for(r)
            endpoint, body = self._body(mode, r)
            idx = [r.sample_index + j for j in range(r.n)]
            reqs = [self._cache_request(endpoint, body, r.params.seed, i) for i in idx]
            plans.append((r, mode, endpoint, body, idx, [stable_hash(q) for q in reqs]))
        hits: dict[str, dict] = {}
        if self._cache is not None:
            hits = self._cache.get_many([k for *_, keys in plans for k in keys])
        out: list[list[Chunk | None]] = []
        jobs = []
        for pos, (r, mode, endpoint, body, idx, keys) in enumerate(plans):
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
                jobs.append(self._fill(pos, r, mode, endpoint, body, idx, missing, out))
        await _gather_or_stop(jobs)
        return out  # type: ignore[return-value]

    async def _fill(
        self,
        pos: int,
        r: Extend,
        mode: Mode,
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
            out[pos][idx.index(i)] = self._chunk(s, False, r, mode)

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
        est = self._estimate_input(body)
        data, hold = await self._post(COMPLETIONS, body, est, 1)
        out = echo_slice(data, len(head), len(head) + len(text))
        usage = data.get("usage") or {}
        self._account(
            Usage(usage.get("prompt_tokens", 0) or est, usage.get("completion_tokens", 0) or 0),
            hold,
            est + 1,
        )
        if out is None:
            raise TransientError(
                f"openai: malformed echo reply from {self.base_url}{COMPLETIONS}"
            ) from None
        if self._cache is not None:
            self._cache.put(key, self.name, req, {"logprobs": out})
        return out


def _split(total: int, parts: int) -> list[int]:
    """`total` split into `parts` integers that sum to it (remainder to the first ones)."""
    q, r = divmod(total, parts)
    return [q + (1 if i < r else 0) for i in range(parts)]


def probe_endpoint(
    base_url: str,
    model: str,
    *,
    tokenizer: str | None = None,
    store: Any = None,
    reprobe: bool = False,
    api_key_env: str | None = None,
) -> dict[str, Any]:
    """Probe (or read the stored probe of) an endpoint for a model: what `iro-bb probe` shows.
    Adds "choice_chat" and "choice_text": the mode `auto` takes for chat and for text prompts."""

    async def go() -> dict[str, Any]:
        p = OpenAIProvider(
            model,
            base_url=base_url,
            store=store,
            tokenizer=tokenizer,
            reprobe=reprobe,
            api_key_env=api_key_env,
        )
        try:
            stored = p.stored_probe() is not None
            caps = dict(await p.probe())
            caps["stored"] = stored
            for key, chat in (("choice_chat", True), ("choice_text", False)):
                p._chosen = None
                try:
                    await p.prepare(needs_continuation=False, chat_prompts=chat)
                    caps[key] = p._chosen
                except ConfigError:
                    caps[key] = None
            caps["warnings"] = OpenAIProvider.sampling_warnings(caps)
            return caps
        finally:
            await p.aclose()

    return asyncio.run(go())
