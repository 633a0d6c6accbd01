"""The `ray` executor on a Ray cluster simulated in one process tree: a node removed in the middle
of a search (its worker restarts elsewhere, the run finishes with every rollout stored exactly
once) with the loop's own value trainer used on the workers, worker placement on (fake) GPUs, a
budget kept across workers, and a Ray address with no cluster behind it refused in one line."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _fx_pg import sql_rows

from iro_blackbox.errors import BudgetExceeded
from iro_blackbox.iro.config import AlignConfig
from iro_blackbox.iro.loop import AlignLoop
from iro_blackbox.iro.trainer import DefaultValueTrainer
from iro_blackbox.store import open_store

pytestmark = pytest.mark.slow

TOPICS = ["rain", "a queue", "a late train", "laundry", "a lost key", "burnt toast", "a missed bus",
          "snow", "a flat tyre", "cold coffee", "a long meeting", "a noisy flat", "traffic",
          "a broken umbrella"]  # fmt: skip


def data(tmp_path, n_train=12, n_eval=2):
    train, evals = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    rows = [json.dumps({"id": f"p{i}", "prompt": f"Write one sentence about {w}."}) + "\n"
            for i, w in enumerate(TOPICS)]  # fmt: skip
    train.write_text("".join(rows[:n_train]))
    evals.write_text("".join(rows[n_train : n_train + n_eval]))
    return train, evals


def config(tmp_path, **kw):
    train, evals = data(tmp_path)
    opts = dict(data=str(train), eval=str(evals), executor="ray", ray_workers=2, iterations=1,
                w=2, k=2, l=8, max_tokens=16, value_epochs=1, seed=1, out=str(tmp_path / "run"))  # fmt: skip
    return AlignConfig.from_dict({**opts, **kw})


class MarkingTrainer(DefaultValueTrainer):
    """The default trainer, leaving a file per V_t it trains: which process trained it, and
    whether it ran as the worker form (for_worker: no progress bar)."""

    def __init__(self, cfg, marks: Path):
        super().__init__(cfg, progress=True)
        self.marks = marks

    def train(self, rollouts, *, t, warm_start, out_dir):
        out = super().train(rollouts, t=t, warm_start=warm_start, out_dir=out_dir)
        (self.marks / f"v{t}.json").write_text(
            json.dumps({"pid": os.getpid(), "progress": self.progress})
        )
        return out


def test_a_node_lost_mid_search_and_every_rollout_stored_once(ray_cluster, tmp_path):
    import ray.cloudpickle

    from iro_blackbox.executors.ray_cluster import RayExecutor

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    cfg = config(tmp_path)
    db = str(tmp_path / "s.db")
    store = open_store(db)
    ex = RayExecutor.create(cfg, store)
    removed: dict = {}

    def on_progress(snap):
        # a fixed point of the run: the second prompt of the iteration-1 rollouts is stored;
        # every worker still has shards in flight (12 one-prompt shards, 2 at a time each)
        if removed or not snap["stage"].startswith("t=1 rollouts") or snap["done"] < 2:
            return
        node_id = ex.placements[-1]["node"]
        node = next(n for n in ray_cluster.workers_nodes if n.node_id == node_id)
        removed["node"] = node_id
        removed["stored"] = sql_rows(db, "SELECT count(*) FROM rollouts WHERE phase='train'")[0][0]
        ray_cluster.remove_node(node)

    marks = tmp_path / "marks"
    marks.mkdir()
    trainer = MarkingTrainer(cfg, marks)
    loop = AlignLoop(
        cfg, store, executor=ex, trainer=trainer, progress=False, on_progress=on_progress
    )
    try:
        res = asyncio.run(loop.run())
    finally:
        asyncio.run(ex.aclose())
    assert removed and removed["stored"] < 12 * 4  # the node went while the search ran
    # V_1 was trained by the trainer the loop was given, in its worker form, on a worker
    mark = json.loads((marks / "v1.json").read_text())
    assert mark["pid"] != os.getpid()
    assert mark["progress"] is False and trainer.progress is True
    assert [i["stage"] for i in res.iterations] == ["done", "done"]
    dup = "SELECT t, phase, method, example_id, search, idx, count(*) FROM rollouts "
    assert sql_rows(db, dup + "GROUP BY 1,2,3,4,5,6 HAVING count(*) > 1") == []
    counts = dict(sql_rows(db, "SELECT phase || ':' || method, count(*) FROM rollouts GROUP BY 1"))
    assert counts["train:sample"] == 12 * 4 and counts["eval:best_of_n"] == 2 * 4
    assert sql_rows(db, "SELECT count(DISTINCT example_id) FROM rollouts WHERE method='cbs'") == [
        (2,)
    ]
    # the shards that finished ran on both first workers and on the restarted one
    pids = {p["pid"] for p in ex.placements}
    assert len(pids) >= 3 and removed["node"] not in {p["node"] for p in ex.placements[-3:]}
    # every prompt was stored by exactly one shard (none searched twice to completion)
    assert sum(p["prompts"] for p in ex.placements) == 2 + 12 + 2  # base eval, rollouts, pi_1


def test_two_tower_value_models_steer_the_workers_searches(ray_cluster, tmp_path, tiny_lm_dir):
    """A two-tower V_1 (tiny random Llama towers) trained on a worker, then loaded by the search
    workers for pi_1's evaluation: they load every kind of saved value model."""
    from iro_blackbox.executors.ray_cluster import RayExecutor

    cfg = config(  # no gate: V_1 steers whatever it learned
        tmp_path,
        value_model="twotower",
        tower_backbone=str(tiny_lm_dir),
        answer_layers=1,
        gate=False,
    )
    db = str(tmp_path / "t.db")
    store = open_store(db)
    ex = RayExecutor.create(cfg, store)
    loop = AlignLoop(cfg, store, executor=ex, progress=False)
    try:
        res = asyncio.run(loop.run())
    finally:
        asyncio.run(ex.aclose())
    assert (res.out_dir / "value" / "v1" / "twotower.json").is_file()
    assert [i["stage"] for i in res.iterations] == ["done", "done"]
    rows = sql_rows(db, "SELECT count(DISTINCT example_id), count(*) - count(score), "
                        "count(DISTINCT round(score, 6)) FROM rollouts "
                        "WHERE method='cbs' AND phase='eval'")  # fmt: skip
    prompts, unscored, distinct = rows[0]
    # both held-out prompts searched, every answer scored, by V_1 (no value model scores 0.0)
    assert prompts == 2 and unscored == 0 and distinct > 1, rows


def test_workers_are_placed_on_gpus_where_the_cluster_has_them(ray_cluster, tmp_path):
    import ray

    from iro_blackbox.executors.ray_cluster import RayExecutor

    node = ray_cluster.add_node(num_cpus=2, num_gpus=2, object_store_memory=150 * 2**20)
    ray_cluster.wait_for_nodes()
    try:
        ex = RayExecutor.create(
            config(tmp_path, ray_workers=None), open_store(str(tmp_path / "g.db"))
        )
        assert ex.resources == {"num_cpus": 1, "num_gpus": 1} and ex.n_workers == 2
        info = ray.get([w.whoami.remote() for w in ex._ensure_workers(0)], timeout=300)
        assert {i["node"] for i in info} == {node.node_id}
        assert sorted(g for i in info for g in i["gpus"]) == ["0", "1"]  # one GPU each
        asyncio.run(ex.aclose())
    finally:
        ray_cluster.remove_node(node)


def test_a_budget_holds_across_workers(ray_cluster, llama_proxy, tmp_path):
    """Two workers send requests to one API; the run's --max-requests is one limit for both."""
    from iro_blackbox.executors.ray_cluster import RayExecutor

    cfg = config(tmp_path, provider="openai", base_url=llama_proxy.base_url,
                 model="smollm2-135m-instruct", max_requests=40)  # fmt: skip
    store = open_store(str(tmp_path / "b.db"))
    ex = RayExecutor.create(cfg, store)
    loop = AlignLoop(cfg, store, executor=ex, progress=False)
    try:
        with pytest.raises(BudgetExceeded, match="--max-requests 40"):
            asyncio.run(loop.run())
    finally:
        asyncio.run(ex.aclose())
    sent = llama_proxy.count()
    assert 0 < sent <= 40
    assert sql_rows(str(tmp_path / "b.db"), "SELECT status FROM runs") == [("stopped",)]


def test_a_ray_address_with_no_cluster_is_one_line(tmp_path):
    from _fx_llama import free_port

    train, evals = data(tmp_path)
    db = tmp_path / "s.db"
    r = subprocess.run(
        [sys.executable, "-m", "iro_blackbox.cli.app", "align", str(train), "--eval", str(evals),
         "--executor", "ray", "--ray-address", f"127.0.0.1:{free_port()}", "--db", str(db), "-q"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode != 0 and len(lines) == 1 and "no Ray cluster at" in lines[0], r.stderr
    assert sql_rows(str(db), "SELECT count(*) FROM runs") in ([(0,)], [])
