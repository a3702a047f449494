"""Run a small job on a 2-node Ray cluster on this machine (used by test_runner, in a subprocess).

Prints one JSON line: the job's status and the Ray node ids its events came from.
"""

from __future__ import annotations

import json
import sys

from ray.cluster_utils import Cluster

from dj_observe.runner.config import parse_config
from dj_observe.runner.executor import run_job


def main(work: str) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
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
