"""AlignConfig: every option of an IRO run, validated, with help text beside each field.

A run's options come in four parts, each handed to the code that uses it:

    run       RunOptions       data, held-out split, grader, iterations, rollouts, reweighting, seed
    provider  ProviderOptions  where the policy runs (providers/options.py)
    search    SearchOptions    chunk-level beam search: W, K, L, max_tokens, beta, sampling
    value     ValueOptions     value-model backbone and training

The CLI makes one flag per field (`--w`, `--value-backbone`, ...); the store keeps the config as
one flat JSON object of those names (`to_dict` / `from_dict`), so a run's stored config reads the
same however the parts are arranged. The config never holds secrets: API keys come from the
environment or the user config file.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, Field, asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..models import DEFAULT_VALUE_BACKBONE
from ..params import SamplingParams, check_positive_int
from ..providers.options import ProviderOptions
from ..search.types import SELECTIONS, SearchParams
from ..utils import derive_seed, option, stable_hash
from ..value.config import PRECISIONS, TUNINGS, ValueConfig, ValueTrainConfig

REWEIGHTS = ("best", "resample")
POLICIES = ("cbs", "rerank")
VALUE_DATA = ("all", "selected")
VALUE_MODELS = ("finetune", "twotower")
VALUE_LOSSES = ("mse", "centered", "pairwise")  # bce stays a library option (rewards in [0, 1])

# Options that do not change what a run computes: they may differ when a run is resumed or its
# policy is loaded elsewhere, and they are not part of the run's identity (its default name).
# Options added after runs were stored, with the value those runs used: at that value they are
# left out of the identity, so an existing run keeps its default name and resumes.
ADDED_LATER = {"value_loss": "mse", "value_heads": 1}
NOT_RESULTS = frozenset(
    {
        "run_name",
        "out",
        "no_cache",
        "concurrency",
        "rpm",
        "tpm",
        "device",
        "base_url",
        "api_key_env",
        "reprobe",
        "executor",
        "ray_address",
        "ray_workers",
        "vllm_python",
        "vllm_kv_cache_gb",
        "price_input",
        "price_output",
        "max_cost",
        "max_requests",
        "max_output_tokens",
    }
)


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


@dataclass
class RunOptions:
    data: str = option("Training prompts (JSONL).", default="")
    eval: str | None = option(
        "Held-out prompts (JSONL); default: split --eval-split off DATA.", default=None
    )
    eval_split: float = option(
        "Fraction of DATA held out for evaluation when --eval is not given.", default=0.25
    )
    limit: int | None = option(
        "Use at most this many training prompts (quick tries).", default=None
    )
    grader: str = option(
        "Reward: a grader spec (JSON file or inline JSON) or a grader type that needs no settings "
        "(sentiment).",
        default="sentiment",
    )
    iterations: int = option("IRO iterations T (value models trained).", default=2)
    rollouts: int | None = option(
        "Training candidates per prompt and iteration (default W*K).", default=None
    )
    guided_rollouts: int | None = option(
        "Training candidates per prompt for t > 1, drawn by guided search, W per search (default: --rollouts).",
        default=None,
    )
    reweight: str = option(
        "Reweight step: best (keep the best candidate per prompt, published) | resample (weights ∝ exp(r/tau)).",
        default="best",
    )
    tau: float = option("Temperature of --reweight resample.", default=0.1)
    fresh_prompts: bool = option(
        "Give each iteration a fresh slice of the training prompts (default: the same prompts).",
        default=False,
    )
    seed: int = option("Seed of everything random (sampling, splits, training).", default=0)
    run_name: str | None = option(
        "Run name (default: DATA's name + a hash of the config, so re-running resumes).",
        default=None,
    )
    out: str | None = option(
        "Run folder for value models and the report (default: $IRO_HOME/RUN).", default=None
    )
    executor: str = option(
        "Where searches, grading and value training run: local (this process) or ray (a Ray "
        "cluster: prompt shards on its nodes, the store shared).",
        default="local",
    )
    ray_address: str | None = option(
        "--executor ray: the cluster to join (host:port or ray://...); default: $RAY_ADDRESS, "
        "else a cluster started on this machine for the run.",
        default=None,
    )
    ray_workers: int | None = option(
        "--executor ray: search/grade workers (actors) to start (default: one per CPU of the "
        "cluster, or per GPU for a local model on GPUs).",
        default=None,
    )

    def __post_init__(self) -> None:
        from ..registry import EXECUTORS

        if self.executor not in EXECUTORS:
            raise ConfigError(
                f"executor must be one of {', '.join(EXECUTORS.names())}, got {self.executor!r}"
            )
        if self.ray_workers is not None:
            check_positive_int("ray_workers", self.ray_workers)
        if not self.data:
            raise ConfigError("data: a JSONL file of training prompts is required")
        check_positive_int("iterations", self.iterations)
        for name in ("limit", "rollouts", "guided_rollouts"):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name))
        if not 0.0 < self.eval_split < 1.0:
            raise ConfigError(f"eval_split must be in (0, 1), got {self.eval_split!r}")
        _choice("reweight", self.reweight, REWEIGHTS)
        if not self.tau > 0:
            raise ConfigError(f"tau must be > 0, got {self.tau!r}")
        check_positive_int("seed", self.seed, minimum=0)


def parse_betas(value: Any) -> list[float]:
    """The beta schedule of `--beta`: a number, "1,2,2.5", or a list of numbers; each > 0."""
    if isinstance(value, (list, tuple)):
        parts = list(value)
    elif isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
    else:
        parts = [value]
    out: list[float] = []
    for p in parts:
        try:
            out.append(float(p) if not isinstance(p, bool) else float("nan"))
        except (TypeError, ValueError):
            out.append(float("nan"))
    if not out or not all(0 < b < float("inf") for b in out):
        raise ConfigError(f"beta must be a number > 0 or a schedule such as 1,2,2.5, got {value!r}")
    return out


@dataclass
class SearchOptions:
    w: int = option("Beams kept per step (W).", default=4)
    k: int = option("Successors sampled per beam per step (K).", default=4)
    l: int = option("Chunk length in tokens (L).", default=16)  # noqa: E741
    max_tokens: int = option("Maximum response length in tokens.", default=64)
    beta: str = option(
        "KL strength beta_t of the value models (S = sum_t V_t / beta_t): one number for every "
        "iteration, or a schedule, one per iteration (e.g. 1,2,2.5 as the paper uses; the last "
        "value goes on for later iterations).",
        default=1.0,
    )
    temperature: float = option("Policy sampling temperature.", default=1.0)
    top_p: float = option("Policy nucleus sampling top_p.", default=1.0)
    selection: str = option(
        "Beam selection: diverse (published) | topw | softmax | lineage (each beam keeps its best successor after the first step).",
        default="diverse",
    )
    policy: str = option(
        "pi_t: cbs (chunk-level beam search guided by the value models; the endpoint must "
        "continue partial answers) | rerank (N = W*K whole answers, the best by the value "
        "models: value-reranked sampling, for endpoints that only give whole answers).",
        default="cbs",
    )

    def __post_init__(self) -> None:
        for name in ("w", "k", "l", "max_tokens"):
            check_positive_int(name, getattr(self, name))
        schedule = parse_betas(self.beta)
        # one number stays a number (run names and hashes of existing runs do not change)
        self.beta = schedule[0] if len(schedule) == 1 else ",".join(f"{b:g}" for b in schedule)
        _choice("selection", self.selection, SELECTIONS)
        _choice("policy", self.policy, POLICIES)
        if self.max_tokens < self.l:
            raise ConfigError(
                f"max_tokens ({self.max_tokens}) must be >= the chunk length l ({self.l})"
            )
        SamplingParams(temperature=self.temperature, top_p=self.top_p)

    def betas(self, n: int) -> list[float]:
        """beta_1..beta_n: the schedule, its last value repeated for later iterations."""
        schedule = parse_betas(self.beta)
        return [schedule[min(t, len(schedule) - 1)] for t in range(n)]

    @property
    def n(self) -> int:
        """Samples per prompt at equal compute with one search: N = W*K."""
        return self.w * self.k

    def params(
        self,
        seed: int,
        *,
        n: int | None = None,
        final: str = "auto",
        concurrency: int = 8,
        stop: tuple[str, ...] = (),
        **overrides: Any,
    ) -> SearchParams:
        """SearchParams of these options (overrides: w, k, k_first, l, max_tokens, temperature,
        top_p)."""
        o = {**asdict(self), **{k: v for k, v in overrides.items() if v is not None}}
        sampling = SamplingParams(
            temperature=o["temperature"], top_p=o["top_p"], seed=seed, stop=tuple(stop)
        )
        return SearchParams(
            w=o["w"],
            k=o["k"],
            k_first=o.get("k_first"),
            l=o["l"],
            max_tokens=o["max_tokens"],
            n=n,
            selection=self.selection,
            sampling=sampling,
            final=final,
            concurrency=concurrency,
        )


@dataclass
class ValueOptions:
    value_model: str = option(
        "Value-model kind: finetune (a backbone + scalar head reading prompt + partial answer, "
        "trained as --value-tuning says) | twotower (a prompt tower and an answer tower of a "
        "frozen decoder meeting in a trained MLP: seconds to train, answers relabelled for free).",
        default="finetune",
    )
    value_backbone: str = option(
        "Value-model backbone: alias (minilm-l6), folder or hub id.",
        default=DEFAULT_VALUE_BACKBONE,
    )
    tower_backbone: str = option(
        "--value-model twotower: the decoder both towers read with (alias, folder or .gguf).",
        default="smollm2-135m-instruct",
    )
    answer_layers: int = option(
        "--value-model twotower: layers of the answer tower (0: token embeddings only).",
        default=4,
    )
    value_heads: int = option(
        "--value-model twotower: heads trained on the same features with consecutive seeds, the "
        "value their mean score (one head's seed moves its ranking: README, the value-model lab).",
        default=1,
    )
    value_tuning: str = option("Value-model tuning: full | head | top | lora.", default="full")
    value_epochs: int = option(
        "Value-model training epochs (early stopping on a validation split).", default=4
    )
    value_lr: float = option("Value-model learning rate.", default=5e-5)
    value_loss: str = option(
        "Value-model objective: mse (the reward) | centered (the reward minus its prompt's mean "
        "reward: what the search compares) | pairwise (Bradley-Terry over prefixes of one prompt "
        "at one position, weighted by reward gap, plus a light centered regression).",
        default="mse",
    )
    warm_start: bool = option("Start V_t from V_{t-1}'s weights.", default=True)
    value_precision: str = option(
        "Value-model scoring precision on CPU: fp32 | bf16 (about 3x faster where the CPU has "
        "AVX-512 BF16 or AMX; scores differ in the third decimal).",
        default="fp32",
    )
    value_data: str = option(
        "Value-model training data: all (every graded candidate, weighted by the reweight step) | selected (only the kept ones).",
        default="all",
    )
    gate: bool = option(
        "Check each V_t before it steers, on the validation slice of its training prompts (never "
        "the held-out ones): a V_t that does not improve the search's ranking there is not used "
        "(pi_t = pi_{t-1}) and the run says so. --no-gate uses every V_t.",
        default=True,
    )
    value_relabel: int = option(
        "Grader relabelling: also grade every training answer against this many other training "
        "prompts and train V_t on those grades too (more data from the same samples; 0 = off).",
        default=0,
    )

    def __post_init__(self) -> None:
        _choice("value_tuning", self.value_tuning, TUNINGS)
        _choice("value_loss", self.value_loss, VALUE_LOSSES)
        _choice("value_data", self.value_data, VALUE_DATA)
        _choice("value_model", self.value_model, VALUE_MODELS)
        if (
            isinstance(self.answer_layers, bool)
            or not isinstance(self.answer_layers, int)
            or (self.answer_layers < 0)
        ):
            raise ConfigError(f"answer_layers must be an integer >= 0, got {self.answer_layers!r}")
        _choice("value_precision", self.value_precision, PRECISIONS)
        check_positive_int("value_epochs", self.value_epochs)
        check_positive_int("value_heads", self.value_heads)
        if self.value_heads > 1 and self.value_model != "twotower":
            raise ConfigError(
                f"value_heads {self.value_heads} applies to --value-model twotower only "
                f"(this run's value model is {self.value_model}); leave it at 1"
            )
        if (
            isinstance(self.value_relabel, bool)
            or not isinstance(self.value_relabel, int)
            or (self.value_relabel < 0)
        ):
            raise ConfigError(f"value_relabel must be an integer >= 0, got {self.value_relabel!r}")

    def train_config(self, *, seed: int, chunk_tokens: int, device: str | None) -> ValueTrainConfig:
        """How V_t is trained (prefixes cut every `chunk_tokens`, the search's L)."""
        return ValueTrainConfig(
            model=ValueConfig(
                backbone=self.value_backbone,
                device=device or "auto",
                precision=self.value_precision,
            ),
            tuning=self.value_tuning,
            lr=self.value_lr if self.value_tuning == "full" else None,
            epochs=self.value_epochs,
            loss=self.value_loss,
            chunk_tokens=chunk_tokens,
            seed=seed,
        )


PARTS: tuple[tuple[str, type, str], ...] = (
    ("run", RunOptions, "Data and run"),
    ("provider", ProviderOptions, "Policy model and provider"),
    ("search", SearchOptions, "Search (pi_t decoding)"),
    ("value", ValueOptions, "Value models"),
)


@dataclass
class AlignConfig:
    run: RunOptions
    provider: ProviderOptions
    search: SearchOptions
    value: ValueOptions

    def __post_init__(self) -> None:
        n_betas = len(parse_betas(self.search.beta))
        if n_betas > self.run.iterations:
            raise ConfigError(
                f"beta gives {n_betas} values for {self.run.iterations} iteration(s): one per "
                "iteration at most"
            )
        if self.provider.batch_api and self.provider.no_cache:
            raise ConfigError("batch_api fills the request cache: do not combine it with no_cache")

    # -- flat view (the CLI flags and the stored JSON) -----------------------------------------
    @staticmethod
    def fields() -> list[tuple[str, Field, str]]:
        """(part, field, panel title) of every option, in CLI order."""
        return [(part, f, title) for part, cls, title in PARTS for f in fields(cls)]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AlignConfig:
        """From the flat {option: value} form; unknown names are an error that names them."""
        if not isinstance(d, dict):
            raise ConfigError(f"align options must be an object, got {type(d).__name__}")
        by_part: dict[str, dict[str, Any]] = {part: {} for part, _, _ in PARTS}
        owner = {f.name: part for part, f, _ in cls.fields()}
        unknown = sorted(k for k in d if k not in owner)
        if unknown:
            raise ConfigError(f"unknown align option(s): {', '.join(unknown)}")
        for k, v in d.items():
            by_part[owner[k]][k] = v
        return cls(**{part: ocls(**by_part[part]) for part, ocls, _ in PARTS})

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for part, _, _ in PARTS:
            out.update(asdict(getattr(self, part)))
        return out

    def replace(self, **changes: Any) -> AlignConfig:
        return AlignConfig.from_dict({**self.to_dict(), **changes})

    @classmethod
    def help_of(cls, name: str) -> str:
        for _, f, _ in cls.fields():
            if f.name == name:
                return f.metadata.get("help", "")
        raise KeyError(name)

    @classmethod
    def default_of(cls, name: str) -> Any:
        for _, f, _ in cls.fields():
            if f.name == name:
                return None if f.default is MISSING else f.default
        raise KeyError(name)

    # -- identity ------------------------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        """The options that change what the run computes (data paths made absolute)."""
        d = {
            k: v
            for k, v in self.to_dict().items()
            if k not in NOT_RESULTS and not (k in ADDED_LATER and v == ADDED_LATER[k])
        }
        d["data"] = str(Path(d["data"]).resolve())
        if d.get("eval"):
            d["eval"] = str(Path(d["eval"]).resolve())
        return d

    def default_run_name(self) -> str:
        return f"{Path(self.run.data).stem}-{stable_hash(self.identity())[:8]}"

    def differences(self, other: AlignConfig) -> list[str]:
        """Names of the result-changing options that differ from `other`'s."""
        a, b = self.identity(), other.identity()
        return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))

    # -- derived -------------------------------------------------------------------------------
    @property
    def n_rollouts(self) -> int:
        return self.run.rollouts or self.search.n

    @property
    def n_guided_rollouts(self) -> int:
        return self.run.guided_rollouts or self.n_rollouts

    def train_prompts(self, train: list[Any], t: int) -> list[Any]:
        """The training prompts of iteration t: all of them, or a fresh slice (--fresh-prompts)."""
        if not self.run.fresh_prompts:
            return train
        size = math.ceil(len(train) / self.run.iterations)
        return train[(t - 1) * size : t * size] or train

    @property
    def concurrency(self) -> int:
        """Prompts searched at once (their provider rows share calls)."""
        return max(4, self.provider.concurrency)

    def search_params(self, seed_tag: Any, **kw: Any) -> SearchParams:
        """The search parameters of one stage, seeded by (seed, seed_tag) like every stage."""
        seed = derive_seed(self.run.seed, seed_tag) % (2**31)
        kw.setdefault("concurrency", self.concurrency)
        return self.search.params(seed, **kw)
