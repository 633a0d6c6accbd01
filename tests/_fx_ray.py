"""A Ray cluster simulated in one process tree (ray.cluster_utils.Cluster): a head that runs
nothing and three one-CPU nodes, so a worker lost with a removed node has somewhere to restart.
Started once per test module that asks for it; RAY_AUTH_MODE=disabled; never `ray stop` (it kills
every Ray process on the machine). Without Ray installed the tests that need it fail with the
command that installs it, never skip."""

from __future__ import annotations

import os

import pytest
from _fx_llama import require_module

STORE_MB = 150 * 2**20


@pytest.fixture(scope="module")
def ray_cluster():
    os.environ["RAY_AUTH_MODE"] = "disabled"
    require_module("ray", "Ray (pip install 'iro-bb[ray]')")
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": STORE_MB}
    )
    nodes = [cluster.add_node(num_cpus=1, object_store_memory=STORE_MB) for _ in range(3)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    cluster.workers_nodes = nodes  # type: ignore[attr-defined]
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


__all__ = ["ray_cluster"]
