"""docs/soak.md and docs/soak/pss.png from the results `make soak` wrote.

python -m soak.report docs/soak/results.json   # re-render without re-running
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from harness.figures import table


def plot(results: dict, path: Path) -> None:
    pss = results["pss"]
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot([s["t"] for s in pss["samples"]], [s["mib"] for s in pss["samples"]], marker=".", label="total PSS")
    for i, e in enumerate(e for e in results["events"] if e["kind"] == "kill"):
        ax.axvline(e["t"], color="tab:red", alpha=0.4, linestyle="--", label="kill -9 of a worker" if i == 0 else None)
    for i, e in enumerate(e for e in results["events"] if e["kind"] == "reload"):
        ax.axvline(e["t"], color="tab:green", alpha=0.6, label="graceful reload (HUP)" if i == 0 else None)
    top = pss["max_mib"]
    if "first_quarter_mib" in pss:
        limit = pss["first_quarter_mib"] * pss["limit_ratio"]
        ax.axhline(limit, color="gray", linestyle=":", label="limit (last-quarter median)")
        top = max(top, limit)
    ax.axvspan(0, pss["warmup_s"], color="gray", alpha=0.1, label="warm-up (not judged)")
    ax.set_xlabel("seconds into the soak")
    ax.set_ylabel("PSS of uWSGI master + workers (MiB)")
    ax.set_ylim(0, top * 1.1)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write(results: dict, out: Path, raw: bool = True) -> None:
    """soak.md, soak/pss.png and (raw) soak/results.json under `out`."""
    (out / "soak").mkdir(parents=True, exist_ok=True)
    if raw:
        (out / "soak" / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    plot(results, out / "soak" / "pss.png")
    meta, req, obj, pss, sup = (results[k] for k in ("meta", "requests", "objects", "pss", "supervision"))
    plan = meta["plan"]
    kills = [e for e in results["events"] if e["kind"] == "kill"]
    reloads = [e for e in results["events"] if e["kind"] == "reload"]
    checks = table(["check", "result"], [[c, "PASS" if ok else "**FAIL**"] for c, ok in results["checks"].items()])
    figures = table(
        ["figure", "value"],
        [
            ["requests sent (2xx)", f"{req['sent']} ({req['ok']}), {req['per_s']} req/s"],
            ["answered / lines in uWSGI's request log", f"{req['answered']} / {req['logged_by_uwsgi']}"],
            ["failed", req["failed"]],
            ["  in flight on a killed worker", req["explained_by_kills"]],
            ["  unexplained", req["unexplained"]],
            ["  during a reload", req["failed_during_reloads"]],
            ["workers killed (kill -9)", len(kills)],
            ["graceful reloads (HUP)", len(reloads)],
            ["objects created / deleted (2xx)", f"{obj['created']} / {obj['deleted']}"],
            ["creates refused with an error answer", obj["create_refused"]],
            ["creates without an answer: row absent / present", " / ".join(map(str, _pair(obj, "create-unknown")))],
            ["deletes without an answer: row absent / present", " / ".join(map(str, _pair(obj, "delete-unknown")))],
            ["rows expected / rows in MariaDB", f"{obj['rows_expected']} / {obj['rows_in_db']}"],
            ["PSS first quarter / last quarter (median)", _pss(pss)],
            ["PSS max", f"{pss['max_mib']} MiB"],
            ["largest worker RSS seen (reload-on-rss: SAHARA_API_MAX_RSS_MB)", f"{pss['worker_rss_max_mib']} MiB"],
            ["workers recycled by max-requests / reload-on-rss", sup["recycled"]],
        ],
    )
    ops = table(
        ["request", "sent", "failed", "p50 ms", "p99 ms", "max ms"],
        [[op, r["count"], r["failed"], r["p50_ms"], r["p99_ms"], r["max_ms"]] for op, r in results["ops"].items()],
    )
    events = table(
        [
            "t (s)",
            "what",
            "victim pid",
            "its requests in flight",
            "failed requests",
            "settled after (s)",
            "slowest request meanwhile (ms)",
        ],
        [
            [
                e["t"],
                e["kind"],
                e["pid"] or "",
                e["in_flight"] if e["kind"] == "kill" else "",
                e.get("failed", ""),
                e["settled_s"],
                e.get("slowest_ms", ""),
            ]
            for e in results["events"]
        ],
    )
    failures = table(
        ["request", "started (s)", "ended (s)", "outcome", "kill at (s)"],
        [[f["op"], f["start"], f["end"], f["outcome"], f["kill_t"] or "**none**"] for f in results["failures"]],
    )
    if not results["failures"]:
        failures = "none\n"
    reading = summary(results, kills, reloads)
    mismatches = "".join(f"- {m}\n" for m in obj["mismatches"]) or "none\n"
    text = f"""# Soak: chaos under mixed load

Generated by `make soak` (soak/, `SOAK_SECONDS={plan["seconds"]:g}`) at commit `{meta.get("commit", "?")}` on
{meta.get("started", "?")}, load average {" ".join(meta.get("loadavg_start", []))} at the start and
{" ".join(meta.get("loadavg_end", []))} at the end, {meta.get("cpus", "?")} CPUs. Raw results:
[soak/results.json](soak/results.json). `tests/integration/test_soak.py` runs the same code for 60 s with
the same checks in `make test`.

**Verdict: {"PASS" if results["passed"] else "FAIL"}.**

## What runs

- **The deployment**: {meta["mode"]}, started with `sahara_api_launcher.py all-in-one` as `make run` does
  (the way an operator runs it on a host), on its own RabbitMQ vhost and Keystone project (`sahara-soak`).
- **Load**: {plan["clients"]} python-saharaclient threads (v2 API, a Keystone session each, one request at a
  time, {plan["pause"]:g} s pause between requests): create, get, update, list and delete of data sources, job
  binaries and job templates (each template with its own job binary as main), plus GET /v2/plugins and the
  fake plugin's version. Names are unique (`{meta["prefix"]}-...`); a client keeps at most {plan["live"]} objects
  of a kind and deletes its oldest beyond that.
- **Chaos**: `kill -9` of a random worker (from uWSGI's stats socket) every {plan["kill_every"]:g} s, and a
  graceful reload, `supervisorctl signal HUP sahara-api`, every {plan["reload_every"]:g} s starting at
  {plan["reload_first"]:g} s (midway between two kills). A kill waits until every worker is up.
- **Memory**: total PSS (`/proc/PID/smaps_rollup`) of the uWSGI master and its workers every
  {plan["pss_every"]:g} s.

## Checks

{checks}
- A failed request is **explained** when it got no answer, was in flight when a worker was killed, and
  failed at most {plan["explain_within"]:g} s after the kill. An answered error (4xx, 5xx) is never explained.
- The **books**: every object a client created (2xx) and did not delete (2xx) has exactly its row in
  `data_sources`, `job_binaries` or `jobs` (the project's rows with the run's name prefix), nothing else
  is there, and every job template row has its main. A create or delete that got no answer (cut by a
  kill) is resolved by its unique name and counted below.
- **PSS flat**: after a {pss["warmup_s"]:g} s warm-up, the median of the last quarter of the samples is
  at most {pss["limit_ratio"]} x the median of the first quarter. Kills and reloads replace workers
  on their own; `max-requests` and `reload-on-rss` (docs/signals.md) bound a worker that lives long.
  A sample that falls inside a reload is a transient, not a trend: the old workers are exiting (the
  total rises for a moment) or the master is alone (it dips); the medians leave such outliers out.

## Figures

{reading}
{figures}
![PSS over time](soak/pss.png)

## Requests

{ops}
## Kills and reloads

"settled after": for a kill, until the master had forked the new worker; for a reload, until every
worker was a new one. During a reload the master loads the app again and new requests wait in the
listen queue: "slowest request meanwhile" is the longest one that overlapped it.

{events}
## Failed requests

{failures}
## Book mismatches

{mismatches}"""
    (out / "soak.md").write_text(text)


def summary(results: dict, kills: list[dict], reloads: list[dict]) -> str:
    """The run in a few sentences, from its figures."""
    req, obj = results["requests"], results["objects"]
    cut = sum(1 for k in kills if k["failed"])
    lines = [
        f"- {len(kills)} workers killed: {cut} of the kills cut requests ({req['explained_by_kills']} in all, each in "
        f"flight on the killed worker); the master forked the replacement within "
        f"{max((k['settled_s'] or 0) for k in kills):.3f} s every time."
        if kills
        else "- no worker was killed.",
        f"- {len(reloads)} graceful reloads, each done (every worker new) in "
        f"{min(r['settled_s'] or 0 for r in reloads):.1f}-{max(r['settled_s'] or 0 for r in reloads):.1f} s; "
        f"{req['failed_during_reloads']} requests failed during them, and the slowest one that overlapped a reload "
        f"took {max(r['slowest_ms'] for r in reloads)} ms (it waited in the listen queue)."
        if reloads
        else "- no reload ran.",
        f"- {obj['created']} objects created and {obj['deleted']} deleted with a 2xx answer; MariaDB holds "
        f"{obj['rows_in_db']} rows of the run for {obj['rows_expected']} expected"
        f"{', no mismatch' if not obj['mismatches'] else ', ' + str(len(obj['mismatches'])) + ' mismatches'}.",
    ]
    return "\n".join(lines) + "\n"


def _pair(obj: dict, state: str) -> tuple[int, int]:
    return obj["resolved"][f"{state} absent"], obj["resolved"][f"{state} present"]


def _pss(pss: dict) -> str:
    if "ratio" not in pss:
        return "not enough samples"
    return f"{pss['first_quarter_mib']} / {pss['last_quarter_mib']} MiB (x{pss['ratio']})"


if __name__ == "__main__":
    results_path = Path(sys.argv[1])
    write(json.loads(results_path.read_text()), results_path.parent.parent, raw=False)
