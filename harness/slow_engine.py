"""Fault injection on the engine side: a stand-in for sahara-engine that
answers the API's synchronous RPC after a delay.

It serves Sahara's real RPC topic (``sahara-ops``) through oslo.messaging on
the real broker, so the API's code path (RemoteOps.call) is untouched; only
the answer is slow. Calls are answered in parallel, as several engines would.

    python -m harness.slow_engine --config-file sahara.conf --delay 2

start_slow_engine() runs it for a test or the benchmark and waits until it serves.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path

import oslo_messaging as messaging
from oslo_config import cfg

from harness.procs import Proc, start

# What the engine reports; deliberately not the cluster's engine, so scale
# validation stops with a 400 right after the round trip (no Nova needed).
ENGINE_ANSWER = "slow-engine.1.0"
READY = "slow engine ready"


def start_slow_engine(conf: Path, delay: float, log: Path, timeout: float = 60) -> Proc:
    """This module as a process of its own on conf's broker and vhost, once it serves."""
    argv = [sys.executable, "-m", "harness.slow_engine", "--config-file", str(conf), "--delay", str(delay)]
    proc = start("slow-engine", argv, log, dict(os.environ))
    deadline = time.monotonic() + timeout
    while READY not in proc.log_text():
        if proc.popen.poll() is not None or time.monotonic() > deadline:
            proc.stop(timeout=5)
            raise RuntimeError(f"slow engine did not start:\n{proc.log_text()}")
        time.sleep(0.1)
    return proc


class SlowOps:
    target = messaging.Target(version="1.0")

    def __init__(self, delay: float) -> None:
        self.delay = delay

    def get_engine_type_and_version(self, ctxt: dict) -> str:
        time.sleep(self.delay)
        return ENGINE_ANSWER


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--delay", type=float, default=2.0)
    args = parser.parse_args()

    conf = cfg.ConfigOpts()
    conf(args=[], default_config_files=[args.config_file])
    messaging.set_transport_defaults("sahara")
    transport = messaging.get_rpc_transport(conf)
    target = messaging.Target(topic="sahara-ops", server="slow-engine", version="1.0")
    server = messaging.get_rpc_server(transport, target, [SlowOps(args.delay)], executor="threading")

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.start()
    print(f"{READY} (delay {args.delay} s)", flush=True)
    stop.wait()
    # oslo.messaging's stop()/wait() can hang on a dead broker, and a call
    # still sleeping in an executor thread would hold sys.exit() until the
    # harness's 10 s KILL: leave at once, as a killed engine does.
    threading.Thread(target=server.stop, daemon=True).start()
    time.sleep(0.5)
    os._exit(0)


if __name__ == "__main__":
    main()
