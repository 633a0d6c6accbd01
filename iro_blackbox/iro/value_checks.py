"""What is checked of a freshly trained V_t before it steers anything (the loop's step 3, after
training): how it ranks the held-out prompts' answers, a warning when it ranks same-prompt
prefixes barely above chance, and the gate's verdict (gate.py). Each goes into V_t's metrics.

    steers = check_value_model(m, trainer, cfg, t, model, data, held, earlier, in_use, log)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..utils import jsonable
from ..value import RolloutData
from ..value.ranking import barely_above_chance
from .config import AlignConfig

MIN_WARN_PAIRS = 50  # fewer pairs than this measure too little to warn on


def check_value_model(
    m: dict[str, Any],
    trainer: Any,
    cfg: AlignConfig,
    t: int,
    model: Any,
    data: list[RolloutData],
    held: list[RolloutData],
    earlier: Sequence[Any],
    in_use: Sequence[bool],
    log: Callable[[str], None],
) -> bool:
    """Adds to V_t's metrics `m` its held-out ranking ("heldout", on `held`: pi_{t-1}'s graded
    answers), a "warning" and the "gate" (on the validation answers of V_t's training `data`,
    against those of the `earlier` V_1..V_{t-1} `in_use`).
    Whether V_t steers: the gate's verdict (True with --no-gate or a trainer without a gate)."""
    rank = getattr(trainer, "rank", None)
    if held and rank is not None:
        # what the search needs, measured where V_t is used: same-prompt answers of held-out
        # prompts (pi_{t-1}'s graded answers there)
        m["heldout"] = jsonable(rank(model, held, t=t))
    warning = ranking_warning(t, m)
    if warning:
        m["warning"] = warning
        log(f"[yellow]warning[/yellow] {warning}")
    gate = getattr(trainer, "gate", None)
    if not cfg.value.gate or gate is None:
        return True
    steering = [i for i, u in enumerate(in_use) if u]
    betas = cfg.search.betas(t)
    m["gate"] = jsonable(
        gate(
            [earlier[i] for i in steering],
            [betas[i] for i in steering],
            model,
            betas[t - 1],
            data,
            t=t,
        )
    )
    used = bool(m["gate"]["accepted"])
    verdict = "used" if used else "[yellow]NOT used[/yellow] (pi_t = pi_{t-1})"
    log(f"gate: V_{t} {verdict}: {m['gate']['reason']}")
    return used


def gate_passed(cfg: AlignConfig, stored: dict[str, Any] | None) -> bool:
    """Whether a V_t trained before steers, from its stored metrics (a resumed run)."""
    gate = (stored or {}).get("gate") or {}
    return bool(gate.get("accepted", True)) or not cfg.value.gate


def ranking_warning(t: int, m: dict[str, Any]) -> str | None:
    """A plain warning when V_t ranks same-prompt prefixes barely better than chance, on the
    held-out prompts' answers or on its own validation split (either, with enough pairs)."""
    held = m.get("heldout") or {}
    measured = [
        (held.get("accuracy"), held.get("pairs"), "held-out prompts' answers"),
        (m.get("val_pairwise_accuracy"), m.get("val_pairs"), "validation prefixes"),
    ]
    poor = [x for x in measured if barely_above_chance(x[0]) and (x[1] or 0) >= MIN_WARN_PAIRS]
    if not poor:
        return None
    acc, pairs, where = poor[0]
    return (
        f"V_{t} ranks {where} of the same prompt "
        f"{'below' if acc < 0.5 else 'barely above'} chance (pair accuracy "
        f"{acc:.2f}, chance 0.50, over {pairs} pairs), so guided search will steer "
        "little: more or fresh prompts (--fresh-prompts), more rollouts (--rollouts), another "
        "objective (--value-loss) or a bigger backbone (--value-backbone) would help"
    )
