"""What runs on the nodes of a Ray cluster for the `ray` executor (ray_cluster.py drives it).

- SearchWorker (an actor, restarted by Ray when its node dies): its own provider, grader and value
  models; searches a shard of prompts or grades a batch of rollouts, writing each prompt's
  candidates (each batch's grades) to the store as soon as they are done. A shard first drops the
  prompts the store already holds, so a shard retried after a lost node redoes only what was not
  finished, and a finished prompt is never searched twice. One worker also trains V_t (on its CPU
  or GPU) with the run's own value trainer (pickled to it: the one injected into AlignLoop, if
  any) and sends the saved model folder back as bytes, so no shared file system is needed.
- BudgetKeeper (an actor): the one BudgetGuard every worker's API provider asks before a request,
  so the run's budget holds across all of them.

Value models travel as the bytes of their saved folders (folder_bytes / unpack_folder), put once in
Ray's object store and loaded once per worker.
"""

from __future__ import annotations

import asyncio
import io
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..dataset import Example
from ..providers.budget import Hold
from ..providers.options import ProviderOptions
from .base import GradeRow, SearchJob, grade_rows, run_search


def folder_bytes(path: str | Path) -> bytes:
    """A saved folder (a value model) as one tar archive in memory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(str(path), arcname=".")
    return buf.getvalue()


def unpack_folder(blob: bytes, dest: str | Path) -> Path:
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r") as tar:
        tar.extractall(dest, filter="data")
    return dest


class RemoteGuard:
    """A provider's `budget` on a worker: every reserve and settle goes to the BudgetKeeper."""

    def __init__(self, keeper: Any):
        self.keeper = keeper

    def reserve(self, input_tokens: int, output_tokens: int) -> Hold:
        import ray

        return ray.get(self.keeper.reserve.remote(input_tokens, output_tokens))

    def settle(self, hold: Hold, input_tokens: int = 0, output_tokens: int = 0) -> float:
        import ray

        return ray.get(self.keeper.settle.remote(hold, input_tokens, output_tokens))

    @property
    def spent(self) -> dict[str, Any]:
        import ray

        return ray.get(self.keeper.spent.remote())


class BudgetKeeper:
    """The run's BudgetGuard, as an actor (holds are matched by their id)."""

    def __init__(self, budget: Any, db_url: str, run_id: int, prices: Any):
        from ..providers.budget import BudgetGuard
        from ..store import RunRepository, open_store

        repo = RunRepository(open_store(db_url))

        class Ledger:
            def spent(self) -> dict[str, Any]:
                return repo.spent(run_id)

            def add(self, **amounts: float) -> dict[str, Any]:
                return repo.add_spent(run_id, **amounts)

        self.guard = BudgetGuard(budget, Ledger(), prices)
        self.holds: dict[int, Hold] = {}
        self.next_id = 0

    def reserve(self, input_tokens: int, output_tokens: int) -> Hold:
        hold = self.guard.reserve(input_tokens, output_tokens)
        self.next_id += 1
        hold.id = self.next_id
        self.holds[hold.id] = hold
        return hold

    def settle(self, hold: Hold, input_tokens: int = 0, output_tokens: int = 0) -> float:
        mine = self.holds.pop(hold.id, None)
        if mine is None:
            return 0.0  # settled already (a retried call)
        return self.guard.settle(mine, input_tokens, output_tokens)

    def spent(self) -> dict[str, Any]:
        return self.guard.spent


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to know of the run, as plain data (the executor reads it off the
    run's config; nothing here knows the config's class)."""

    provider: ProviderOptions  # the policy's provider
    grader: Any  # the grader spec as the run gives it (a type name, a JSON file or a dict)
    value_precision: str = "auto"  # how value models are loaded for scoring

    @classmethod
    def of(cls, cfg: Any) -> WorkerSpec:
        """From a run's config (anything with .provider, .run.grader, .value.value_precision)."""
        return cls(cfg.provider, cfg.run.grader, cfg.value.value_precision)


class SearchWorker:
    """One worker of the cluster: searches shards and grades batches for one run."""

    def __init__(self, spec: WorkerSpec, db_url: str, keeper: Any = None):
        from ..store import RunRepository, open_store

        self.spec = spec
        self.store = open_store(db_url)
        self.repo = RunRepository(self.store)
        self.keeper = keeper
        self.loop = asyncio.new_event_loop()  # one loop for the worker's life: providers keep state
        self._provider: Any = None
        self._grader: Any = None
        self._models: dict[str, Any] = {}
        self._tmp = Path(tempfile.mkdtemp(prefix="iro-ray-worker-"))

    def whoami(self) -> dict[str, Any]:
        """Where this worker runs and what it was given (node, GPUs, process)."""
        import os

        import ray

        ctx = ray.get_runtime_context()
        return {"node": ctx.get_node_id(), "gpus": [str(g) for g in ray.get_gpu_ids()],
                "pid": os.getpid()}  # fmt: skip

    # -- lazily built parts --------------------------------------------------------------------
    def provider(self) -> Any:
        if self._provider is None:
            import ray

            from ..providers import build_provider
            from ..providers.budget import costs_something

            opts = self.spec.provider
            if ray.get_gpu_ids() and not opts.device:
                from dataclasses import replace

                opts = replace(opts, device="cuda")  # Ray set CUDA_VISIBLE_DEVICES to its GPU
            self._provider = build_provider(opts, self.store)
            if self.keeper is not None and costs_something(self._provider):
                self._provider.budget = RemoteGuard(self.keeper)
        return self._provider

    def grader(self) -> Any:
        if self._grader is None:
            from ..graders import CachedGrader, load_grader

            self._grader = CachedGrader(load_grader(self.spec.grader), self.store)
        return self._grader

    def scorer(self, models: list[tuple[str, Any]], betas: list[float]) -> Any:
        if not models:
            return None
        import ray

        from ..search import CombinedScorer
        from ..value import load_saved

        loaded = []
        for path, ref in models:
            if path not in self._models:
                blob = ray.get(ref)
                folder = unpack_folder(blob, self._tmp / f"v{len(self._models)}")
                device = "cuda" if ray.get_gpu_ids() else (self.spec.provider.device or "auto")
                self._models[path] = load_saved(  # a fine-tuned or a two-tower V_t
                    str(folder), device=device, precision=self.spec.value_precision
                )
            loaded.append(self._models[path])
        return CombinedScorer(loaded, list(betas)[: len(loaded)])

    # -- the work ------------------------------------------------------------------------------
    def search(
        self,
        job: SearchJob,
        shard: list[tuple[Example, int]],
        models: list[tuple[str, Any]],
        betas: list[float],
    ) -> dict[str, Any]:
        """Search the prompts of `shard` the store does not hold yet; each stored as it is done."""
        done = self.repo.searched(job.run_id, job.t, job.phase, job.method, job.search)
        todo = [(e, pk) for e, pk in shard if pk not in done]
        stored: list[tuple[int, float | None]] = []
        provider = self.provider()
        before = provider.stats.snapshot()
        if todo:
            scorer = self.scorer(models, betas)
            grader = self.grader()
            self.loop.run_until_complete(
                run_search(
                    self.repo,
                    job,
                    todo,
                    provider,
                    scorer,
                    grader,
                    lambda tokens, reward: stored.append((tokens, reward)),
                )  # fmt: skip
            )
        return {"stored": stored, "skipped": len(shard) - len(todo),
                "stats": _delta(before, provider.stats.snapshot()), **self.whoami()}  # fmt: skip

    def grade(self, rows: list[GradeRow]) -> dict[str, Any]:
        """Grade the rows the store has no grade for yet; the batch's grades stored together."""
        ungraded = self.repo.ungraded({r.id for r in rows})
        todo = [r for r in rows if r.id in ungraded]
        out: list[tuple[int, float | None]] = []
        if todo:
            self.loop.run_until_complete(
                grade_rows(self.repo, self.grader(), todo, lambda n, m: out.append((n, m)))
            )
        return {"graded": out, "skipped": len(rows) - len(todo), **self.whoami()}

    def train(self, trainer: Any, data: list[Any], t: int, warm: bytes | None) -> dict[str, Any]:
        """Train V_t with the run's own `trainer` (the one the loop was given, pickled here) on
        this worker's CPU or GPU (a separate task could wait forever for resources the workers
        hold); the saved folder comes back as bytes."""
        blob, metrics, config = train_value_model(trainer, data, t, warm)
        return {"blob": blob, "metrics": metrics, "config": config, **self.whoami()}

    def close(self) -> None:
        import shutil

        if self._provider is not None:
            self.loop.run_until_complete(self._provider.aclose())
        if self._grader is not None:
            self.loop.run_until_complete(self._grader.aclose())
        shutil.rmtree(self._tmp, ignore_errors=True)


def _delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {k: after[k] - before.get(k, 0) for k in after if isinstance(after[k], (int, float))}


def train_value_model(
    trainer: Any, data: list[Any], t: int, warm: bytes | None
) -> tuple[bytes, dict[str, Any], dict[str, Any]]:
    """Train V_t in this process (a Ray worker) with `trainer` (train(...) and load(path), see
    executors/base.py). A trainer with `for_worker(device)` is first asked for its worker form:
    on this worker's GPU if Ray gave it one (device "cuda", else None), without progress bars."""
    import ray

    for_worker = getattr(trainer, "for_worker", None)
    if callable(for_worker):
        trainer = for_worker("cuda" if ray.get_gpu_ids() else None)
    with tempfile.TemporaryDirectory(prefix="iro-ray-train-") as tmp:
        warm_model = trainer.load(str(unpack_folder(warm, Path(tmp) / "warm"))) if warm else None
        out = Path(tmp) / "model"
        _, metrics, train_config = trainer.train(data, t=t, warm_start=warm_model, out_dir=out)
        return folder_bytes(out), metrics, train_config
