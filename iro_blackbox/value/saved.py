"""Load any saved value model from its folder: a fine-tuned backbone + head (value_model.json)
or a two-tower model (twotower.json), whichever the folder holds."""

from __future__ import annotations

import os
from typing import Any


def load_saved(path: str | os.PathLike, device: str = "auto", precision: str = "fp32") -> Any:
    """The value model saved at `path` (device and precision apply to fine-tuned backbones; the
    two-tower model's frozen towers run on CPU)."""
    from .twotower import is_two_tower, load_two_tower

    if is_two_tower(path):
        return load_two_tower(path)
    from .model import ValueModel

    return ValueModel.load(path, device=device, precision=precision)
