"""The values a deployer gives the chart on this cluster: addresses, secrets,
the image; nothing else (the checks add one value each where they test it)."""

from __future__ import annotations

from pathlib import Path

import yaml

from harness import ROOT
from harness.kube import Kube

# The stack's services (scripts/stack.sh) listen on 127.0.0.1: MariaDB,
# RabbitMQ, memcached, Keystone. Relays on the bridge's address make them
# reachable from the pods only (the bridge exists only on this machine), and
# MariaDB sees 127.0.0.1 as the client, as its grants want.
STACK_PORTS = {"mariadb": 3306, "rabbitmq": 5672, "memcached": 11211, "keystone": 5000}
DEV_PASSWORD = "dev-secret"  # scripts/stack.sh's dev stack
VERSION = next(
    line.split("==")[1] for line in (ROOT / "requirements" / "runtime.txt").read_text().split() if "sahara==" in line
)


def write_values(path: Path, kube: Kube, transport_url: str, **override: object) -> Path:
    """The values a deployer writes: where the services are, the secrets, the
    image (imported into the node, never pulled). `override`: dotted keys."""
    gw = kube.gateway
    values: dict = {
        "image": {"repository": "localhost/sahara-api", "tag": VERSION, "pullPolicy": "Never"},
        "secrets": {
            "databaseConnection": f"mysql+pymysql://sahara:{DEV_PASSWORD}@{gw}:{STACK_PORTS['mariadb']}/sahara",
            "transportUrl": transport_url,
            "keystonePassword": DEV_PASSWORD,
        },
        "keystone": {
            "authUrl": f"http://{gw}:{STACK_PORTS['keystone']}/v3",
            "memcachedServers": f"{gw}:{STACK_PORTS['memcached']}",
        },
    }
    for dotted, value in override.items():
        *parents, leaf = dotted.split("__")
        node = values
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    path.write_text(yaml.safe_dump(values))
    return path
