"""How the openai provider continues a partial answer: one mode per API dialect.

Checked against each provider's own docs (2026-12):

    mode           endpoint              how the prefix goes in                            who
    token-ids      /completions          prompt = token ids of template + prefix           vLLM, SGLang
    completions    /completions          prompt = template rendered locally + prefix       any /completions server
    chat-continue  /chat/completions     trailing assistant message +                      vLLM, SGLang
                                         continue_final_message, add_generation_prompt=false
    chat-prefix    /chat/completions     trailing assistant message with "prefix": true    DeepSeek (base URL .../beta), Mistral
    chat-partial   /chat/completions     trailing assistant message with "partial": true   Qwen (DashScope, OpenAI mode)
    chat-prefill   /chat/completions     trailing assistant message, nothing else          llama.cpp's C++ server, Ollama, OpenRouter
    chat           /chat/completions     none: whole answers only                          everyone (OpenAI chat models, ...)

A mode that answers a trailing assistant message as a NEW turn (or echoes the prefix) does not
continue; the probe (probe.py) finds out before a run relies on it. `auto` takes the first mode
that passed the probe in this order: token-ids, completions (token and text exact with the
model's own template), then the chat dialects, the plain trailing message first (it sends no
extra field; where it restarts the turn, as on vLLM, the probe rejects it), then the flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

COMPLETIONS = "/completions"
CHAT = "/chat/completions"


@dataclass(frozen=True)
class Mode:
    name: str
    endpoint: str
    continues: bool  # can continue a non-empty prefix
    template: bool  # the chat template is rendered locally (needs the model's tokenizer)
    who: str  # the servers that speak it (for messages)

    def messages(self, prompt: Any, prefix: str) -> list[dict[str, Any]]:
        """The chat messages of a request in this mode (chat modes only)."""
        msgs = (
            [{"role": "user", "content": prompt}]
            if isinstance(prompt, str)
            else [dict(m) for m in prompt]
        )
        if not prefix or not self.continues:
            return msgs
        last: dict[str, Any] = {"role": "assistant", "content": prefix}
        if self.name == "chat-prefix":
            last["prefix"] = True
        elif self.name == "chat-partial":
            last["partial"] = True
        return [*msgs, last]

    def extra(self, prefix: str) -> dict[str, Any]:
        """Body fields the mode adds when it continues a prefix."""
        if self.name == "chat-continue" and prefix:
            return {"continue_final_message": True, "add_generation_prompt": False}
        return {}


MODES: dict[str, Mode] = {
    m.name: m
    for m in (
        Mode("token-ids", COMPLETIONS, True, True, "vLLM, SGLang"),
        Mode("completions", COMPLETIONS, True, True, "servers with /v1/completions"),
        Mode("chat-prefill", CHAT, True, False, "llama.cpp's C++ server, Ollama, OpenRouter"),
        Mode("chat-continue", CHAT, True, False, "vLLM, SGLang"),
        Mode("chat-prefix", CHAT, True, False, "DeepSeek (base URL .../beta), Mistral"),
        Mode("chat-partial", CHAT, True, False, "Qwen (DashScope)"),
        Mode("chat", CHAT, False, False, "every chat endpoint"),
    )
}
PREFERENCE = tuple(MODES)  # most exact first
CONTINUING = tuple(m for m in MODES if MODES[m].continues)
