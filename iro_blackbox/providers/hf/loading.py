"""Loading the local policy model: weights (GGUF files dequantized once, see gguf_cache.py),
tokenizer, dtype, its end-of-sequence ids, and whether its KV cache can be reused across calls."""

from __future__ import annotations

import shutil
from typing import Any

import torch
from transformers import AutoModelForCausalLM, DynamicCache
from transformers.cache_utils import DynamicLayer

from ...errors import ConfigError, ModelNotFoundError
from ...gguf_cache import DEQUANTIZED_FORMAT, cached_build, entry_path, save_dequantized
from ...models import pick_dtype, resolve_model
from ...tokenizers import load_tokenizer

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


def parse_dtype(dtype: Any, device: str) -> torch.dtype:
    if dtype is None or dtype == "auto":
        return pick_dtype(device)
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and dtype.lower() in _DTYPES:
        return _DTYPES[dtype.lower()]
    raise ConfigError(f"dtype must be one of auto, {', '.join(_DTYPES)}, got {dtype!r}")


def eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    gen = getattr(model, "generation_config", None)
    eos = getattr(gen, "eos_token_id", None) if gen is not None else None
    for e in eos if isinstance(eos, (list, tuple)) else [eos]:
        if isinstance(e, int):
            ids.add(e)
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return frozenset(ids)


def plain_dynamic_cache(model: Any) -> bool:
    """KV reuse needs every layer to be a plain full-attention DynamicLayer (no sliding window)."""
    try:
        layers = DynamicCache(config=model.config).layers
    except Exception:  # noqa: BLE001 - unknown cache layouts: no reuse, re-encode instead
        return False
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


def load_model(spec: str, device: str, dtype: torch.dtype) -> tuple[Any, Any, str]:
    """Load (model, tokenizer, name) for a model spec."""
    rm = resolve_model(spec)
    tok = load_tokenizer(spec)

    def from_source() -> Any:
        return AutoModelForCausalLM.from_pretrained(rm.path, dtype=dtype, **rm.load_kwargs())

    try:
        if rm.gguf_file:  # dequantized once, then loaded from the disk cache (gguf_cache.py)
            model = cached_build(
                entry_path("models", rm.path, rm.gguf_file, dtype, DEQUANTIZED_FORMAT),
                "config.json",
                lambda d: AutoModelForCausalLM.from_pretrained(d, dtype=dtype),
                from_source,
                save_dequantized,
            )
        else:
            model = from_source()
    except (OSError, ValueError) as e:
        raise ModelNotFoundError(f"cannot load model '{spec}': {e}") from None
    return model.to(device).eval(), tok, rm.name


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "chat_template.jinja", "tokenizer.model", "vocab.json", "merges.txt")  # fmt: skip


def plain_model_folder(spec: str) -> str:
    """A complete transformers folder (config, weights, tokenizer) for engines that read one, such
    as vLLM: a plain folder or hub id as it is; a GGUF model dequantized once into iro-bb's cache
    (gguf_cache.py) with its tokenizer files beside the weights."""
    rm = resolve_model(spec)
    if not rm.gguf_file:
        return rm.path
    folder = entry_path("models", rm.path, rm.gguf_file, torch.float32, DEQUANTIZED_FORMAT)
    if not (folder / "model.safetensors").is_file():
        load_model(spec, "cpu", torch.float32)  # builds the cache entry
    if not (folder / "tokenizer_config.json").is_file():
        tok_dir = folder.parent / (folder.name + ".tok")
        load_tokenizer(spec).save_pretrained(tok_dir)
        for name in TOKENIZER_FILES:
            if (tok_dir / name).is_file():
                shutil.copy(tok_dir / name, folder / name)
        shutil.rmtree(tok_dir, ignore_errors=True)
    return str(folder)
