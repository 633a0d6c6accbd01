"""Probing an OpenAI-compatible endpoint once: what it can do.

- completions / chat: does the endpoint answer (a refusal such as 404 means no);
- completions_n / chat_n: does it honour `n` (llama.cpp always returns one choice);
- completions_logprobs / chat_logprobs: does it return token logprobs;
- chat_continue: does it continue a partial assistant message (`continue_final_message`, vLLM).
  A server that implements it refuses it together with add_generation_prompt=true; one that
  ignores unknown fields answers 200 (and would silently start a new turn);
- echo_score: are echoed prompt logprobs trustworthy (vLLM: yes; llama.cpp: shifted by one).
Each check is a tiny request (at most 2 new tokens).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

COMPLETIONS = "/completions"
CHAT = "/chat/completions"

# (endpoint, body) -> (reply, "") on success or (None, reason) when the server refuses the request
Try = Callable[[str, dict[str, Any]], Awaitable[tuple[dict | None, str]]]


async def probe_endpoint(try_: Try, base_url: str, model: str) -> dict[str, Any]:
    """Capabilities of `base_url` for `model`: see the module docstring."""
    m = model
    caps: dict[str, Any] = {"base_url": base_url, "model": m, "notes": []}
    # /completions, with n and logprobs; then bare if the server refuses those
    body = {"model": m, "prompt": "1, 2, 3,", "max_tokens": 2, "temperature": 1.0}
    r, why = await try_(COMPLETIONS, {**body, "n": 2, "logprobs": 1})
    if r is None:
        r, why = await try_(COMPLETIONS, body)
        caps["completions_n"] = caps["completions_logprobs"] = None if r is None else False
    else:
        ch = r.get("choices") or [{}]
        caps["completions_n"] = len(ch) >= 2
        lp = ch[0].get("logprobs") or {}
        caps["completions_logprobs"] = bool(lp.get("token_logprobs"))
    caps["completions"] = r is not None
    if r is None:
        caps["notes"].append(f"/completions refused: {why}")
    # /chat/completions
    msgs = [{"role": "user", "content": "Say hi."}]
    body = {"model": m, "messages": msgs, "max_tokens": 2, "temperature": 1.0}
    r, why = await try_(CHAT, {**body, "n": 2, "logprobs": True, "top_logprobs": 1})
    if r is None:
        r, why = await try_(CHAT, body)
        caps["chat_n"] = caps["chat_logprobs"] = None if r is None else False
    else:
        ch = r.get("choices") or [{}]
        caps["chat_n"] = len(ch) >= 2
        caps["chat_logprobs"] = bool((ch[0].get("logprobs") or {}).get("content"))
    caps["chat"] = r is not None
    if r is None:
        caps["notes"].append(f"/chat/completions refused: {why}")
    # chat continuation: a server that implements continue_final_message refuses it together
    # with add_generation_prompt=true (vLLM); one that ignores unknown fields answers 200.
    caps["chat_continue"] = False
    if caps["chat"]:
        partial = msgs + [{"role": "assistant", "content": "Hi"}]
        cont = {
            "model": m,
            "messages": partial,
            "max_tokens": 1,
            "continue_final_message": True,
        }
        bad, why = await try_(CHAT, {**cont, "add_generation_prompt": True})
        if bad is None and "continue_final_message" in why:
            ok, why = await try_(CHAT, {**cont, "add_generation_prompt": False})
            caps["chat_continue"] = ok is not None
    # echo scoring: reliable when the echoed text is the prompt and the first logprob is null
    # echo scoring: trusted only when the echoed logprobs of a greedy continuation equal the
    # logprobs the server reported while generating it (llama.cpp's are shifted by one)
    caps["echo_score"] = False
    if caps["completions"] and caps["completions_logprobs"]:
        head = "1, 2, 3,"
        gen, _ = await try_(
            COMPLETIONS,
            {"model": m, "prompt": head, "max_tokens": 2, "temperature": 0.0, "logprobs": 1},
        )
        if gen is not None:
            ch = (gen.get("choices") or [{}])[0]
            text = ch.get("text") or ""
            want = (ch.get("logprobs") or {}).get("token_logprobs") or []
            echo, _ = await try_(
                COMPLETIONS,
                {
                    "model": m,
                    "prompt": head + text,
                    "max_tokens": 1,
                    "temperature": 0.0,
                    "echo": True,
                    "logprobs": 1,
                },
            )
            got = echo_slice(echo, len(head), len(head) + len(text)) if echo else None
            caps["echo_score"] = bool(
                text
                and got is not None
                and len(got) == len(want)
                and all(w is not None and abs(g - w) < 0.1 for g, w in zip(got, want, strict=True))
            )
    return caps


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
