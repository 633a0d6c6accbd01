"""The value-model lab: value-model variants trained on a finished run's stored rollouts (no new
sampling) and measured side by side on what the search needs.

    data = load_lab_data(repo, "ifeval-lab")                 # t=1 training rollouts, held-out
    rows = await run_lab(data, [parse_variant("minilm"), parse_variant("smollm2:lora")],
                         seeds=[0, 1], fractions=[(1.0, 1.0)], grader=grader)
    summarize(rows)

Training data: the run's iteration-1 rollouts (the base policy's graded samples on the training
prompts). Measured on: the held-out prompts' graded base samples (the t = 0 evaluation), every
prefix cut the same way for every variant (the run's value tokenizer, every L tokens), so all
variants rank exactly the same pairs: within-prompt, same-position pair accuracy (0.5 is chance),
mean Kendall tau-b, and accuracy at the first positions. Each figure is per training seed;
`summarize` gives the mean and spread over seeds.

A variant is written `backbone[:tuning][:loss][:key=value...]`, e.g. `minilm`, `smollm2:head`,
`minilm:full:pairwise:cross=4`, `minilm:ensemble=3`, `genrm-zero`, `genrm-ft:top=2` (see
Variant).
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ConfigError, InputError
from ..graders import Grader
from ..store import RunRepository
from ..value import RolloutData, ValueTrainConfig, make_value_examples
from ..value.combine import WeightedValue
from ..value.config import LOSSES, PREFIX_MODES, TUNINGS
from ..value.ranking import rank_examples
from .config import AlignConfig
from .relabel import relabel

BACKBONES = {"minilm": "minilm-l6", "smollm2": "smollm2-135m-instruct"}


@dataclass(frozen=True)
class Variant:
    """One value-model recipe."""

    backbone: str = "minilm-l6"  # alias (minilm, smollm2), folder or hub id
    tuning: str = "full"  # full | head | top | lora
    loss: str = "mse"  # mse | centered | pairwise | bce
    prefix_mode: str = "chunk"  # which prefixes are trained on: chunk | token | random
    k_random: int = 4  # prefix_mode="random": interior cut points per response
    cross: int = 0  # grader relabelling: each answer also graded against this many other prompts
    ensemble: int = 1  # models trained with different seeds, their scores averaged
    epochs: int | None = None  # None: the run's --value-epochs
    steps: int | None = None  # twotower: optimizer steps of the head (None: its default)
    lr: float | None = None  # None: the tuning mode's default (full: the run's --value-lr)
    genrm: str = ""  # "zero": an instruction-tuned LM's p(yes), no training; "ft": fine-tuned
    top: int = 2  # genrm ft: top layers trained
    max_examples: int = 2000  # genrm ft: training prefixes (a seeded draw)
    twotower: bool = False  # value/twotower.py: prompt and answer towers + a trained MLP
    answer_layers: int = 4  # twotower: layers of the answer tower (0: token embeddings)
    prompt_layer: int | None = -1  # twotower: hidden layer of the prompt tower (-1: the last)
    product: bool = False  # twotower: the MLP also reads p * r
    select: str = "last"  # twotower: final weights (last) | best on a stop slice: accuracy | mse
    joint: bool = False  # twotower: the answer tower reads the answer after the prompt
    pool: str = "mean"  # twotower: answer features, mean | last (token state)
    hidden: int = 256  # twotower: MLP width
    label: str = field(default="", compare=False)  # as written

    @property
    def name(self) -> str:
        return self.label or self.backbone


def parse_variant(text: str) -> Variant:
    """`backbone[:tuning][:loss][:key=value...]`; `genrm-zero[:model=M]` for the zero-shot
    generative value model, `genrm-ft[:model=M][:top=2][:max=2000][:epochs=1][:lr=5e-5]` for it
    fine-tuned."""
    parts = [p.strip() for p in text.split(":") if p.strip()]
    if not parts:
        raise ConfigError("empty variant")
    kw: dict[str, Any] = {"label": text}
    head = parts.pop(0)
    if head in ("genrm-zero", "genrm-ft"):
        kw.update(genrm=head.split("-")[1], backbone="smollm2-135m-instruct")
    elif head == "twotower":
        kw.update(twotower=True, backbone="smollm2-135m-instruct")
    else:
        kw["backbone"] = BACKBONES.get(head, head)
    for p in parts:
        if "=" in p:
            key, value = p.split("=", 1)
            if key in ("cross", "ensemble", "epochs", "k_random", "hidden", "steps", "top"):
                kw[key] = int(value)
            elif key == "max":
                kw["max_examples"] = int(value)
            elif key in ("al", "pl"):
                kw["answer_layers" if key == "al" else "prompt_layer"] = int(value)
            elif key in ("joint", "product"):
                kw[key] = value not in ("0", "false", "no")
            elif key in ("pool", "select"):
                kw[key] = value
            elif key == "lr":
                kw[key] = float(value)
            elif key in ("prefix_mode", "model"):
                kw["prefix_mode" if key == "prefix_mode" else "backbone"] = BACKBONES.get(
                    value, value
                )
            else:
                raise ConfigError(f"variant {text!r}: unknown key {key!r}")
        elif p in TUNINGS:
            kw["tuning"] = p
        elif p in LOSSES:
            kw["loss"] = p
        elif p in PREFIX_MODES:
            kw["prefix_mode"] = p
        else:
            raise ConfigError(
                f"variant {text!r}: {p!r} is not a tuning ({', '.join(TUNINGS)}), a loss "
                f"({', '.join(LOSSES)}), a prefix mode or key=value"
            )
    return Variant(**kw)


@dataclass
class LabData:
    """A run's stored rollouts as the lab uses them."""

    run: str
    cfg: AlignConfig
    train: list[RolloutData]  # t=1 training rollouts (base samples)
    held: list[RolloutData]  # held-out prompts' graded base samples
    items: dict[str, dict[str, Any]]  # prompt text -> dataset record (for relabelling)


def load_lab_data(repo: RunRepository, run: str) -> LabData:
    row = repo.find(run)
    cfg = AlignConfig.from_dict(dict(row.config))
    examples = {e.pk: e.data for e in repo.examples(row.id)}
    items: dict[str, dict[str, Any]] = {}

    def usable(rows: list) -> list[RolloutData]:
        out = []
        for r in rows:
            if r.reward is None or r.grade_error is not None:
                continue
            items.setdefault(r.prompt, examples.get(r.example_id, {}))
            out.append(RolloutData(r.prompt, r.response, float(r.reward), 1.0))
        return out

    train = usable(repo.rollouts(row.id, 1, "train", "sample"))
    held = usable(repo.rollouts(row.id, 0, "eval", "best_of_n"))
    if not train or not held:
        raise InputError(f"run {row.name}: no graded t=1 training rollouts or t=0 held-out samples")
    return LabData(row.name, cfg, train, held, items)


def subsample(
    rollouts: Sequence[RolloutData], prompt_frac: float, rollout_frac: float, seed: int
) -> list[RolloutData]:
    """A seeded share of the prompts, and of each kept prompt's rollouts (at least one each)."""
    by_prompt: dict[str, list[RolloutData]] = {}
    for r in rollouts:
        by_prompt.setdefault(r.prompt, []).append(r)
    rng = random.Random(seed)
    prompts = sorted(by_prompt)
    rng.shuffle(prompts)
    prompts = prompts[: max(1, round(len(prompts) * prompt_frac))]
    out = []
    for p in sorted(prompts):
        rows = by_prompt[p]
        out += rows[: max(1, round(len(rows) * rollout_frac))]
    return out


def train_config(data: LabData, v: Variant, seed: int) -> ValueTrainConfig:
    opts = {**data.cfg.to_dict(), "value_backbone": v.backbone, "value_tuning": v.tuning}
    opts["value_loss"] = v.loss if v.loss != "bce" else "mse"
    if v.epochs:
        opts["value_epochs"] = v.epochs
    if v.lr:
        opts["value_lr"] = v.lr
    tcfg = AlignConfig.from_dict(opts).value.train_config(
        seed=seed, chunk_tokens=data.cfg.search.l, device="cpu"
    )
    changes: dict[str, Any] = {"prefix_mode": v.prefix_mode, "k_random": v.k_random}
    if v.loss == "bce":
        changes["loss"] = "bce"
    if v.lr and v.tuning != "full":
        changes["lr"] = v.lr
    return tcfg.replace(**changes)


async def build_model(
    data: LabData, v: Variant, train: list[RolloutData], seed: int, grader: Grader | None
) -> tuple[Any, dict[str, Any]]:
    """Train (or load, for genrm-zero) one variant; returns (scorer, facts about the training)."""
    from ..value import train_value_model

    if v.genrm:
        from ..value.genrm import GenerativeValue

        judge = GenerativeValue(v.backbone)
        if v.genrm == "zero":
            return judge, {"train_rollouts": 0}
    rows = list(train)
    extra = 0
    if v.cross:
        if grader is None:
            raise ConfigError(f"variant {v.name}: cross= needs the run's grader")
        more = await relabel(rows, data.items, grader, k=v.cross, seed=seed)
        extra = len(more)
        rows += more
    if v.genrm:  # fine-tuned on the training prefixes, cut as the held-out ones are
        tcfg = train_config(data, v, seed)
        fit = judge.fit(
            make_value_examples(rows, tcfg, tokenizer=judge.tokenizer), top_layers=v.top, epochs=v.epochs or 1,
            lr=v.lr or 5e-5, max_examples=v.max_examples, seed=seed,
        )  # fmt: skip
        return judge, {"train_rollouts": len(rows), "relabelled": extra, **fit}
    if v.twotower:
        model = _twotower(data, v, rows, seed)
        return model, {"train_rollouts": len(rows), "relabelled": extra}
    models = []
    info: dict[str, Any] = {}
    for i in range(v.ensemble):
        tcfg = train_config(data, v, seed * 1000 + i)
        model, m = train_value_model(make_value_examples(rows, tcfg), tcfg, progress=False)
        models.append(model)
        info = {
            "val_pairwise_accuracy": m.get("val_pairwise_accuracy"),
            "val_mse_ratio": m.get("val_mse_ratio"),
        }
    info.update(train_rollouts=len(rows), relabelled=extra)
    ensemble = WeightedValue(models, [1 / len(models)] * len(models))
    return (models[0] if len(models) == 1 else ensemble), info


def _twotower(data: LabData, v: Variant, rows: list[RolloutData], seed: int) -> Any:
    """Heads trained on the frozen towers' features (towers shared by every variant and seed of
    this process): `ensemble` heads, their scores averaged; with select other than "last", the
    weights kept are picked on held-apart training prompts."""
    from ..value.data import split_examples
    from ..value.twotower import TwoTowerConfig, shared_towers, train_two_tower

    cfg = TwoTowerConfig(
        backbone=v.backbone,
        prompt_layer=v.prompt_layer,
        answer_layers=v.answer_layers,
        joint=v.joint,
        pool=v.pool,
        loss=v.loss,
        hidden=v.hidden,
        product=v.product,
        select=v.select,
        steps=v.steps or TwoTowerConfig.steps,
        seed=seed * 1000,
        heads=v.ensemble,
    )
    towers = shared_towers(cfg.backbone, cfg.prompt_layer, cfg.answer_layers, cfg.joint, cfg.pool)
    tcfg = train_config(data, v, seed)
    examples = make_value_examples(rows, tcfg, tokenizer=towers.tokenizer)
    fit, stop = list(range(len(examples))), []
    if cfg.select != "last":  # the stopping point is picked on a slice of the training prompts
        fit, stop, _ = split_examples(examples, tcfg)
    return train_two_tower(examples, rows, fit, cfg, stop)


def heldout_examples(data: LabData, per_prompt: int | None = None) -> tuple[list[Any], list[str]]:
    """Every held-out prefix, cut once for all variants (the run's value tokenizer, every L);
    `per_prompt`: only the first that many answers of each held-out prompt. Also returns each
    answer whole, by the examples' rollout index."""
    tcfg = data.cfg.value.train_config(seed=0, chunk_tokens=data.cfg.search.l, device="cpu")
    held: list[RolloutData] = []
    count: dict[str, int] = {}
    for r in data.held:
        if not per_prompt or count.get(r.prompt, 0) < per_prompt:
            count[r.prompt] = count.get(r.prompt, 0) + 1
            held.append(r)
    return make_value_examples(held, tcfg), [r.response for r in held]


def rank(model: Any, examples: list[Any], answers: Sequence[str] | None = None) -> dict[str, Any]:
    """Ranking metrics of `model` on the held-out prefixes; `answers`: each example's whole
    answer (by its rollout index), for models that read prefixes from one pass per answer."""
    m = rank_examples(model, examples, answers)
    m["by_position"] = {p: round(x["accuracy"], 3) for p, x in m["by_position"].items()}
    return m


async def run_lab(
    data: LabData,
    variants: Sequence[Variant],
    *,
    seeds: Sequence[int] = (0, 1),
    fractions: Sequence[tuple[float, float]] = ((1.0, 1.0),),
    grader: Grader | None = None,
    on_row: Any = None,
    held_per_prompt: int | None = None,
) -> list[dict[str, Any]]:
    """One row per (variant, prompt fraction, rollout fraction, seed)."""
    held, answers = heldout_examples(data, held_per_prompt)
    rows = []
    for v in variants:
        for pf, rf in fractions:
            for seed in seeds if v.genrm != "zero" else seeds[:1]:
                train = subsample(data.train, pf, rf, seed)
                t0 = time.perf_counter()
                model, info = await build_model(data, v, train, seed, grader)
                trained = time.perf_counter() - t0
                t1 = time.perf_counter()
                m = rank(model, held, answers)
                row = {
                    "variant": v.name,
                    "spec": {k: x for k, x in asdict(v).items() if k != "label"},
                    "prompt_fraction": pf,
                    "rollout_fraction": rf,
                    "seed": seed,
                    "train_prompts": len({r.prompt for r in train}),
                    "heldout_accuracy": m["accuracy"],
                    "heldout_kendall_tau": m["kendall_tau"],
                    "heldout_pairs": m["pairs"],
                    "heldout_by_position": m["by_position"],
                    "train_seconds": round(trained, 1),
                    "score_seconds": round(time.perf_counter() - t1, 1),
                    **info,
                }
                rows.append(row)
                if on_row is not None:
                    on_row(row)
                del model
    return rows


def summarize(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (variant, fractions): mean and spread (sample stdev) of each figure over seeds."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["variant"], r["prompt_fraction"], r["rollout_fraction"]), []).append(r)
    out = []
    for (name, pf, rf), rs in groups.items():

        def stat(key: str, rs: list[dict[str, Any]] = rs) -> dict[str, float | None]:
            xs = [r[key] for r in rs if r.get(key) is not None]
            if not xs:
                return {"mean": None, "sd": None}
            return {
                "mean": round(statistics.mean(xs), 4),
                "sd": round(statistics.stdev(xs), 4) if len(xs) > 1 else 0.0,
            }

        out.append(
            {
                "variant": name,
                "prompt_fraction": pf,
                "rollout_fraction": rf,
                "seeds": len(rs),
                "train_prompts": rs[0]["train_prompts"],
                "heldout_accuracy": stat("heldout_accuracy"),
                "heldout_kendall_tau": stat("heldout_kendall_tau"),
                "train_seconds": stat("train_seconds"),
                "heldout_pairs": rs[0]["heldout_pairs"],
            }
        )
    return out
