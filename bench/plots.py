"""The plots of docs/benchmarks.md (docs/bench/*.png), from a run's results."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bench.results import PATHS, Results  # noqa: E402
from bench.tables import mode  # noqa: E402

# Each plot's file under docs/bench/, by the name benchmarks.md.tmpl uses.
PNG = {
    "efficiency": "efficiency.png",
    "pss": "pss.png",
    "c1_curve": "c1_curve.png",
    "pss_vs_capability": "pss_vs_capability.png",
}


def save(fig: plt.Figure, out: Path, name: str) -> None:
    fig.tight_layout()
    fig.savefig(out / PNG[name], dpi=90)
    plt.close(fig)


def log2_x(ax: plt.Axes, ticks: list[int], label: str) -> None:
    """A log2 x axis with a tick at each of `ticks`."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [str(n) for n in ticks])
    ax.set_xlabel(label)


def legend(ax: plt.Axes, size: int) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=size)


def draw(res: Results, out: Path) -> None:
    """Every plot, into `out`."""
    plots(res, out)
    c1_plots(res, out)


def plots(res: Results, out: Path) -> None:
    colors = {"ours": "tab:blue", "upstream": "tab:orange"}

    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    conns = sorted({r["connections"] for r in res.d["cpu"]})
    shades = {c.name: 1.0 if i == 0 else 0.5 for i, pair in enumerate(res.pairs) for c in pair}
    for row, path in zip(axes, PATHS, strict=True):
        for ax, key, label in zip(row, ("rps", "cpu"), ("req/s", "API CPU ms per request"), strict=True):
            for o, u in res.pairs:
                for c in (o, u):
                    for close, style in ((True, "-o"), (False, "--s")):
                        pts = [(n, res.cpu(c.name, path, close, n)) for n in conns]
                        pts = [(n, r) for n, r in pts if r]
                        if pts:
                            ax.plot(
                                [n for n, _ in pts],
                                [r[key] for _, r in pts],
                                style,
                                color=colors[c.kind],
                                alpha=shades.get(c.name, 1.0),
                                label=f"{c.name} {mode(close)}",
                            )
            log2_x(ax, conns, "concurrent connections (wrk -c)")
            ax.set_ylabel(label)
            ax.set_ylim(bottom=0)
            ax.set_title(f"GET {path}")
            ax.grid(alpha=0.3)
            legend(ax, 6)
    save(fig, out, "efficiency")

    fig, ax = plt.subplots(figsize=(8, 4))
    mem = [(c, res.memory(c.name)) for c in res.equal]
    mem = [(c, m) for c, m in mem if m]
    xs = range(len(mem))
    ax.bar([x - 0.2 for x in xs], [m["idle_mib"] for _, m in mem], 0.4, label="idle", color="tab:gray")
    for kind in ("upstream", "ours"):
        mine = [(x, m) for x, (c, m) in zip(xs, mem, strict=True) if c.kind == kind]
        ax.bar(
            [x + 0.2 for x, _ in mine],
            [m["after_load_mib"] for _, m in mine],
            0.4,
            label=f"after load ({kind})",
            color=colors[kind],
        )
    ax.set_xticks(list(xs), [c.name for c, _ in mem])
    ax.set_ylabel("total PSS of all API processes (MiB)")
    if mem:
        ax.legend()
    ax.grid(alpha=0.3, axis="y")
    save(fig, out, "pss")


def c1_plots(res: Results, out: Path) -> None:
    ns = res.plan["c1_ns"]
    colors = {"ours": "tab:blue", "upstream": "tab:orange"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for c in res.c1_contenders():
        pts = [(n, res.c1_point(c.name, n)) for n in ns]
        pts = [(n, pt) for n, pt in pts if pt]
        if not pts:
            continue
        style = "-o" if c.kind == "ours" else "--s"
        alpha = 1.0 if c.kind == "ours" else 0.6
        for ax, k in zip(axes, ("ratio", "p99"), strict=True):
            med = [pt[k][0] for _, pt in pts]
            err = [
                [m - pt[k][1] for m, (_, pt) in zip(med, pts, strict=True)],
                [pt[k][2] - m for m, (_, pt) in zip(med, pts, strict=True)],
            ]
            ax.errorbar(
                [n for n, _ in pts],
                med,
                yerr=err,
                fmt=style,
                color=colors[c.kind],
                alpha=alpha,
                label=c.name,
                capsize=3,
            )
    judged, delay = sorted(res.judged()), res.plan["c1_delay"]
    axes[0].plot(judged, [res.ratio_limit(n) for n in judged], "k:", lw=1, label="C1 limits")
    axes[0].set_ylabel("all slow done / physical bound")
    axes[0].set_title(f"all-done time against {delay:g} s + CPU-s / cores")
    axes[1].plot(judged, [res.fast_limit_ms(n) for n in judged], "k:", lw=1, label="C1 limits")
    axes[1].set_yscale("log")
    axes[1].set_ylabel("fast GET p99 (ms)")
    axes[1].set_title("fast GETs during the burst")
    for ax in axes:
        log2_x(ax, list(ns), f"concurrent slow requests ({delay:g} s RPC)")
        ax.grid(alpha=0.3, which="both")
        legend(ax, 7)
    save(fig, out, "c1_curve")

    fig, ax = plt.subplots(figsize=(7, 4))
    for c in res.c1_contenders():
        m = res.c1_memory(c.name)
        if m:
            ax.scatter(res.capability(c.name), m["peak_mib"], color=colors[c.kind], s=40)
            ax.annotate(
                c.name, (res.capability(c.name), m["peak_mib"]), fontsize=8, xytext=(4, 4), textcoords="offset points"
            )
    ax.set_xlabel("largest burst meeting C1 (0: none)")
    ax.set_ylabel("total PSS after the bursts (MiB)")
    ax.set_title("memory against capability")
    ax.grid(alpha=0.3)
    save(fig, out, "pss_vs_capability")
