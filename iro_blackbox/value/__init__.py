"""Value models (IRO step 3): a transformers backbone + scalar head that reads the raw text
"prompt + partial response" and predicts the final reward, trained at every response prefix.

    from iro_blackbox.value import ValueTrainConfig, make_value_examples, train_value_model

    cfg = ValueTrainConfig(tuning="full", epochs=3, prefix_mode="chunk", chunk_tokens=16)
    examples = make_value_examples([(prompt, response, reward), ...], cfg)
    vm, metrics = train_value_model(examples, cfg, out_dir="iro-runs/run/value/t1")
    vm.score(["Say hi."], ["Hello"])            # -> [value in reward units]
    ValueModel.load("iro-runs/run/value/t1")   # on any machine, CPU or CUDA
"""

from .config import DEFAULT_LR, ValueConfig, ValueTrainConfig
from .data import RolloutData, ValueExample, make_value_examples
from .model import ValueModel
from .train import split_examples, train_value_model

__all__ = [
    "DEFAULT_LR",
    "RolloutData",
    "ValueConfig",
    "ValueExample",
    "ValueModel",
    "ValueTrainConfig",
    "make_value_examples",
    "split_examples",
    "train_value_model",
]
