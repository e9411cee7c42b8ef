"""Create an Active fake-plugin cluster row through Sahara's own conductor.

Clusters normally need Nova and Heat; the scaling tests only need the row.
Its infrastructure engine is one no engine reports, so scale validation
ends with a 400 right after its synchronous RPC to the engine.

    python make_cluster.py --config-file sahara.conf --project-id ID  -> prints the id
    python make_cluster.py --config-file sahara.conf --project-id ID --delete ID...
"""

from __future__ import annotations

import argparse
import uuid

from oslo_config import cfg
from sahara import conductor, context


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--project-id", required=True)
    parser.add_argument("--delete", nargs="+", metavar="ID", help="destroy these clusters instead")
    args = parser.parse_args()
    cfg.CONF(args=[], project="sahara", default_config_files=[args.config_file])
    context.set_ctx(context.Context(tenant_id=args.project_id, is_admin=True))
    if args.delete:
        for cluster_id in args.delete:
            conductor.API.cluster_destroy(context.ctx(), cluster_id)
        return
    cluster = conductor.API.cluster_create(
        context.ctx(),
        {
            "name": f"scale-test-{uuid.uuid4().hex[:8]}",
            "plugin_name": "fake",
            "hadoop_version": "0.1",
            "tenant_id": args.project_id,
            "status": "Active",
            "sahara_info": {"infrastructure_engine": "legacy.0.0"},
            "node_groups": [{"name": "workers", "flavor_id": "42", "node_processes": ["datanode"], "count": 1}],
        },
    )
    print(cluster.id)


if __name__ == "__main__":
    main()
