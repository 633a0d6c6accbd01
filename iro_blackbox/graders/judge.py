"""`score_model` with an LLM judge: any Provider rates each response, in structured output.

    {"type": "score_model", "name": "helpful",
     "input": [{"role": "system", "content": "Rate the answer from 0 to 10. Reply with the number."},
               {"role": "user", "content": "Q: {{ item.question }}\\nA: {{ sample.output_text }}"}],
     "model": "gpt-4o-mini", "provider": "openai", "base_url": "https://api.openai.com/v1",
     "api_key_env": "OPENAI_API_KEY", "range": [0, 10], "normalize": true,
     "sampling_params": {"temperature": 0, "max_completions_tokens": 64, "seed": 1}}

One Extend per sample goes to the provider in a single `extend` call (the provider caps concurrency
and retries). Greedy by default. The judge is asked for JSON `{"result": <number>}` through a JSON
schema response format (`structured_output`, default true; the openai provider sends it on chat
endpoints). A reply that is not that JSON (an endpoint without structured output, a local model,
a refused response_format) falls back to the reply's first number (after any <think>...</think>
block), and the grade records a warning saying so. The score is checked against `range` and,
with `normalize`, mapped to 0..1. A reply without a number or out of
range is a recorded error for that sample. If the provider refuses the batch (PermanentError), each
sample is asked alone and only the refused ones are recorded errors; if every one fails, or the
failure is transient even after the provider's retries, GraderError is raised (a dead judge must
not score zeros).
The API key is read from the environment variable named by `api_key_env`, never from the spec;
without it, the config file's entry for `base_url`, and OPENAI_API_KEY only when `base_url` is
OpenAI's own API: a spec that names another host never receives the user's OpenAI key.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import os
import re
from typing import Any

from ..errors import ConfigError, GraderError, PermanentError, ProviderError
from ..params import SamplingParams
from ..providers.base import Extend
from ..registry import PROVIDERS
from .base import Grade
from .common import BaseGrader, GraderContext, read_common
from .spec import SpecReader
from .template import MessagesTemplate, TemplateError

RESULT_SCHEMA: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {
        "name": "grade",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"result": {"type": "number"}},
            "required": ["result"],
            "additionalProperties": False,
        },
    },
}
FALLBACK_WARNING = (
    "the judge's reply is not the JSON asked for (no structured output at this endpoint); "
    "its first number was taken"
)

_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_THINK = re.compile(r"<think>.*?(</think>|$)", re.S)


def first_number(text: str) -> float | None:
    """The first number in a judge's reply (reasoning inside <think> tags skipped)."""
    m = _NUMBER.search(_THINK.sub(" ", text))
    return float(m.group(0)) if m else None


def structured_result(text: str) -> float | None:
    """`result` of a reply that is the JSON object asked for, else None."""
    s = _THINK.sub(" ", text).strip()
    if s.startswith("```"):
        s = s.strip("`").removeprefix("json").strip()
    try:
        obj = json.loads(s)
    except ValueError:
        return None
    x = obj.get("result") if isinstance(obj, dict) else None
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x)


def _read_sampling(r: SpecReader) -> tuple[SamplingParams, int]:
    sp = r.mapping("sampling_params", {})
    s = SpecReader(sp, r.label, prefix="sampling_params.")
    temperature = s.number("temperature", 0.0, lo=0.0, hi=10.0)
    top_p = s.number("top_p", 1.0, lo=0.0, hi=1.0, lo_open=True)
    seed = s.integer("seed", None, lo=0)
    max_tokens = s.integer("max_completions_tokens", None, lo=1)
    if max_tokens is None:
        max_tokens = s.integer("max_tokens", 64, lo=1)
    r.normalized["sampling_params"] = s.finish(
        ignored={"reasoning_effort": "not sent (the judge's provider takes no reasoning effort)"}
    )
    r.notes.extend(s.notes)
    return SamplingParams(temperature=temperature, top_p=top_p, seed=seed), max_tokens


def _registered_provider(name: str, **kwargs: Any) -> Any:
    """The default provider factory of judges: the provider registered as `name`."""
    return PROVIDERS.get(name)(**kwargs)


def _check_provider_options(provider: str, kwargs: dict[str, Any], r: SpecReader) -> None:
    """Refuse options the provider's constructor does not take, now rather than after sampling."""
    try:
        params = inspect.signature(PROVIDERS.get(provider)).parameters
    except (ConfigError, TypeError, ValueError):
        return  # not inspectable: its options are checked when it is built
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    for key in kwargs:
        if key not in params:
            raise r.error(
                f"provider_options.{key}" if key not in ("model", "base_url", "api_key") else key,
                f"provider '{provider}' takes no option '{key}'",
                f"it takes {', '.join(k for k in params if k != 'self')}",
            )


def _takes(provider: str, option: str) -> bool:
    """True when the registered provider's constructor has the parameter `option`."""
    try:
        return option in inspect.signature(PROVIDERS.get(provider)).parameters
    except (ConfigError, TypeError, ValueError):
        return False


class JudgeGrader(BaseGrader):
    type_name = "score_model"

    def __init__(
        self,
        *,
        prompt: MessagesTemplate,
        provider_name: str,
        provider_kwargs: dict[str, Any],
        provider_factory: Any,
        params: SamplingParams,
        max_tokens: int,
        score_range: tuple[float, float],
        normalize: bool,
        structured: bool = True,
        **base: Any,
    ):
        super().__init__(templates=prompt.templates, **base)
        self.prompt = prompt
        self.provider_name = provider_name
        self._provider_kwargs = provider_kwargs  # may hold the API key: never logged or hashed
        self._factory = provider_factory
        self.params = params
        self.max_tokens = max_tokens
        self.range = score_range
        self.normalize = normalize
        self.structured = structured  # ask for RESULT_SCHEMA (False after an endpoint refused it)
        self._provider: Any = None
        self._owns_provider = True  # False for a provider handed in with use_provider

    @classmethod
    def from_spec(cls, spec: dict[str, Any], ctx: GraderContext) -> JudgeGrader:
        r = SpecReader(spec, ctx.label(str(spec.get("name", spec.get("type")))))
        r.raw("type")
        name, error_score = read_common(r)
        prompt = r.messages("input")
        model = r.text("model")
        factory = ctx.provider_factory
        if factory is None:
            provider = r.choice("provider", PROVIDERS.names(), "openai", what="provider")
            factory = _registered_provider
        else:
            provider = r.text("provider", "openai")
        base_url = r.text("base_url", None)
        key_env = r.text("api_key_env", None)
        options = r.mapping("provider_options", {})
        r.check(
            "provider_options",
            not any("key" in k.lower() or "secret" in k.lower() for k in options),
            "secrets do not belong in a spec",
            "name an environment variable in 'api_key_env'",
        )
        kwargs: dict[str, Any] = {"model": model, **options}
        if base_url:
            kwargs["base_url"] = base_url
        if key_env:
            if not os.environ.get(key_env):
                raise r.error("api_key_env", f"environment variable '{key_env}' is not set")
            kwargs["api_key"] = os.environ[key_env]
        if ctx.provider_factory is None:
            _check_provider_options(provider, kwargs, r)
            if _takes(provider, "named_endpoint"):  # the spec's host is not one the user named
                kwargs["named_endpoint"] = False
        params, max_tokens = _read_sampling(r)
        lo, hi = r.number_range("range", [0.0, 1.0])
        normalize = r.boolean("normalize", False)
        structured = r.boolean("structured_output", True)
        norm = r.finish()
        return cls(
            prompt=prompt,
            provider_name=provider,
            provider_kwargs=kwargs,
            provider_factory=factory,
            params=params,
            max_tokens=max_tokens,
            score_range=(lo, hi),
            normalize=normalize,
            structured=structured,
            name=name,
            spec=norm,
            label=r.label,
            error_score=error_score,
            hash_exclude=("api_key_env",),
            notes=r.notes,
        )

    @property
    def provider(self) -> Any:
        """The judge's provider, built on first use."""
        if self._provider is None:
            try:
                self._provider = self._factory(self.provider_name, **self._provider_kwargs)
            except TypeError as e:
                raise ConfigError(
                    f"{self.label}: provider '{self.provider_name}' rejected its options: {e}"
                ) from None
        return self._provider

    def use_provider(self, provider: Any) -> None:
        """Judge through an existing provider (e.g. the policy's) instead of building one;
        `aclose` leaves it open."""
        self._provider = provider
        self._owns_provider = False

    async def _grade(
        self, samples: list[dict[str, Any]], items: list[dict[str, Any]]
    ) -> list[Grade]:
        out: list[Grade | None] = [None] * len(samples)
        requests: list[Extend] = []
        where: list[int] = []
        for i, (s, it) in enumerate(zip(samples, items, strict=True)):
            try:
                messages = self.prompt.render(it, s)
            except TemplateError as e:
                out[i] = self.failed(str(e))
                continue
            requests.append(
                Extend(
                    prompt=messages,
                    n=1,
                    max_tokens=self.max_tokens,
                    params=self.params,
                    response_format=RESULT_SCHEMA if self.structured else None,
                )
            )
            where.append(i)
        replies = await self._ask(requests) if requests else []
        for i, reply in zip(where, replies, strict=True):
            out[i] = self._parse(reply)
        return [g for g in out if g is not None]

    async def _ask(self, requests: list[Extend]) -> list[str | Exception]:
        provider = self.provider
        try:
            chunks = await provider.extend(requests)
            return [c[0].text if c else ProviderError("empty reply") for c in chunks]
        except PermanentError as e:
            if self.structured:
                # the endpoint may refuse structured output (llama.cpp's server takes no
                # json_schema): ask plainly from now on; the grades say so in their warning
                self.structured = False
                plain = [dataclasses.replace(r, response_format=None) for r in requests]
                return await self._ask(plain)
            if len(requests) == 1:
                raise GraderError(f"{self.label}: the judge failed: {e}") from e
        except ProviderError as e:  # transient, and still failing after the provider's retries
            raise GraderError(f"{self.label}: the judge failed: {e}") from e
        # a request was refused: ask one by one so one bad sample (too long...) costs only itself
        single = await asyncio.gather(
            *(provider.extend([r]) for r in requests), return_exceptions=True
        )
        replies: list[str | Exception] = []
        for res in single:
            if isinstance(res, ProviderError):
                replies.append(res)
            elif isinstance(res, BaseException):
                raise res
            else:
                replies.append(res[0][0].text if res and res[0] else ProviderError("empty reply"))
        if all(isinstance(x, Exception) for x in replies):
            raise GraderError(f"{self.label}: the judge failed on every sample: {replies[0]}")
        return replies

    def _parse(self, reply: str | Exception) -> Grade:
        if isinstance(reply, Exception):
            return self.failed(f"judge request failed: {reply}")
        shown = reply if len(reply) <= 500 else reply[:497] + "..."
        details: dict[str, Any] = {"reply": shown}
        x = structured_result(reply)
        if x is None:
            x = first_number(reply)
            details["warning"] = FALLBACK_WARNING
        if x is None:
            return self.failed(f"judge reply has no number: {shown!r}", **details)
        lo, hi = self.range
        if not lo <= x <= hi:
            return self.failed(f"judge score {x:g} outside range [{lo:g}, {hi:g}]", **details)
        score = (x - lo) / (hi - lo) if self.normalize else x
        return Grade(score=score, details={**details, "raw_score": x})

    async def aclose(self) -> None:
        p, self._provider = self._provider, None
        if p is not None and self._owns_provider and hasattr(p, "aclose"):
            await p.aclose()
        self._owns_provider = True

    def close(self) -> None:
        """Forget the provider (use `aclose` inside the event loop to close its connections)."""
        self._provider = None
