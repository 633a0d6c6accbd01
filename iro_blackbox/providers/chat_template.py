"""Turning a prompt (text or chat messages) into the text and token ids a local model reads.

Chat messages go through the tokenizer's chat template with the generation prompt appended (the
assistant turn is open, ready for the response); text prompts are used as they are.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from ..errors import ConfigError, InputError
from ..utils import canonical_json

ROLES = ("system", "user", "assistant", "tool", "developer")


def check_prompt(prompt: Any) -> None:
    """Raise InputError unless `prompt` is a string or a list of {"role", "content"} messages."""
    if isinstance(prompt, str):
        return
    if not isinstance(prompt, list) or not prompt:
        raise InputError(
            f"prompt must be a string or a non-empty list of chat messages, got {type(prompt).__name__}"
        )
    for i, m in enumerate(prompt):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise InputError(f"prompt message {i} must be a dict with 'role' and 'content'")
        if m["role"] not in ROLES:
            raise InputError(f"prompt message {i} has unknown role {m['role']!r}")
        if not isinstance(m["content"], str):
            raise InputError(f"prompt message {i} content must be a string")


def prompt_key(prompt: Any) -> str:
    """A canonical string for a prompt (equal prompts give equal keys)."""
    return prompt if isinstance(prompt, str) else canonical_json(prompt)


def render_prompt(tokenizer: Any, prompt: Any) -> str:
    """The text the model reads before its response (chat template applied to messages)."""
    check_prompt(prompt)
    if isinstance(prompt, str):
        return prompt
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(
            "the model's tokenizer has no chat template: pass the prompt as plain text instead"
        )
    return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)


class PromptEncoder:
    """Renders and tokenizes prompts, remembering the most recent ones (prompts repeat a lot)."""

    def __init__(self, tokenizer: Any, capacity: int = 256):
        self.tokenizer = tokenizer
        self.capacity = capacity
        self._ids: OrderedDict[str, tuple[int, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def encode_text(self, text: str) -> list[int]:
        """Token ids of response text (no special tokens added)."""
        return list(self.tokenizer.encode(text, add_special_tokens=False)) if text else []

    def prompt_ids(self, prompt: Any, key: str | None = None) -> tuple[int, ...]:
        """Token ids of the rendered prompt. Text prompts get the tokenizer's special tokens (a BOS
        where the model uses one); a rendered chat template already holds its own."""
        key = key if key is not None else prompt_key(prompt)
        with self._lock:
            hit = self._ids.get(key)
            if hit is not None:
                self._ids.move_to_end(key)
                return hit
        text = render_prompt(self.tokenizer, prompt)
        ids = tuple(self.tokenizer.encode(text, add_special_tokens=isinstance(prompt, str)))
        with self._lock:
            self._ids[key] = ids
            if len(self._ids) > self.capacity:
                self._ids.popitem(last=False)
        return ids


CONTEXT_TOKENS = (
    4  # tokens of context decoded with new tokens so their first word keeps its spacing
)


def continuation_text(tokenizer: Any, context: Any, n_prompt: int, new: list[int]) -> str:
    """Text of the `new` token ids as it reads after `context` (the prompt's n_prompt ids, then
    the answer so far): decoded together with the last few context tokens of the answer, so a
    leading space that belongs to the first new word is kept."""

    def decode(ids: list[int]) -> str:
        return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    ctx = list(context[max(n_prompt, len(context) - CONTEXT_TOKENS) :])
    if not ctx:
        return decode(list(new))
    before, after = decode(ctx), decode(ctx + list(new))
    return after[len(before) :] if after.startswith(before) else decode(list(new))
