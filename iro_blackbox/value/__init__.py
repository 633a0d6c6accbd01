"""Value models (IRO step 3): a transformers backbone + scalar head that reads the raw text
"prompt + partial response" and predicts the final reward, trained at every response prefix.

    from iro_blackbox.value import ValueTrainConfig, make_value_examples, train_value_model

    cfg = ValueTrainConfig(tuning="full", epochs=3, prefix_mode="chunk", chunk_tokens=16)
    examples = make_value_examples([(prompt, response, reward), ...], cfg)
    vm, metrics = train_value_model(examples, cfg, out_dir="iro-runs/run/value/t1")
    vm.score(["Say hi."], ["Hello"])            # -> [value in reward units]
    ValueModel.load("iro-runs/run/value/t1")   # on any machine, CPU or CUDA

The model and its training (torch: heavy) load on first use of their names.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .config import DEFAULT_LR, ValueConfig, ValueTrainConfig
from .data import RolloutData, ValueExample, make_value_examples

_HEAVY = {
    "ValueModel": "model",
    "load_saved": "saved",
    "split_examples": "data",
    "train_value_model": "train",
}
__all__ = [
    "DEFAULT_LR",
    "RolloutData",
    "ValueConfig",
    "ValueExample",
    "ValueModel",
    "ValueTrainConfig",
    "load_saved",
    "make_value_examples",
    "split_examples",
    "train_value_model",
]


def __getattr__(name: str) -> Any:
    if name in _HEAVY:
        return getattr(import_module(f".{_HEAVY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
