"""Token counting for the openai provider: the local tokenizer (when one is known) that renders
the chat template for the completions modes, encodes token-ids prompts and counts tokens, and the
estimates used before a request is sent (budget, rate limits) or where a reply has no usage.

Counts come from, in order: the local tokenizer of the model (--tokenizer, or the model name when
it is a local alias, a .gguf file or a model folder), tiktoken for OpenAI models, else about four characters a token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import PermanentError
from ...models import ALIASES
from ...tokenizers import load_tokenizer
from ...utils import canonical_json
from ..base import Prompt
from ..chat_template import PromptEncoder, prompt_key, render_prompt
from .pricing import count_tiktoken, is_openai_model

_LONG_TEXT = 20_000  # characters: longer texts are estimated, not tokenized (estimates only)


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


def alias_tokenizer(model: str) -> str | None:
    """The tokenizer `model` carries itself: an alias (its tokenizer ships with iro-bb), a local
    .gguf file or a model folder (llama.cpp's server names a model by its file path)."""
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


class TokenCounter:
    """Renders, encodes and counts with the tokenizer of `tokenizer_spec` (None: no tokenizer)."""

    def __init__(self, model_name: str, tokenizer_spec: str | None):
        self.model_name = model_name
        self.spec = tokenizer_spec
        self._rendered: dict[str, str] = {}
        self._encoder: PromptEncoder | None = None

    def tokenizer(self) -> Any:
        if not self.spec:
            raise PermanentError(
                f"openai: the completions and token-ids modes render the chat template locally: "
                f"pass --tokenizer (the tokenizer of '{self.model_name}')"
            )
        return load_tokenizer(self.spec)

    def render(self, prompt: Prompt) -> str:
        """Prompt text for /completions: chat messages through the local chat template."""
        if isinstance(prompt, str):
            return prompt
        key = prompt_key(prompt)
        if key not in self._rendered:
            self._rendered[key] = render_prompt(self.tokenizer(), prompt)
        return self._rendered[key]

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer().encode(text, add_special_tokens=False)) if text else []

    def prompt_ids(self, prompt: Prompt) -> tuple[int, ...]:
        """The token ids of a prompt as the model's chat template lays it out."""
        if self._encoder is None:
            self._encoder = PromptEncoder(self.tokenizer())
        return self._encoder.prompt_ids(prompt)

    def count(self, text: str) -> int | None:
        """Token count where the server gave none: tiktoken for OpenAI models, else the local
        tokenizer when one is configured, else unknown."""
        if is_openai_model(self.model_name):
            return count_tiktoken(text)
        if self.spec:
            return len(self.encode(text))
        return None

    def estimate_input(self, body: dict[str, Any]) -> int:
        """Input tokens of a request body: counted where a tokenizer is known, else ~4 chars."""
        prompt = body.get("prompt")
        if isinstance(prompt, list):
            return len(prompt)
        text = prompt if isinstance(prompt, str) else canonical_json(body.get("messages", ""))
        counted = self.count(text) if len(text) < _LONG_TEXT else None
        return counted if counted is not None else len(text) // 4 + 1

    def count_prompt(self, prompt: Prompt) -> int:
        """Input tokens of a prompt as it will be sent (estimates before a run)."""
        if self.spec:
            return len(self.prompt_ids(prompt))
        if isinstance(prompt, str):
            return self.estimate_input({"prompt": prompt})
        return self.estimate_input({"messages": prompt})
