"""Probing an OpenAI-compatible endpoint: what it can really do, verified rather than trusted.

Each continuation mode (modes.py) is tried on one deterministic question: asked to count from 1
to 10 with the answer so far "1, 2, 3, 4,", greedy, a mode works only if the reply goes on with
"5". A restart ("1, 2, ..."), an echo of the prefix or an error fails the mode, and the reply or
the error is kept as evidence. Then: does the endpoint honour `n` (two choices at once), `seed`
(the same seed twice gives the same text, another seed another text), `temperature` (some newest
models refuse it), token logprobs, and are echoed prompt logprobs trustworthy (score()).

Every request is tiny (at most 8 new tokens): about a dozen in all. The result is stored per
(base URL, model, tokenizer) and reused (store/probes.py). Only the modes that render the chat
template locally (completions, token-ids) depend on the tokenizer: probing with another tokenizer
reuses the rest of a stored probe of the same endpoint and model (`run(reuse=...)`). A capability
no answer showed (the endpoint refused both whole-answer requests) is None: unknown.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from .modes import CHAT, COMPLETIONS, CONTINUING, MODES, PREFERENCE

PROBE_VERSION = 2  # bump when the checks change: stored results of other versions are ignored
COUNT_PROMPT = [{"role": "user", "content": "Count from 1 to 10, separated by commas."}]
COUNT_PREFIX = "1, 2, 3, 4,"
COUNT_TEXT = "Counting from 1 to 10, separated by commas: "
SEED_PROMPT = [{"role": "user", "content": "Write one short sentence about the sea."}]

# (endpoint, body) -> (reply, "") on success or (None, reason) when the server refuses it
Try = Callable[[str, dict[str, Any]], Awaitable[tuple[dict | None, str]]]


def reply_text(endpoint: str, reply: dict | None) -> str | None:
    """The first choice's text (completions) or message content (chat)."""
    try:
        c = (reply or {})["choices"][0]
        text = c["text"] if endpoint == COMPLETIONS else c["message"].get("content")
        return text if isinstance(text, str) else ("" if text is None else None)
    except (KeyError, IndexError, TypeError, AttributeError):
        return None


def _short(why: str, limit: int = 200) -> str:
    why = " ".join(why.split())
    return why if len(why) <= limit else why[: limit - 3] + "..."


def judge_continuation(text: str | None, why: str) -> tuple[bool, str]:
    """Did a reply continue "1, 2, 3, 4," (works, evidence)?"""
    if text is None:
        return False, f"refused: {_short(why)}" if why else "no text in the reply"
    shown = repr(text[:40])
    t = text.lstrip()
    if t.startswith("5"):
        return True, f"continued: '{COUNT_PREFIX}' + {shown}"
    if t.startswith("1"):
        return False, f"restarted the answer (a new turn, or the prefix echoed): {shown}"
    if COUNT_PREFIX.replace(" ", "") in t.replace(" ", ""):
        return False, f"echoed the prefix: {shown}"
    return False, f"did not continue with 5: {shown}"


class Prober:
    """Runs the checks through `try_` (the provider's own request path, no retries of refusals)."""

    def __init__(
        self,
        try_: Try,
        base_url: str,
        model: str,
        render: Callable[[Any], str] | None,
        encode: Callable[[str], list[int]] | None,
    ):
        self.try_ = try_
        self.base_url = base_url
        self.model = model
        self.render = render  # prompt -> text with the chat template (None: no tokenizer)
        self.encode = encode  # text -> token ids (None: no tokenizer)
        self.temperature = True  # False once the endpoint refused the parameter
        self.temperature_answered = False  # a request with `temperature` was answered

    def _body(self, endpoint: str, **fields: Any) -> dict[str, Any]:
        body = {"model": self.model, **fields}
        if not self.temperature:
            body.pop("temperature", None)
        return body

    async def ask(self, endpoint: str, body: dict[str, Any]) -> tuple[dict | None, str]:
        """A request; one refused for its `temperature` is sent again without it (and every
        later request of the probe leaves it out)."""
        reply, why = await self.try_(endpoint, body)
        if reply is None and self.temperature and "temperature" in why.lower():
            self.temperature = False
            body = {k: v for k, v in body.items() if k != "temperature"}
            reply, why = await self.try_(endpoint, body)
        if reply is not None and "temperature" in body:
            self.temperature_answered = True
        return reply, why

    async def mode(self, name: str) -> dict[str, Any]:
        """The counting check of one continuing mode."""
        mode = MODES[name]
        if name == "token-ids" and self.encode is None:
            return {
                "works": False,
                "tried": False,
                "evidence": "not tried: it tokenizes locally (pass --tokenizer)",
            }
        if mode.endpoint == COMPLETIONS:
            # with the model's chat template when a tokenizer is known, else as plain text (the
            # completions mode then serves text prompts only)
            head = self.render(COUNT_PROMPT) if self.render else COUNT_TEXT  # type: ignore[misc]
            if name == "token-ids":
                assert self.encode is not None
                prompt: Any = self.encode(head) + self.encode(COUNT_PREFIX)
            else:
                prompt = head + COUNT_PREFIX
            extra = {"return_token_ids": True} if name == "token-ids" else {}
            body = self._body(COMPLETIONS, prompt=prompt, max_tokens=6, temperature=0.0, **extra)
        else:
            body = self._body(
                CHAT,
                messages=mode.messages(COUNT_PROMPT, COUNT_PREFIX),
                max_tokens=8,
                temperature=0.0,
                **mode.extra(COUNT_PREFIX),
            )
        reply, why = await self.ask(mode.endpoint, body)
        works, evidence = judge_continuation(reply_text(mode.endpoint, reply), why)
        if works and mode.template and self.render is None:
            evidence += " (as plain text: chat prompts need --tokenizer)"
        return {"works": works, "tried": True, "evidence": evidence}

    async def run(
        self, only: list[str] | None = None, reuse: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Every check; with `reuse` (a stored probe of this endpoint and model with another
        tokenizer) only the modes that depend on the tokenizer are asked again."""
        if reuse is not None:
            return await self._rerun_template_modes(reuse, only)
        res: dict[str, Any] = {
            "v": PROBE_VERSION,
            "base_url": self.base_url,
            "model": self.model,
            "tokenizer": self.render is not None,
            "modes": {},
            "notes": [],
        }
        # whole answers: does each endpoint answer at all, with n=2, with logprobs?
        body = self._body(COMPLETIONS, prompt="1, 2, 3,", max_tokens=2, temperature=1.0)
        comp, why_c = await self.ask(COMPLETIONS, {**body, "n": 2, "logprobs": 1})
        if comp is None:
            comp, why_c = await self.ask(COMPLETIONS, body)
            res["completions_n"] = res["completions_logprobs"] = None if comp is None else False
        else:
            ch = comp.get("choices") or [{}]
            res["completions_n"] = len(ch) >= 2
            res["completions_logprobs"] = bool((ch[0].get("logprobs") or {}).get("token_logprobs"))
        res["completions"] = comp is not None
        if comp is None:
            res["notes"].append(f"/completions refused: {why_c}")
        body = self._body(CHAT, messages=SEED_PROMPT, max_tokens=2, temperature=1.0)
        chat, why = await self.ask(CHAT, {**body, "n": 2, "logprobs": True, "top_logprobs": 1})
        if chat is None:
            chat, why = await self.ask(CHAT, body)
            res["chat_n"] = res["chat_logprobs"] = None if chat is None else False
        else:
            ch = chat.get("choices") or [{}]
            res["chat_n"] = len(ch) >= 2
            res["chat_logprobs"] = bool((ch[0].get("logprobs") or {}).get("content"))
        res["chat"] = chat is not None
        if chat is None:
            res["notes"].append(f"/chat/completions refused: {why}")
        res["modes"]["chat"] = {
            "works": chat is not None,
            "tried": True,
            "evidence": "answers whole turns" if chat is not None else f"refused: {why}",
        }
        # every continuing mode (only the asked-for ones when `only`)
        for name in CONTINUING:
            if only is not None and name not in only:
                continue
            if MODES[name].endpoint == COMPLETIONS and not res["completions"]:
                res["modes"][name] = {
                    "works": False,
                    "tried": False,
                    "evidence": f"/completions refused: {why_c}",
                }
                continue
            if MODES[name].endpoint == CHAT and not res["chat"]:
                res["modes"][name] = {
                    "works": False,
                    "tried": False,
                    "evidence": "/chat/completions refused",
                }
                continue
            res["modes"][name] = await self.mode(name)
        res["n"] = res["chat_n"] if res["chat"] else res["completions_n"]
        res["seed"] = await self._seed(res)
        res["temperature"] = self.temperature and (True if self.temperature_answered else None)
        res["echo_score"] = await self._echo(res) if res["completions"] else None
        res["choice"] = next((m for m in PREFERENCE if res["modes"].get(m, {}).get("works")), None)
        if not self.temperature:
            res["notes"].append(
                "the endpoint refuses `temperature`: samples come at its own default temperature"
            )
        return res

    async def _rerun_template_modes(
        self, reuse: dict[str, Any], only: list[str] | None
    ) -> dict[str, Any]:
        """A stored probe's results, with the modes that render the template locally (the only
        ones the tokenizer changes) asked again."""
        res = {**reuse, "tokenizer": self.render is not None, "notes": list(reuse.get("notes", []))}
        res["modes"] = {m: dict(v) for m, v in reuse.get("modes", {}).items()}
        self.temperature = reuse.get("temperature") is not False
        for name in CONTINUING:
            if not MODES[name].template or (only is not None and name not in only):
                continue
            if res.get("completions"):
                res["modes"][name] = await self.mode(name)
        res["choice"] = next((m for m in PREFERENCE if res["modes"].get(m, {}).get("works")), None)
        res["reused"] = sorted(m for m in res["modes"] if not MODES[m].template)
        return res

    async def _seed(self, res: dict[str, Any]) -> bool | None:
        """Same seed twice -> same text, another seed -> other text: honoured. None: unknown."""
        endpoint = CHAT if res["chat"] else COMPLETIONS if res["completions"] else None
        if endpoint is None:
            return None
        if endpoint == CHAT:
            base = self._body(CHAT, messages=SEED_PROMPT, max_tokens=8, temperature=1.0)
        else:
            base = self._body(COMPLETIONS, prompt="The sea is", max_tokens=8, temperature=1.0)
        texts = []
        for seed in (11, 11, 12):
            reply, _ = await self.ask(endpoint, {**base, "seed": seed})
            texts.append(reply_text(endpoint, reply))
        if None in texts:
            return None
        if texts[0] != texts[1]:
            return False
        return True if texts[0] != texts[2] else None  # all alike: deterministic or ignored

    async def _echo(self, res: dict[str, Any]) -> bool:
        """Trusted only when the echoed logprobs of a greedy continuation equal the logprobs the
        server reported while generating it (llama.cpp's are shifted by one)."""
        if not (res["completions"] and res["completions_logprobs"]):
            return False
        head = "1, 2, 3,"
        gen, _ = await self.ask(
            COMPLETIONS,
            self._body(COMPLETIONS, prompt=head, max_tokens=2, temperature=0.0, logprobs=1),
        )
        if gen is None:
            return False
        ch = (gen.get("choices") or [{}])[0]
        text = ch.get("text") or ""
        want = (ch.get("logprobs") or {}).get("token_logprobs") or []
        echo, _ = await self.ask(
            COMPLETIONS,
            self._body(
                COMPLETIONS,
                prompt=head + text,
                max_tokens=1,
                temperature=0.0,
                echo=True,
                logprobs=1,
            ),
        )
        got = echo_slice(echo, len(head), len(head) + len(text)) if echo else None
        return bool(
            text
            and got is not None
            and len(got) == len(want)
            and all(w is not None and abs(g - w) < 0.1 for g, w in zip(got, want, strict=True))
        )


def echo_slice(data: dict[str, Any], start: int, end: int) -> list[float] | None:
    """Logprobs of the echoed tokens starting in [start, end) characters (None if malformed)."""
    try:
        lp = data["choices"][0]["logprobs"]
        offsets, values = lp["text_offset"], lp["token_logprobs"]
        return [
            float(v)
            for o, v in zip(offsets, values, strict=False)
            if start <= o < end and v is not None
        ]
    except (KeyError, IndexError, TypeError, ValueError):
        return None
