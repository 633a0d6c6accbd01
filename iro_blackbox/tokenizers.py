"""Loading a model's tokenizer (cached per process, and on disk for GGUF files).

Building a tokenizer out of a GGUF file takes 20 to 80 seconds on a small CPU; gguf_cache.py keeps
the result on disk, so that is paid once per file.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from .errors import ModelNotFoundError
from .gguf_cache import cached_build, entry_path
from .models import resolve_model


@functools.lru_cache(maxsize=8)
def load_tokenizer(spec: str) -> Any:
    """The tokenizer of a model spec (alias, folder, .gguf or hub id)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers import AutoTokenizer  # heavy: transformers

    rm = resolve_model(spec)
    try:
        if rm.gguf_file and not rm.tokenizer_path:
            tok = _load_gguf_tokenizer(rm.path, rm.gguf_file)
        else:
            tok = AutoTokenizer.from_pretrained(rm.tokenizer_path or rm.path, **rm.load_kwargs())
    except (OSError, ValueError) as e:
        raise ModelNotFoundError(f"cannot load the tokenizer of '{spec}': {e}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def _load_gguf_tokenizer(path: str, gguf_file: str) -> Any:
    from transformers import AutoTokenizer  # heavy: transformers

    return cached_build(
        entry_path("tokenizers", path, gguf_file),
        "tokenizer_config.json",
        AutoTokenizer.from_pretrained,
        lambda: AutoTokenizer.from_pretrained(path, gguf_file=gguf_file),
    )
