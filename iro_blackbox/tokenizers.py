"""Loading a model's tokenizer (cached per process), for counting tokens and chat templates."""

from __future__ import annotations

import functools
import os
from typing import Any

from .errors import ModelNotFoundError
from .models import resolve_model


@functools.lru_cache(maxsize=8)
def load_tokenizer(spec: str) -> Any:
    """The tokenizer of a model spec (alias, folder, .gguf or hub id)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers import AutoTokenizer

    rm = resolve_model(spec)
    try:
        tok = AutoTokenizer.from_pretrained(rm.tokenizer_path or rm.path, **rm.load_kwargs())
    except (OSError, ValueError) as e:
        raise ModelNotFoundError(f"cannot load the tokenizer of '{spec}': {e}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok
