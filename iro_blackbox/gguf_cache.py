"""A disk cache of what transformers builds out of a GGUF file: the tokenizer and the dequantized
model.

transformers re-reads and converts a GGUF file on every load (the vocabulary, the tensor-name
mapping, the dequantization): 20 to 80 seconds on a small CPU for the shipped SmolLM2. The result
is saved once under $IRO_CACHE_DIR (default ~/.cache/iro-bb)/{tokenizers,models}/<key>, the key
hashing the file's path, size and modification time (and the model's dtype), and loaded from there
in about a second afterwards. A damaged entry is rebuilt; a read-only cache folder only makes
loads slower.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .utils import stable_hash


def cache_dir() -> Path:
    return Path(os.environ.get("IRO_CACHE_DIR", Path.home() / ".cache" / "iro-bb"))


def entry_path(kind: str, path: str, gguf_file: str, *extra: Any) -> Path:
    """The cache folder for one GGUF file (and `extra` key parts, e.g. a dtype)."""
    f = Path(path) / gguf_file
    st = f.stat()
    key = stable_hash([str(f.resolve()), st.st_size, int(st.st_mtime), *map(str, extra)])
    return cache_dir() / kind / key[:24]


def cached_build(
    entry: Path,
    marker: str,
    load_cached: Callable[[Path], Any],
    build: Callable[[], Any],
    save: Callable[[Any, Path], None] | None = None,
) -> Any:
    """`load_cached(entry)` when `entry/marker` exists, else `build()` saved into entry (atomically:
    a temporary folder renamed into place, so a crash or a concurrent process never leaves half an
    entry). `save(obj, folder)` defaults to obj.save_pretrained(folder)."""
    if (entry / marker).is_file():
        try:
            return load_cached(entry)
        except (OSError, ValueError, RuntimeError):
            shutil.rmtree(entry, ignore_errors=True)  # damaged: rebuild it
    obj = build()
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=".tmp-"))
        try:
            (save or (lambda o, d: o.save_pretrained(d)))(obj, tmp)
            tmp.rename(entry)
        except OSError:  # another process saved it first, or the disk is full
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError:
        pass  # a read-only cache folder: it still works, only slower next time
    return obj


DEQUANTIZED_FORMAT = "v2"  # v2: tied weights saved as the input embedding (engines read that)


def save_dequantized(model: Any, folder: Path) -> None:
    """Save a model transformers loaded from a GGUF file as a plain transformers folder (its own
    save_pretrained refuses: the model still counts as GGUF-quantized, though its weights are
    ordinary float tensors by now). Tied output and input embeddings are saved once, under the
    input embedding's name, as the hub's checkpoints do: vLLM and others load the output layer
    from it (and would leave it empty if only `lm_head.weight` were there)."""
    from safetensors.torch import save_file  # heavy: torch

    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.save_pretrained(folder)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(folder)
    state, seen = {}, set()
    tied = getattr(config, "tie_word_embeddings", False)
    for name, tensor in model.state_dict().items():
        if (tied and name.endswith("lm_head.weight")) or tensor.data_ptr() in seen:
            continue  # a shared tensor is saved once (safetensors refuses aliases)
        seen.add(tensor.data_ptr())
        state[name] = tensor.detach().contiguous()
    save_file(state, str(Path(folder) / "model.safetensors"), metadata={"format": "pt"})
