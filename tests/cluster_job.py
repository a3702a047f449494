"""Run a small job on a 2-node Ray cluster on this machine (used by test_runner, in a subprocess).

Prints one JSON line: the job's status and the Ray node ids its events came from.
"""

from __future__ import annotations

import json
import sys

from ray.cluster_utils import Cluster

from dj_observe.runner.config import parse_config
from dj_observe.runner.executor import run_job


def _warm_up(address: str) -> None:
    """Start a worker on every node first, so a short job is not done before one is up."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    ray.init(address=address, log_to_driver=False)

    @ray.remote(num_cpus=1)
    def where() -> str:
        return ray.get_runtime_context().get_node_id()

    pinned = [
        where.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
        )
        for node in ray.nodes()
        if node["Alive"]
    ]
    ray.get([task.remote() for task in pinned], timeout=60)


def main(work: str) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        _warm_up(cluster.address)
        config = parse_config(
            {
                "dataset_path": "demo://4000",
                "export_path": f"{work}/result.jsonl",
                "work_dir": f"{work}/jobs",
                "partition": {"size": 250},
                "process": [{"clean_links_mapper": {}}, {"text_length_filter": {"min_len": 20}}],
            }
        )
        result = run_job(config, job_id="cluster", ray_address=cluster.address)
        nodes = set()
        count = 0
        with open(result.job_dir / "events.jsonl") as handle:
            for line in handle:
                event = json.loads(line)
                count += 1
                node = (event.get("metadata") or {}).get("node_id")
                if node:
                    nodes.add(node)
        print(
            json.dumps(
                {
                    "status": result.status,
                    "nodes": sorted(nodes),
                    "events": count,
                    "job_dir": str(result.job_dir),
                }
            )
        )
    finally:
        import ray

        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
