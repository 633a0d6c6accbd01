"""Loading a model's tokenizer (cached per process, and on disk for GGUF files).

Building a tokenizer out of a GGUF file takes 20 to 80 seconds on a small CPU; the result is saved
once under $IRO_CACHE_DIR (default ~/.cache/iro-bb)/tokenizers/<hash of the file> and loaded from
there in well under a second afterwards.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from .errors import ModelNotFoundError
from .models import resolve_model
from .utils import stable_hash


def cache_dir() -> Path:
    return Path(os.environ.get("IRO_CACHE_DIR", Path.home() / ".cache" / "iro-bb"))


def _gguf_cache_path(path: str, gguf_file: str) -> Path:
    f = Path(path) / gguf_file
    st = f.stat()
    return (
        cache_dir()
        / "tokenizers"
        / stable_hash([str(f.resolve()), st.st_size, int(st.st_mtime)])[:24]
    )


@functools.lru_cache(maxsize=8)
def load_tokenizer(spec: str) -> Any:
    """The tokenizer of a model spec (alias, folder, .gguf or hub id)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers import AutoTokenizer

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
    from transformers import AutoTokenizer

    cached = _gguf_cache_path(path, gguf_file)
    if (cached / "tokenizer_config.json").is_file():
        try:
            return AutoTokenizer.from_pretrained(cached)
        except (OSError, ValueError):
            shutil.rmtree(cached, ignore_errors=True)  # a damaged cache entry: rebuild it
    tok = AutoTokenizer.from_pretrained(path, gguf_file=gguf_file)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=cached.parent, prefix=".tmp-"))
        tok.save_pretrained(tmp)
        try:
            tmp.rename(cached)
        except OSError:  # another process saved it first
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError:
        pass  # a read-only home: the tokenizer still works, only slower next time
    return tok
