"""AlignConfig: every option of an IRO run, validated, with help text (shared by the CLI).

The config is saved with the run (store + config.json) and with every value model. It never holds
secrets: API keys come from the environment or a config file.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .models import DEFAULT_MODEL, DEFAULT_VALUE_BACKBONE
from .params import SamplingParams, check_positive_int
from .utils import stable_hash


def _h(text: str, **kw: Any) -> Any:
    """A field whose help text lives next to it (read by the CLI)."""
    return field(metadata={"help": text}, **kw)


@dataclass
class AlignConfig:
    data: str = _h("Training prompts (JSONL).", default="")
    eval: str | None = _h(
        "Held-out prompts (JSONL); default: split --eval-split off DATA.", default=None
    )
    eval_split: float = _h(
        "Fraction of DATA held out for evaluation when --eval is not given.", default=0.25
    )
    limit: int | None = _h("Use at most this many training prompts (quick tries).", default=None)
    model: str = _h(
        "Policy model: alias, local folder, .gguf file or hub id (hf); the served model name (openai).",
        default=DEFAULT_MODEL,
    )
    provider: str = _h(
        "Where the policy runs: hf (local transformers) or openai (any OpenAI-compatible API).",
        default="hf",
    )
    base_url: str | None = _h(
        "Base URL of the OpenAI-compatible API, e.g. http://127.0.0.1:8000/v1.", default=None
    )
    tokenizer: str | None = _h(
        "openai provider: a local model/tokenizer whose chat template renders prompts for /v1/completions.",
        default=None,
    )
    api_mode: str = _h(
        "openai provider: auto | completions | chat-continue | chat.", default="auto"
    )
    concurrency: int = _h("openai provider: requests in flight at once.", default=8)
    device: str | None = _h("hf provider / value models: cpu, cuda, or auto.", default=None)
    grader: str = _h(
        "Reward: a grader spec (JSON file or inline JSON) or a built-in name (sentiment).",
        default="sentiment",
    )
    iterations: int = _h("IRO iterations T (value models trained).", default=2)
    w: int = _h("Beams kept per step (W).", default=4)
    k: int = _h("Successors sampled per beam per step (K).", default=4)
    l: int = _h("Chunk length in tokens (L).", default=16)  # noqa: E741
    max_tokens: int = _h("Maximum response length in tokens.", default=64)
    beta: float = _h("KL strength beta_t of every value model (S = sum_t V_t / beta).", default=1.0)
    temperature: float = _h("Policy sampling temperature.", default=1.0)
    top_p: float = _h("Policy nucleus sampling top_p.", default=1.0)
    selection: str = _h("Beam selection: diverse (published) | topw | softmax.", default="diverse")
    rollouts: int | None = _h(
        "Training candidates per prompt and iteration (default W*K).", default=None
    )
    guided_rollouts: int | None = _h(
        "Training candidates per prompt for t > 1, drawn by guided search, W per search (default: --rollouts).",
        default=None,
    )
    reweight: str = _h(
        "Reweight step: best (keep the best candidate per prompt, published) | resample (weights ∝ exp(r/tau)).",
        default="best",
    )
    tau: float = _h("Temperature of --reweight resample.", default=0.1)
    value_data: str = _h(
        "Value-model training data: all (every graded candidate, weighted by the reweight step) | selected (only the kept ones).",
        default="all",
    )
    fresh_prompts: bool = _h(
        "Give each iteration a fresh slice of the training prompts (default: the same prompts).",
        default=False,
    )
    value_backbone: str = _h(
        "Value-model backbone: alias (minilm-l6), folder or hub id.", default=DEFAULT_VALUE_BACKBONE
    )
    value_tuning: str = _h("Value-model tuning: full | head | top | lora.", default="full")
    value_epochs: int = _h(
        "Value-model training epochs (early stopping on a validation split).", default=4
    )
    value_lr: float = _h("Value-model learning rate.", default=5e-5)
    warm_start: bool = _h("Start V_t from V_{t-1}'s weights.", default=True)
    seed: int = _h("Seed of everything random (sampling, splits, training).", default=0)
    run_name: str | None = _h(
        "Run name (default: DATA's name + a hash of the config, so re-running resumes).",
        default=None,
    )
    out: str | None = _h(
        "Run folder for value models and the report (default: $IRO_HOME/RUN).", default=None
    )
    batch_api: bool = _h(
        "openai provider: send the non-adaptive rollouts (iteration-1 sampling, Best-of-N) through the Batch API.",
        default=False,
    )
    no_cache: bool = _h(
        "Do not replay provider responses from the request cache (they are still written).",
        default=False,
    )

    # fields that do not change the results (not part of the run's identity)
    _NOT_IDENTITY = ("run_name", "out", "no_cache", "concurrency", "device")

    def __post_init__(self) -> None:
        if not self.data:
            raise ConfigError("data: a JSONL file of training prompts is required")
        for name in ("iterations", "w", "k", "l", "max_tokens", "concurrency", "value_epochs"):
            check_positive_int(name, getattr(self, name))
        for name in ("limit", "rollouts", "guided_rollouts"):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name))
        if not 0.0 < self.eval_split < 1.0:
            raise ConfigError(f"eval_split must be in (0, 1), got {self.eval_split!r}")
        if self.provider not in ("hf", "openai"):
            from .adapters import provider_names

            if self.provider not in provider_names():
                raise ConfigError(
                    f"provider must be one of {', '.join(provider_names())}, got {self.provider!r}"
                )
        if self.provider == "openai" and not self.base_url:
            pass  # the official OpenAI endpoint (or OPENAI_BASE_URL) is used
        if not self.beta > 0:
            raise ConfigError(f"beta must be > 0, got {self.beta!r}")
        if self.selection not in ("diverse", "topw", "softmax"):
            raise ConfigError(f"selection must be diverse, topw or softmax, got {self.selection!r}")
        if self.reweight not in ("best", "resample"):
            raise ConfigError(f"reweight must be best or resample, got {self.reweight!r}")
        if not self.tau > 0:
            raise ConfigError(f"tau must be > 0, got {self.tau!r}")
        if self.value_data not in ("all", "selected"):
            raise ConfigError(f"value_data must be all or selected, got {self.value_data!r}")
        if self.value_tuning not in ("full", "head", "top", "lora"):
            raise ConfigError(
                f"value_tuning must be full, head, top or lora, got {self.value_tuning!r}"
            )
        if self.api_mode not in ("auto", "completions", "chat-continue", "chat"):
            raise ConfigError(
                f"api_mode must be auto, completions, chat-continue or chat, got {self.api_mode!r}"
            )
        if self.batch_api and self.provider != "openai":
            raise ConfigError("batch_api needs --provider openai")
        if self.max_tokens < self.l:
            raise ConfigError(
                f"max_tokens ({self.max_tokens}) must be >= the chunk length l ({self.l})"
            )
        SamplingParams(temperature=self.temperature, top_p=self.top_p, seed=self.seed)
        if self.fresh_prompts and self.iterations < 1:
            raise ConfigError("fresh_prompts needs iterations >= 1")

    @property
    def n_rollouts(self) -> int:
        return self.rollouts or self.w * self.k

    @property
    def n_guided_rollouts(self) -> int:
        return self.guided_rollouts or self.n_rollouts

    def identity(self) -> dict[str, Any]:
        d = self.to_dict()
        for k in self._NOT_IDENTITY:
            d.pop(k, None)
        d["data"] = str(Path(d["data"]).resolve())
        if d.get("eval"):
            d["eval"] = str(Path(d["eval"]).resolve())
        return d

    def default_run_name(self) -> str:
        return f"{Path(self.data).stem}-{stable_hash(self.identity())[:8]}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AlignConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown align option(s): {', '.join(unknown)}")
        return cls(**d)

    @classmethod
    def help_of(cls, name: str) -> str:
        for f in fields(cls):
            if f.name == name:
                return f.metadata.get("help", "")
        raise KeyError(name)

    @classmethod
    def default_of(cls, name: str) -> Any:
        for f in fields(cls):
            if f.name == name:
                return None if f.default is MISSING else f.default
        raise KeyError(name)
