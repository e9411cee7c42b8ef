"""Interleaved A/B of settings through the bench's own pieces: each variant
started in turn (bench.contenders.launch), warmed, then one wrk run per
connection count (bench.measure.wrk: req/s, API CPU per request, machine
busy), `rounds` times over, so drift hits every variant alike. For a quick
look between full `make bench` runs (docs/tuning.md); not a verdict.

    .venv/bin/python -m bench.ab CONNS PATH SECONDS ROUNDS NAME:CONTENDER[:K=V,...]...
    .venv/bin/python -m bench.ab 4,16 plugins 5 2 t64:ours-2 t8:ours-2:SAHARA_API_THREADS=8 up:upstream-1
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from bench import measure
from bench.contenders import launch, parse
from bench.project import on_the_stack
from harness.procs import serves, wait_for


def main(argv: list[str]) -> None:
    conns, path, seconds, rounds = [int(c) for c in argv[0].split(",")], argv[1], float(argv[2]), int(argv[3])
    variants = []
    for spec in argv[4:]:
        name, contender, *env = spec.split(":")
        variants.append((name, parse(contender)[0], dict(kv.split("=", 1) for kv in env[0].split(",")) if env else {}))
    with tempfile.TemporaryDirectory(prefix="sahara-ab-") as tmp, on_the_stack(Path(tmp), 4) as project:
        for round_ in range(1, rounds + 1):
            for name, contender, env in variants:
                api, _ = launch(contender, project.conf, Path(tmp), env)
                url = f"{api.url}/v2/{path}"
                wait_for(lambda url=url: serves(url, project.token), 90, f"{name} serving")
                measure.wrk(url, project.token, 4, 2, True, api)  # warm-up, not counted
                for c in conns:
                    r = measure.wrk(url, project.token, c, seconds, True, api)
                    print(
                        f"round {round_} {name:12} c={c:<3} {r['rps']:7.1f} req/s"
                        f"  {r['api_cpu_ms_per_req']:5.2f} ms CPU/req"
                        f"  machine busy {r['machine_busy']:.2f}  p99 {r['p99_ms']:.0f} ms  errors {r['errors']}"
                        f"  load {r['loadavg']}",
                        flush=True,
                    )
                api.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
