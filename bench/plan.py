"""What a `make bench` run does and how it judges, in one place: `Plan`. The run
saves its plan in results.json ("plan" in "meta"), and docs/benchmarks.md is
rendered from that copy (bench/report.py), so re-rendering an old run gives its
own text; a field an older results.json lacks takes its default here (`saved`)."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields, replace

# The bench's phase whose cold starts C4 counts (each contender starts alone there).
C4_PHASE = "C2 and C4"


@dataclass(frozen=True)
class Plan:
    pairs: tuple[str, ...]  # efficiency: "ours-N/upstream-M", equal serving processes
    clusters: int  # clusters in the benchmark project (GET /v2/clusters lists them)
    seconds: float  # per wrk run
    concurrency: tuple[int, ...]  # wrk connections, both paths, close and keep-alive
    repeats: int  # runs per contender and cell, in ABBA order: their difference is the spread
    equal_workers: str  # C2 and C4: the same load, then cold starts, at equal workers
    cold_starts: int  # per contender, interleaved; C4 takes the median
    kills: int  # kill -9 of a worker, per contender (respawn)
    c1_ns: tuple[int, ...]  # C1's curve: concurrent slow requests
    c1_runs: int  # each point is the median of this many bursts
    c1_delay: float
    fast_interval: float
    c1_contenders: str
    db_burst: int  # concurrent GET /v2/clusters after each C1 contender's curve
    profile_runs: int  # requests per path in the in-process profile
    # -- the same in every plan: limits, samplings and the targets judged ------------------
    quiet_load: float = 1.0  # load average below which the machine counts as quiet
    wedge_s: float = 30.0  # a contender that answers nothing at all for this long is wedged
    start_limit_s: float = 60.0  # ... or that gives no first 200 this long after its start
    check_tries: int = 2  # ... or, after a wrk run with no right answer, not this many plain GETs
    check_timeout_s: float = 10.0
    cold_start_poll_s: float = 0.01  # how often a start polls for its first 200
    idle_settle_s: float = 1.0  # idle PSS this long after the first 200
    equal_load_connections: int = 16  # C2's load: wrk connections, both paths, both client modes
    respawn_rate: float = 20.0  # req/s while a worker is killed
    respawn_settle_s: float = 1.0  # requests count from this long before the kill to this long after
    db_sample_s: float = 0.05  # how often the DB burst counts the contender's own DB connections
    c1_request_timeout_s: float = 60.0  # each request of a burst
    c1_give_up: float = 2.0  # a C1 curve stops once a median burst takes this many times its bound
    c1_hopeless: float = 3.0  # and a burst that took this many times it is not repeated
    # Targets (issue 22). Efficiency: ours / upstream at equal serving processes, every cell.
    rps_ratio: float = 1.0  # req/s at least this many times upstream's, and no errors
    cpu_ratio: float = 1.05  # API CPU per request at most this many times upstream's
    # C1: all slow requests done within this many times the physical bound, per judged N.
    c1_judged: tuple[tuple[int, float], ...] = ((16, 1.2), (64, 1.2), (128, 1.3), (256, 1.3))
    c1_fast_small_n: int = 16  # fast GET p99 at most c1_fast_small_ms up to this N,
    c1_fast_small_ms: float = 50.0
    c1_fast_ms: float = 100.0  # and at most this above it
    c2_ratio: float = 1.0  # PSS after the same load, ours / upstream at equal workers


FULL = Plan(
    pairs=("ours-2/upstream-1", "ours-4/upstream-3"),
    clusters=4,
    seconds=5,
    concurrency=(1, 4, 16, 64),
    repeats=2,
    equal_workers="ours-2,upstream-2,ours-4,upstream-4",
    cold_starts=3,
    kills=3,
    c1_ns=(16, 32, 64, 128, 256),
    c1_runs=3,
    c1_delay=2.0,
    fast_interval=0.05,
    # Ours as shipped; upstream at equal serving processes, and at 4 workers (it wedged there once).
    c1_contenders="ours-2,upstream-1,upstream-4",
    db_burst=256,
    profile_runs=200,
)
# The harness check for `make test`: one small pair, one burst size, short runs.
QUICK = replace(
    FULL,
    pairs=("ours-2/upstream-1",),
    seconds=2,
    concurrency=(8,),
    equal_workers="ours-2,upstream-2",
    cold_starts=2,
    kills=1,
    c1_ns=(16,),
    c1_runs=1,
    c1_contenders="ours-2",
    db_burst=64,
    profile_runs=30,
)


def saved(plan: dict) -> dict:
    """A results.json's plan, with the default of every field it predates."""
    defaults = {f.name: f.default for f in fields(Plan) if f.default is not MISSING}
    return {**defaults, **plan}


def c1_ratio_limit(plan: dict, n: int) -> float:
    """C1's limit on all done / bound at N: that of N, else of the next judged N above, else of the last."""
    judged = sorted((int(k), v) for k, v in plan["c1_judged"])
    return next((v for k, v in judged if k >= n), judged[-1][1])


def c1_fast_limit_ms(plan: dict, n: int) -> float:
    """C1's fast GET p99 limit at N."""
    return plan["c1_fast_small_ms"] if n <= plan["c1_fast_small_n"] else plan["c1_fast_ms"]
