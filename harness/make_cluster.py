"""Create an Active fake-plugin cluster row through Sahara's own conductor.

Clusters normally need Nova and Heat; the scaling tests only need the row.
Its infrastructure engine is one no engine reports, so scale validation
ends with a 400 right after its synchronous RPC to the engine.

    python -m harness.make_cluster --config-file sahara.conf --project-id ID  -> prints the id
    python -m harness.make_cluster --config-file sahara.conf --project-id ID --delete ID...
    ... --at-least N   only create clusters until the project has N (the benchmark's fixed data set)

make_clusters() and delete_clusters() run it for a test or the benchmark: in a
process of its own, so the caller never loads Sahara and its global config.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import uuid
from pathlib import Path

from harness import ROOT


def _run(conf: Path, project_id: str, *args: str) -> str:
    argv = [sys.executable, "-m", "harness.make_cluster", "--config-file", str(conf), "--project-id", project_id]
    return subprocess.run([*argv, *args], check=True, capture_output=True, text=True, timeout=120, cwd=ROOT).stdout


def make_clusters(conf: Path, project_id: str, at_least: int = 0) -> str:
    """A new cluster row in the project (with at_least: only until it has that many);
    returns the id of the last one."""
    return _run(conf, project_id, *(["--at-least", str(at_least)] if at_least else [])).strip().splitlines()[-1]


def delete_clusters(conf: Path, project_id: str, ids: list[str]) -> None:
    _run(conf, project_id, "--delete", *ids)


def main() -> None:
    from oslo_config import cfg  # here: importing this module must not load Sahara
    from sahara import conductor, context

    parser = argparse.ArgumentParser()
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--project-id", required=True)
    parser.add_argument("--delete", nargs="+", metavar="ID", help="destroy these clusters instead")
    parser.add_argument("--at-least", type=int, default=0)
    args = parser.parse_args()
    cfg.CONF(args=[], project="sahara", default_config_files=[args.config_file])
    context.set_ctx(context.Context(tenant_id=args.project_id, is_admin=True))
    if args.delete:
        for cluster_id in args.delete:
            conductor.API.cluster_destroy(context.ctx(), cluster_id)
        return
    mine = conductor.API.cluster_get_all(context.ctx(), tenant_id=args.project_id) if args.at_least else []
    existing = [c.id for c in mine]
    missing = args.at_least - len(existing) if args.at_least else 1
    for _ in range(max(missing, 0)):
        existing.append(make_one(args.project_id))
    print(existing[-1])


def make_one(project_id: str) -> str:
    from sahara import conductor, context

    cluster = conductor.API.cluster_create(
        context.ctx(),
        {
            "name": f"scale-test-{uuid.uuid4().hex[:8]}",
            "plugin_name": "fake",
            "hadoop_version": "0.1",
            "tenant_id": project_id,
            "status": "Active",
            "sahara_info": {"infrastructure_engine": "legacy.0.0"},
            "node_groups": [{"name": "workers", "flavor_id": "42", "node_processes": ["datanode"], "count": 1}],
        },
    )
    return cluster.id


if __name__ == "__main__":
    main()
