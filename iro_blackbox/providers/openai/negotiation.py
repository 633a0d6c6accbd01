"""Capability negotiation: which mode (modes.py) continues a partial answer at an endpoint, as
the probe (probe.py) verified it, and the advice given when none can (what would fix it).

`auto` takes the most exact mode the probe verified; a forced mode must pass the probe too. The
probe's result is stored per (base URL, model, tokenizer) and reused. A refusal comes before any
paid request, in one line that says what would work instead.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ...errors import ConfigError, PermanentError, ProviderError, TransientError
from ...store.probes import ProbeStore
from ..base import Extend, Usage
from .failures import HTTPStatusError
from .modes import CHAT, COMPLETIONS, MODES, PREFERENCE, Mode
from .probe import PROBE_VERSION, Prober
from .retry import RetryPolicy
from .tokens import TokenCounter
from .transport import CALL_FAILED, Transport

PROBE_RETRIES = RetryPolicy(max_retries=1, initial=0.2)  # a refusal given as a 500 is not worth six


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


def _evidence(caps: dict[str, Any]) -> str:
    return "; ".join(
        f"{m}: {v['evidence']}" for m, v in caps.get("modes", {}).items()
    ) or "; ".join(caps.get("notes", []))


def _works_instead(caps: dict[str, Any]) -> str:
    ok = [m for m, v in caps.get("modes", {}).items() if v.get("works")]
    return f" (modes that work: {', '.join(ok)})" if ok else ""


class Negotiator:
    """Probes an endpoint (or reuses its stored probe) and settles the mode a provider runs."""

    def __init__(
        self,
        transport: Transport,
        tokens: TokenCounter,
        model_name: str,
        mode: str,
        probes: ProbeStore | None,
        reprobe: bool,
    ):
        self.transport = transport
        self.tokens = tokens
        self.base_url = transport.base_url
        self.model_name = model_name
        self.mode = mode  # as asked: "auto" or a mode name
        self.chosen: str | None = None  # the mode prepare() settled on
        self.caps: dict[str, Any] | None = None
        self.n_honoured: dict[str, bool] = {}  # endpoint -> does the server honour n?
        self.reprobe = reprobe
        self._probes = probes
        self._lock: asyncio.Lock | None = None
        self._lock_loop: Any = None

    # -- probing ----------------------------------------------------------------------------
    async def try_request(self, endpoint: str, body: dict[str, Any]) -> tuple[dict | None, str]:
        """A probe request: (reply, "") on success, (None, reason) when the server refuses it
        (one retry of a transient failure). 401/403 are raised: no endpoint will work with a bad
        key."""
        est = self.tokens.estimate_input(body)
        max_out = int(body.get("max_tokens") or 8) * int(body.get("n") or 1)
        try:
            data, hold = await self.transport.post(
                endpoint, body, est, max_out, policy=PROBE_RETRIES, quiet=True
            )
        except HTTPStatusError as e:
            if e.status in (401, 403):
                raise
            return None, f"{e.status}: {e.detail}"
        except TransientError as e:
            return None, self.transport.scrub(str(e))
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        self.transport.account(
            Usage(int(usage.get("prompt_tokens") or est), int(usage.get("completion_tokens") or 0)),
            hold,
            est + max_out,
        )
        return data, ""

    def _probe_key(self) -> str:
        return ProbeStore.key(self.base_url, self.model_name, self.tokens.spec, PROBE_VERSION)

    def stored_probe(self) -> dict[str, Any] | None:
        """The stored probe of this endpoint and model, if any (no request)."""
        if self._probes is None or self.reprobe:
            return None
        return self._probes.get(self._probe_key())

    def _probe_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        return self._lock

    async def probe(self) -> dict[str, Any]:
        """What the endpoint can do (probe.py), stored per (base URL, model, tokenizer) and
        reused; a forced mode is checked the same way. A probe with another tokenizer reuses a
        stored probe's tokenizer-free results; an endpoint that answered nothing is a
        ProviderError and nothing is stored."""
        if self.caps is not None:
            return self.caps
        async with self._probe_lock():
            if self.caps is not None:
                return self.caps
            caps = self.stored_probe()
            if caps is None:
                render = encode = None
                if self.tokens.spec:
                    render, encode = self.tokens.render, self.tokens.encode
                earlier = None  # the tokenizer-free results of a probe with another tokenizer
                if self._probes is not None and not self.reprobe:
                    earlier = self._probes.latest(self.base_url, self.model_name, PROBE_VERSION)
                token = CALL_FAILED.set(None)  # a refused probe must not stop the caller's call
                try:
                    prober = Prober(
                        self.try_request, self.base_url, self.model_name, render, encode
                    )
                    caps = await prober.run(reuse=earlier)
                finally:
                    CALL_FAILED.reset(token)
                if not (caps.get("completions") or caps.get("chat")):
                    raise ProviderError(  # nothing learnt: nothing stored
                        f"openai: {self.base_url} answered nothing for model '{self.model_name}' "
                        f"({'; '.join(caps.get('notes', [])) or 'no reply'})"
                    )
                if self._probes is not None:
                    self._probes.put(self._probe_key(), self.base_url, self.model_name, caps)
            for ep, field in ((COMPLETIONS, "completions_n"), (CHAT, "chat_n")):
                if caps.get(field) is not None:
                    self.n_honoured.setdefault(ep, bool(caps[field]))
            self.caps = caps
            return caps

    # -- choosing ---------------------------------------------------------------------------
    def _usable(self, caps: dict[str, Any], chat_prompts: bool) -> dict[str, Any]:
        return {
            m: v
            for m, v in caps["modes"].items()
            if v.get("works") and not (MODES[m].template and chat_prompts and not self.tokens.spec)
        }

    async def choice(self, chat_prompts: bool) -> str | None:
        """The mode `auto` takes for chat (or text) prompts; None when no endpoint answers.
        Changes nothing (what `iro-bb probe` shows)."""
        usable = self._usable(await self.probe(), chat_prompts)
        return next((m for m in PREFERENCE if m in usable), None)

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
        usable = self._usable(caps, chat_prompts)
        if self.mode == "auto":
            mode = next((m for m in PREFERENCE if m in usable), None)
            if mode is None:
                raise ConfigError(
                    f"openai: no endpoint of {self.base_url} answers for model "
                    f"'{self.model_name}': {_evidence(caps)}"
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
                    f"{_works_instead(caps)}"
                )
        if needs_continuation and not MODES[mode].continues:
            raise ConfigError(self.no_continuation(caps))
        self.chosen = mode
        line = f"api mode {mode} at {self.base_url} ({MODES[mode].who}; {caps['modes'][mode]['evidence']})"
        warnings = sampling_warnings(caps)
        return line + ("; " + "; ".join(warnings) if warnings else "")

    async def mode_for(self, req: Extend) -> Mode:
        """The mode a request runs in (settled on first use when prepare() was not called)."""
        if self.chosen is None:
            if self.mode != "auto":  # forced and not checked (prepare() checks it): trusted
                self.chosen = self.mode
            else:
                await self.prepare(
                    needs_continuation=False, chat_prompts=isinstance(req.prompt, list)
                )
        mode = MODES[self.chosen]  # type: ignore[index]
        if req.prefix and not mode.continues:
            raise PermanentError(self.no_continuation(self.caps or {"modes": {}}))
        return mode

    def temperature_ok(self) -> bool:
        """False once the probe found that the endpoint refuses `temperature`."""
        return (self.caps or {}).get("temperature", True) is not False

    def honours_n(self, endpoint: str) -> bool:
        """Whether the server returns n choices on `endpoint` (True until found otherwise)."""
        return self.n_honoured.get(endpoint, True)

    def no_continuation(self, caps: dict[str, Any]) -> str:
        """Why no mode continues a partial answer here, and what would fix it."""
        fixes = []
        if caps.get("completions") and not self.tokens.spec:
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
