"""The `ray` executor: a run's searches, grading and value training spread over a Ray cluster.

    iro-bb align data.jsonl --executor ray --ray-address HEAD:6379 --db postgresql+psycopg://...

The driver (the `align` process) keeps the loop: what to do next and every metric. The work goes
to SearchWorker actors (ray_actors.py), one per CPU of the cluster (per GPU where the cluster has
GPUs and the policy is a local model): a search is cut into prompt shards, a grading step into
batches, and the value model of each iteration is trained by one of the workers (on its GPU where
it has one). Workers write to the store themselves, prompt by prompt, so the store stays the source of
truth: when a node dies, Ray restarts its workers elsewhere and retries their calls, and a retried
shard only searches the prompts that have nothing stored; finished prompts are never redone. A
shard whose worker cannot come back is given to another worker once.

Every node needs iro-bb installed and must reach the store: PostgreSQL for a real cluster (a SQLite
file only works while every node shares this machine's disk).
"""

from __future__ import annotations

import asyncio
import math
import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ProviderError
from ..providers.base import ProviderStats
from ..providers.budget import Budget, costs_something
from .base import GradeRow, Scoring, SearchJob

SHARDS_PER_WORKER = 4  # a search is cut into about this many shards per worker (progress, balance)
SHARD_ATTEMPTS = 2  # a shard is given to another worker once if its own cannot come back


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--executor ray needs Ray: pip install 'iro-bb[ray]' (the same on every node)"
        ) from None
    return ray


def connect(address: str | None) -> bool:
    """Join the cluster at `address` (or $RAY_ADDRESS, or a new one on this machine). True when
    this call started Ray (so closing should stop it)."""
    ray = _ray()
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    if address and address != "auto":
        _check_reachable(address)  # ray.init waits minutes for a cluster that is not there
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        where = address or "a new local cluster"
        raise ConfigError(
            f"--executor ray: cannot join the Ray cluster at {where}: {first} (start one with "
            "`ray start --head`, or check --ray-address / RAY_ADDRESS)"
        ) from None
    return True


def _check_reachable(address: str) -> None:
    """ConfigError unless something listens at the host:port of a Ray address."""
    import socket

    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--ray-address {address!r}: give HOST:PORT (or ray://HOST:PORT, auto)")
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    except OSError as e:
        raise ConfigError(
            f"--executor ray: no Ray cluster at {address} ({e.strerror or e}): start one with "
            "`ray start --head` there, or check --ray-address / RAY_ADDRESS"
        ) from None


class ClusterProvider:
    """What the driver knows of a local model that runs on the workers: its name, and the
    statistics they report (the driver never loads it)."""

    def __init__(self, options: Any, workers: int):
        self.name = options.provider
        self.model_name = options.model
        self.stats = ProviderStats()
        self.workers = workers

    def describe(self) -> dict[str, Any]:
        return {"provider": self.name, "model": self.model_name, "executor": "ray",
                "workers": self.workers}  # fmt: skip

    async def aclose(self) -> None:
        return None


def worker_resources(provider: str, resources: dict[str, float]) -> dict[str, float]:
    """Ray resources of one worker: a GPU each when the cluster has GPUs (the policy, if it is a
    local model, and the value models run there), else a CPU."""
    if resources.get("GPU", 0) >= 1:
        return {"num_cpus": 1, "num_gpus": 1}
    return {"num_cpus": 1}


def default_workers(provider: str, resources: dict[str, float]) -> int:
    key = "GPU" if resources.get("GPU", 0) >= 1 else "CPU"
    return max(1, int(resources.get(key, 1)))


class RayExecutor:
    name = "ray"

    def __init__(self, cfg: Any, store: Any, provider: Any = None, cancel_check: Any = None):
        ray = _ray()
        self.cfg = cfg
        self.store = store
        self.cancel_check = cancel_check
        self._started = connect(cfg.run.ray_address)
        if store.url.startswith("sqlite") and ":memory:" in store.url:
            raise ConfigError("--executor ray needs a store the workers can open, not :memory:")
        resources = ray.cluster_resources()
        self.resources = worker_resources(cfg.provider.provider, resources)
        self.n_workers = cfg.run.ray_workers or default_workers(cfg.provider.provider, resources)
        self._driver = provider
        self._workers: list[Any] = []
        self._run_id = 0
        self._keeper: Any = None
        self._blobs: dict[str, Any] = {}  # value model path -> its folder in the object store
        self.placements: list[dict[str, Any]] = []  # where each shard ran (tests, logs)

    @classmethod
    def create(
        cls, cfg: Any, store: Any, provider: Any = None, cancel_check: Any = None
    ) -> RayExecutor:
        return cls(cfg, store, provider, cancel_check)

    def driver_provider(self) -> Any:
        """An API provider is built here too (the probe, estimates and budgets happen in the
        driver); a local model only on the workers."""
        if self._driver is None:
            from ..registry import PROVIDERS

            factory = PROVIDERS.get(self.cfg.provider.provider)
            if getattr(factory, "name", "") in ("hf", "vllm"):
                self._driver = ClusterProvider(self.cfg.provider, self.n_workers)
            else:
                from ..providers import build_provider

                self._driver = build_provider(self.cfg.provider, self.store)
        return self._driver

    # -- workers ---------------------------------------------------------------------------------
    def _ensure_workers(self, run_id: int) -> list[Any]:
        self._run_id = run_id
        if self._workers:
            return self._workers
        ray = _ray()
        from .ray_actors import BudgetKeeper, SearchWorker, WorkerSpec

        driver = self.driver_provider()
        opts = self.cfg.provider
        budget = Budget(opts.max_cost, opts.max_requests, opts.max_output_tokens)
        if costs_something(driver) and budget.active:
            self._keeper = (
                ray.remote(BudgetKeeper)
                .options(num_cpus=0)
                .remote(budget, self.store.url, run_id, driver.prices)
            )
        actor = ray.remote(SearchWorker).options(
            max_restarts=-1, max_task_retries=-1, scheduling_strategy="SPREAD", **self.resources
        )
        spec = WorkerSpec.of(self.cfg)
        self._workers = [
            actor.remote(spec, self.store.url, self._keeper) for _ in range(self.n_workers)
        ]
        return self._workers

    def _model_refs(self, scoring: Scoring) -> list[tuple[str, Any]]:
        ray = _ray()
        from .ray_actors import folder_bytes

        for p in scoring.paths:
            if p not in self._blobs:
                self._blobs[p] = ray.put(folder_bytes(p))
        return [(p, self._blobs[p]) for p in scoring.paths]

    async def _spread(self, calls: list[Any], on_done: Any) -> None:
        """Run `calls` (each: worker -> ObjectRef) over the workers, at most a few in flight per
        worker; `on_done(result)` as each finishes. A call whose worker is gone for good is
        given to another worker once."""
        ray = _ray()
        workers = self._workers
        pending: dict[Any, tuple[int, int]] = {}  # ref -> (call index, attempt)
        queue = list(range(len(calls)))
        free = {i: 2 for i in range(len(workers))}  # calls in flight allowed per worker
        busy: dict[Any, int] = {}
        attempts: dict[int, int] = {}

        def submit() -> None:
            while queue:
                w = max(free, key=lambda i: free[i])  # the least busy worker (first on ties)
                if free[w] <= 0:
                    return
                c = queue.pop(0)
                free[w] -= 1
                ref = calls[c](workers[w])
                pending[ref] = (c, attempts.get(c, 0) + 1)
                busy[ref] = w

        submit()
        while pending:
            done, _ = await asyncio.to_thread(ray.wait, list(pending), num_returns=1, timeout=1.0)
            if self.cancel_check is not None and self.cancel_check():
                for ref in pending:
                    try:
                        ray.cancel(ref)
                    except Exception:  # noqa: BLE001 - already finished or not cancellable
                        pass
                from ..errors import Cancelled

                raise Cancelled("cancelled")
            for ref in done:
                c, attempt = pending.pop(ref)
                free[busy.pop(ref)] += 1
                try:
                    result = ray.get(ref)
                except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as e:
                    if attempt >= SHARD_ATTEMPTS:
                        raise ProviderError(
                            f"a ray worker failed twice on one shard: {e}"
                        ) from None
                    attempts[c] = attempt
                    queue.append(c)  # another worker takes it (Ray restarts the lost one)
                    continue
                except ray.exceptions.RayTaskError as e:  # the work itself failed: its error
                    cause = getattr(e, "cause", None)
                    if isinstance(cause, BaseException):
                        raise cause from None
                    raise ProviderError(str(e).strip().splitlines()[0]) from None
                on_done(result)
            submit()

    # -- the executor's steps --------------------------------------------------------------------
    async def search(self, job: SearchJob, todo, scoring: Scoring, grader, on_stored) -> None:
        workers = self._ensure_workers(job.run_id)
        models = self._model_refs(scoring)
        size = max(1, math.ceil(len(todo) / (len(workers) * SHARDS_PER_WORKER)))
        shards = [list(todo[i : i + size]) for i in range(0, len(todo), size)]
        stats = self.driver_provider().stats

        def on_done(result: dict[str, Any]) -> None:
            self.placements.append({"node": result["node"], "pid": result["pid"],
                                    "prompts": len(result["stored"])})  # fmt: skip
            for k, v in result["stats"].items():
                if hasattr(stats, k):
                    setattr(stats, k, getattr(stats, k) + v)
            for tokens, reward in result["stored"]:
                on_stored(tokens, reward)

        calls = [(lambda w, s=s: w.search.remote(job, s, models, scoring.betas)) for s in shards]
        await self._spread(calls, on_done)

    async def grade(self, run_id: int, grader, rows: list[GradeRow], on_graded) -> None:
        from .base import GRADE_BATCH

        self._ensure_workers(run_id)
        batches = [rows[i : i + GRADE_BATCH] for i in range(0, len(rows), GRADE_BATCH)]

        def on_done(result: dict[str, Any]) -> None:
            for n, mean in result["graded"]:
                on_graded(n, mean)

        await self._spread([(lambda w, b=b: w.grade.remote(b)) for b in batches], on_done)

    async def train(self, trainer, data, t, warm_start, warm_path, out_dir: Path):
        """V_t is trained by one worker (its CPU, or its GPU where the cluster has GPUs) with
        `trainer`, the loop's own (pickled to the worker): the workers hold the cluster's
        resources, so a separate task would wait for them. A worker lost while training is
        replaced and the training redone (nothing of it was stored)."""
        from .ray_actors import folder_bytes, unpack_folder

        self._ensure_workers(self._run_id)
        warm = folder_bytes(warm_path) if (warm_start is not None and warm_path) else None
        data = list(data)
        got: list[dict[str, Any]] = []
        await self._spread([lambda w: w.train.remote(trainer, data, t, warm)], got.append)
        unpack_folder(got[0]["blob"], out_dir)
        return trainer.load(str(out_dir)), got[0]["metrics"], got[0]["config"]

    async def aclose(self) -> None:
        ray = _ray()
        if not ray.is_initialized():
            return
        for w in self._workers:
            try:
                await asyncio.to_thread(ray.get, w.close.remote(), timeout=60)
            except Exception:  # noqa: BLE001 - a worker already gone
                pass
            ray.kill(w, no_restart=True)
        self._workers = []
        if self._keeper is not None:
            ray.kill(self._keeper, no_restart=True)
            self._keeper = None
        if self._started:
            ray.shutdown()
