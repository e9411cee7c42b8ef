"""The results of a `make bench` run (its results.json) and the verdicts on
them: each target of issue 22 against the limits in the run's own plan
(bench/plan.py). docs/benchmarks.md is written from these by bench/report.py."""

from __future__ import annotations

import statistics

from bench.contenders import Contender, parse
from bench.plan import C4_PHASE, c1_fast_limit_ms, c1_ratio_limit, saved

PATHS = ("/v2/plugins", "/v2/clusters")


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def all_met(oks: list[bool]) -> bool | None:
    """A target over several pairs: None when none was measured."""
    return all(oks) if oks else None


class Results:
    def __init__(self, data: dict) -> None:
        self.d = data
        self.plan = plan = saved(data["meta"]["plan"])
        pairs = [parse(pair.replace("/", ",")) for pair in plan["pairs"]]
        self.pairs = [(o, u) for o, u in (x for x in pairs if len(x) == 2)]
        self.equal = parse(plan["equal_workers"])
        seen = list(dict.fromkeys(r["contender"] for k in ("cpu", "memory", "cold_start", "c1") for r in data[k]))
        self.contenders = parse(",".join(seen))
        self.ours = [c for c in self.contenders if c.kind == "ours"]
        self.upstream = [c for c in self.contenders if c.kind == "upstream"]

    def runs(self, name: str, path: str, close: bool, conns: int) -> list[dict]:
        return [
            r
            for r in self.d["cpu"]
            if (r["contender"], r["path"], r["close"], r["connections"]) == (name, path, close, conns)
        ]

    def cpu(self, name: str, path: str, close: bool, conns: int) -> dict | None:
        """A contender's cell: mean req/s and CPU per request over its runs, their spread
        ((max - min) / mean), the worst p99 and the errors of all runs."""
        rows = self.runs(name, path, close, conns)
        if not rows:
            return None
        rps, cpu = [r["rps"] for r in rows], [r["api_cpu_ms_per_req"] for r in rows]
        return {
            "runs": len(rows),
            "rps": statistics.mean(rps),
            "cpu": statistics.mean(cpu),
            "rps_spread": (max(rps) - min(rps)) / statistics.mean(rps) if statistics.mean(rps) else None,
            "cpu_spread": (max(cpu) - min(cpu)) / statistics.mean(cpu) if statistics.mean(cpu) else None,
            "p50_ms": statistics.median(r["p50_ms"] for r in rows),
            "p99_ms": max(r["p99_ms"] for r in rows),
            "errors": sum(r["errors"] for r in rows),
            "machine_busy": statistics.mean(r["machine_busy"] for r in rows),
            "loadavg": max(r["loadavg"] for r in rows),
        }

    def cells(self) -> list[tuple[str, bool, int]]:
        conns = sorted({r["connections"] for r in self.d["cpu"]})
        return [(path, close, c) for path in PATHS for close in (True, False) for c in conns]

    def efficiency(self, o: Contender, u: Contender) -> list[dict]:
        """Per cell: ours and upstream, the ratios, and whether each target is met."""
        out = []
        for path, close, conns in self.cells():
            a, b = self.cpu(o.name, path, close, conns), self.cpu(u.name, path, close, conns)
            if not (a and b):
                continue
            q_rps, q_cpu = ratio(a["rps"], b["rps"]), ratio(a["cpu"], b["cpu"])
            out.append(
                {
                    "path": path,
                    "close": close,
                    "conns": conns,
                    "ours": a,
                    "upstream": b,
                    "rps_ratio": q_rps,
                    "cpu_ratio": q_cpu,
                    "rps_ok": q_rps is not None and q_rps >= self.plan["rps_ratio"] and a["errors"] == 0,
                    "cpu_ok": q_cpu is not None and q_cpu <= self.plan["cpu_ratio"],
                }
            )
        return out

    def memory(self, name: str) -> dict | None:
        return next((r for r in self.d["memory"] if r["contender"] == name), None)

    def cold(self, name: str, key: str = "seconds") -> list[float]:
        """C4's cold starts: those of the C2 and C4 phase, where each contender starts alone."""
        rows = [r for r in self.d["cold_start"] if r["contender"] == name and key in r]
        c4 = [r for r in rows if r.get("phase", "").startswith(C4_PHASE)]
        return [r[key] for r in c4 or rows]

    def respawn(self, name: str) -> list[dict]:
        return [r for r in self.d["respawn"] if r["contender"] == name]

    def c1_contenders(self) -> list[Contender]:
        names = list(dict.fromkeys(r["contender"] for r in self.d["c1"]))
        return parse(",".join(names))

    def c1_point(self, name: str, n: int, key: str = "c1") -> dict | None:
        """Median and spread (min, max) of a contender's bursts of n slow requests."""
        rows = [r for r in self.d.get(key, []) if r["contender"] == name and r["slow"] == n]
        if not rows:
            return None

        def stat(k: str) -> tuple[float, float, float]:
            xs = [r[k] for r in rows]
            return statistics.median(xs), min(xs), max(xs)

        return {
            "runs": len(rows),
            "all_done": stat("all_done_s"),
            "bound": stat("bound_s"),
            "ratio": stat("ratio"),
            "p99": stat("fast_p99_ms"),
            "errors": sum(r["errors"] for r in rows),
            "load": stat("loadavg"),
            "max_used": max(r.get("max_used_connections", 0) for r in rows),
            "cores_left": stat("cores_left"),
            "ratio_cores_left": statistics.median(r["all_done_s"] / r["bound_cores_left_s"] for r in rows),
        }

    def c1_meets(self, name: str, n: int, key: str = "c1") -> bool | None:
        pt = self.c1_point(name, n, key)
        if pt is None:
            return None
        return pt["ratio"][0] <= self.ratio_limit(n) and pt["p99"][0] <= self.fast_limit_ms(n) and not pt["errors"]

    def capability(self, name: str) -> int:
        """Largest burst for which this and every smaller one meets C1's rules (0: none)."""
        best = 0
        for n in self.plan["c1_ns"]:
            if not self.c1_meets(name, n):
                break
            best = n
        return best

    def c1_memory(self, name: str) -> dict | None:
        return next((r for r in self.d.get("c1_memory", []) if r["contender"] == name), None)

    def db_budget(self) -> dict | None:
        """The chart's default pods x workers x the API ceiling, plus the engine's, against max_connections."""
        pool, chart = self.d.get("db_pool"), self.d["meta"].get("chart")
        if not pool or not chart:
            return None
        api, engine = pool["api_ceiling"], pool["conf_ceiling"]
        total = None
        if api is not None and engine is not None:
            total = chart["api_replicas"] * chart["api_workers"] * api + chart["engine_replicas"] * engine
        hpa = None if api is None or engine is None else chart["autoscaling_max_replicas"] * chart["api_workers"] * api
        limit = self.d["meta"].get("max_connections", 151)
        return {**chart, "api": api, "engine": engine, "total": total, "hpa_api": hpa, "limit": limit}

    # -- verdicts --------------------------------------------------------------------------------

    def judged(self) -> list[int]:
        """The burst sizes C1 judges, in the plan's order."""
        return [int(n) for n, _ in self.plan["c1_judged"]]

    def ratio_limit(self, n: int) -> float:
        return c1_ratio_limit(self.plan, n)

    def fast_limit_ms(self, n: int) -> float:
        return c1_fast_limit_ms(self.plan, n)

    def efficiency_cells(self) -> list[tuple[dict, Contender, Contender]]:
        """Every cell of every pair, with its pair."""
        return [(c, o, u) for o, u in self.pairs for c in self.efficiency(o, u)]

    def efficiency_ok(self) -> bool | None:
        cells = self.efficiency_cells()
        return None if not cells else all(c["rps_ok"] and c["cpu_ok"] for c, _, _ in cells)

    def c1_ours(self) -> Contender | None:
        """The first of ours on C1's curve: the one C1 is judged on."""
        return next((c for c in self.c1_contenders() if c.kind == "ours"), None)

    def c1_ok(self, name: str) -> bool | None:
        """Every judged N met; None when none was measured (one not measured fails the rest)."""
        oks = [self.c1_meets(name, n) for n in self.judged()]
        return None if all(x is None for x in oks) else all(bool(x) for x in oks)

    def db_burst(self, name: str) -> dict | None:
        return next((r for r in self.d["db"] if r["contender"] == name), None)

    def db_ok(self, burst: dict | None, budget: dict | None) -> bool:
        """No error in the burst, and the chart's ceiling within max_connections."""
        return (burst is None or burst["errors"] == 0) and (
            budget is None or (budget["total"] is not None and budget["total"] <= budget["limit"])
        )

    def equal_pairs(self) -> list[tuple[Contender, Contender]]:
        """C2 and C4: each of ours with each upstream of as many workers."""
        return [
            (o, u)
            for o in self.equal
            if o.kind == "ours"
            for u in self.equal
            if u.kind == "upstream" and u.workers == o.workers
        ]

    def c2(self) -> list[dict]:
        """PSS after the same load, per equal pair measured: ours, upstream, ratio, met."""
        rows = []
        for o, u in self.equal_pairs():
            mo, mu = self.memory(o.name), self.memory(u.name)
            if mo and mu:
                q = mo["after_load_mib"] / mu["after_load_mib"]
                rows.append(
                    {
                        "ours": o,
                        "upstream": u,
                        "ours_pss": mo,
                        "upstream_pss": mu,
                        "ratio": q,
                        "ok": q <= self.plan["c2_ratio"],
                    }
                )
        return rows

    def c4(self) -> list[dict]:
        """Cold starts, per equal pair measured: both lists, their medians, met."""
        rows = []
        for o, u in self.equal_pairs():
            co, cu = self.cold(o.name), self.cold(u.name)
            if co and cu:
                mo, mu = statistics.median(co), statistics.median(cu)
                rows.append(
                    {"ours": o, "upstream": u, "ours_s": co, "upstream_s": cu, "medians": (mo, mu), "ok": mo <= mu}
                )
        return rows
