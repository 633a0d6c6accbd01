"""A run's bookkeeping, apart from its IRO steps: its row in the store and its folder.

    book = RunBook(cfg, store)
    book.open(train, evals)      # create the run, or check the stored one has the same options
    book.pk[example.id]          # the example's row in the store; book.items[row]: its record
    book.remaining(t, "train", "sample", 0, examples)    # those with no stored rollouts yet
    result = book.finish(estimate)                       # summary, report.html, align()'s answer

The run's spending lives in its row too (RunLedger: what budgets count, over every attempt).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..dataset import Example
from ..errors import BudgetExceeded, Cancelled, ConfigError, InputError
from ..params import check_positive_int
from ..store import RunRepository, Store, default_home
from ..utils import jsonable
from . import metrics
from .config import AlignConfig
from .estimate import Estimate
from .report import write_report
from .resume import resume_config, value_options

BASE_T = metrics.BASE_T


@dataclass
class RunResult:
    """What align() returns: where the run lives and its per-iteration metrics (a dry run:
    only the estimate, id 0)."""

    name: str
    id: int
    out_dir: Path
    metrics: dict[str, Any]
    iterations: list[dict[str, Any]] = field(default_factory=list)
    report: Path | None = None
    estimate: Estimate | None = None
    spent: dict[str, Any] = field(default_factory=dict)


def resumed_config(repo: RunRepository, run: str, overrides: dict[str, Any]) -> AlignConfig:
    """A stored run's config; only options that do not change results may be overridden, and
    its iterations may grow (`grown_iterations`: the run goes on to the new T)."""
    row = repo.find(run)
    untrained = not repo.value_models(row.id)
    stored = {**row.config, "run_name": row.name}
    if overrides.get("iterations") is not None:
        stored["iterations"] = grown_iterations(repo, row, overrides["iterations"], run)
    return resume_config(stored, overrides, run, untrained)


def grown_iterations(repo: RunRepository, row: Any, given: Any, run: str) -> int:
    """The T a resumed run goes on to: the run's own or more (iterations 1..T_old stay as they
    are; the new ones run as in a fresh run of T iterations). Fewer is a ConfigError, and so is
    more for a --fresh-prompts run with an unfinished iteration (its prompt slice depends on T)."""
    old = AlignConfig.from_dict(dict(row.config))
    new = check_positive_int("iterations", given)
    if new < old.run.iterations:
        raise ConfigError(
            f"--resume {run}: --iterations {new} is fewer than the run's {old.run.iterations} "
            "(results may already exist for the later iterations); resume it with "
            f"--iterations {old.run.iterations} or more, or start a new run"
        )
    if new > old.run.iterations and old.run.fresh_prompts:
        started = sorted(repo.sampled_iterations(row.id) - done_iterations(repo, row.id))
        if started:
            raise ConfigError(
                f"--resume {run}: iteration {started[0]} of this --fresh-prompts run is "
                f"unfinished and its prompts depend on --iterations; finish it with --iterations "
                f"{old.run.iterations} first, then resume with --iterations {new}"
            )
    return new


def done_iterations(repo: RunRepository, run_id: int) -> set[int]:
    """The run's iterations whose stage is done (t = 0: the base policy's evaluation)."""
    return {i["t"] for i in repo.iterations(run_id) if i["stage"] == "done"}


class RunLedger:
    """A run's spending in the store (budgets count every attempt's)."""

    def __init__(self, repo: RunRepository, run_id: int):
        self.repo, self.run_id = repo, run_id

    def spent(self) -> dict[str, Any]:
        return self.repo.spent(self.run_id)

    def add(self, **amounts: float) -> dict[str, Any]:
        return self.repo.add_spent(self.run_id, **amounts)


class RunBook:
    """The record of one run: its name, folder, row id and examples (see the module docstring)."""

    def __init__(self, cfg: AlignConfig, store: Store, *, resumed: bool = False):
        self.cfg = cfg
        self.resumed = resumed  # --resume: the stored run's iterations may grow to cfg's
        self.store = store
        self.repo = RunRepository(store)
        self.name = cfg.run.run_name or cfg.default_run_name()
        self.out_dir = Path(cfg.run.out) if cfg.run.out else default_home() / self.name
        self.run_id = 0  # 0: not opened (or looked up) yet, or discarded
        self.pk: dict[str, int] = {}  # example id -> its row id in the store
        self.items: dict[int, dict[str, Any]] = {}  # example row id -> its record (for graders)

    # -- before and while opening ---------------------------------------------------------------
    def stored_spent(self) -> dict[str, Any]:
        """What earlier attempts of a run of this name spent ({} when there is none)."""
        run = self.repo.get(self.name)
        return dict(run.spent or {}) if run else {}

    def exists(self) -> bool:
        return self.repo.get(self.name) is not None

    def look_up(self) -> None:
        """The stored run's id and examples, if there is one, without opening it (a dry run)."""
        run = self.repo.get(self.name)
        if run is not None:
            self.run_id = run.id
            self.pk = {e.ex_id: e.pk for e in self.repo.examples(run.id)}

    def open(self, train: list[Example], evals: list[Example]) -> None:
        """Create the run, or check that the stored one has the same options and data."""
        cfg = self.cfg
        now = [(e.id, "train", e.data) for e in train] + [(e.id, "eval", e.data) for e in evals]
        run = self.repo.get(self.name)
        if run is None:
            run = self.repo.create(self.name, cfg.to_dict(), str(self.out_dir), now)
        else:
            config, was = dict(run.config), AlignConfig.from_dict(run.config)
            diff = was.differences(cfg)
            if self.resumed and "iterations" in diff and cfg.run.iterations > was.run.iterations:
                # more iterations: those stored stay as they are, the new ones follow them
                config["iterations"] = cfg.run.iterations
                diff.remove("iterations")
            if diff and not self.repo.value_models(run.id) and set(diff) <= value_options():
                # no value model trained yet: nothing computed so far depends on these options
                config = cfg.to_dict()
                diff = []
            if diff:
                raise ConfigError(
                    f"run '{self.name}' already exists with different options ({', '.join(diff)}): "
                    "choose another --run-name, or --resume it with its own options"
                )
            stored = {e.ex_id: e.data for e in self.repo.examples(run.id)}
            if stored != {ex_id: data for ex_id, _, data in now}:
                raise InputError(
                    f"run '{self.name}': the data files changed since the run started "
                    "(examples differ); start a new run (--run-name)"
                )
            if config != run.config:
                self.repo.set_config(run.id, config)
            if run.out_dir:
                self.out_dir = Path(run.out_dir)
        self.run_id = run.id
        self.repo.set_status(run.id, "running")
        for e in self.repo.examples(run.id):
            self.pk[e.ex_id] = e.pk
            self.items[e.pk] = e.data
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / "config.json").write_text(
            json.dumps({"run": self.name, **cfg.to_dict()}, indent=2)
        )

    def discard_new(self) -> None:
        """Remove a run this attempt created, when it was refused before doing anything."""
        self.repo.delete(self.run_id)
        self.run_id = 0
        cfg_file = self.out_dir / "config.json"
        cfg_file.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.out_dir.rmdir()  # only if nothing else is in it

    def start(
        self, provider: Any, train: list[Example], evals: list[Example], log: Callable[[str], None]
    ) -> None:
        """Record what the provider is and print the run's first line."""
        cfg = self.cfg
        try:
            info = provider.describe()
        except Exception as e:  # describe must never stop a run
            info = {"error": str(e)}
        self.repo.set_provider_info(self.run_id, jsonable(info))
        log(
            f"run [bold]{self.name}[/bold]: {len(train)} training / {len(evals)} held-out "
            f"prompts, {cfg.run.iterations} iterations, W={cfg.search.w} K={cfg.search.k} "
            f"L={cfg.search.l}, model {cfg.provider.model} ({cfg.provider.provider}), "
            f"store {self.store.display_url}"
        )

    # -- while it runs --------------------------------------------------------------------------
    def ledger(self) -> RunLedger:
        return RunLedger(self.repo, self.run_id)

    def spent(self) -> dict[str, Any]:
        """What the run has spent so far, over every attempt ({} before it exists)."""
        return self.repo.spent(self.run_id) if self.run_id else {}

    def remaining(
        self, t: int, phase: str, method: str, search: int, examples: list[Example]
    ) -> list[Example]:
        """The examples with no stored rollouts of this search yet (all of them before the run
        exists)."""
        if not self.run_id:
            return examples
        done = self.repo.searched(self.run_id, t, phase, method, search)
        return [e for e in examples if self.pk[e.id] not in done]

    def done_iterations(self) -> set[int]:
        """The iterations already done (t = 0: the base policy's evaluation); none before the
        run exists."""
        return done_iterations(self.repo, self.run_id) if self.run_id else set()

    def grouped(self, t: int, phase: str, method: str) -> dict[int, list[Any]]:
        """The stored rollouts of one search, by example row."""
        out: dict[int, list[Any]] = {}
        for r in self.repo.rollouts(self.run_id, t, phase, method):
            out.setdefault(r.example_id, []).append(r)
        return out

    def iteration_line(self, t: int, m: dict[str, Any]) -> str:
        """Iteration t's line of the run's output, beside the base policy's figures."""
        base = self.repo.iteration(self.run_id, BASE_T).metrics
        return (
            f"t={t}: held-out reward {m['eval_mean_reward']:+.3f} "
            f"(grader pick {m['eval_grader_reward']:+.3f}; base {base.get('eval_mean_reward', 0):+.3f}, "
            f"best-of-{base.get('bon_n')} {base.get('bon_mean_reward', 0):+.3f}), "
            f"win rate vs base {m['win_rate_vs_base']:.2f}"
        )

    # -- at the end -----------------------------------------------------------------------------
    def stop(self, error: BaseException) -> None:
        """Record why the run stopped: cancelled, stopped at its budget, or failed."""
        status = "cancelled" if isinstance(error, Cancelled) else "failed"
        if isinstance(error, BudgetExceeded):
            status = "stopped"
        self.repo.set_status(self.run_id, status, str(error)[:2000] or type(error).__name__)

    def finish(self, estimate: Estimate | None) -> RunResult:
        """The run's summary stored, its report written, and what align() returns."""
        iterations = self.repo.iterations(self.run_id)
        summary = metrics.summary(iterations)
        self.repo.finish(self.run_id, summary)
        spent = self.repo.spent(self.run_id)
        report = write_report(
            self.name, self.cfg.to_dict(), iterations, summary, self.out_dir, spent
        )
        return RunResult(
            self.name, self.run_id, self.out_dir, summary, iterations, report, estimate, spent
        )
