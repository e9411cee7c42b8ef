"""The soak itself, shared by `make soak` (soak/__main__.py) and
tests/integration/test_soak.py: the all-in-one deployment (supervisord running
the uWSGI API and sahara-engine, as `make run` and an operator's host run it),
a few saharaclient threads doing CRUD of data sources, job binaries and job
templates plus GETs, a chaos loop (kill -9 of a random worker, graceful
reload with `supervisorctl signal HUP sahara-api`), PSS samples, and at the
end the books: every failed request explained by a kill, the rows in MariaDB
equal to what the clients created minus what they deleted."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil
import pymysql
from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import session as ks_session
from saharaclient.api.base import APIException
from saharaclient.api.client import ClientV2

from harness import ROOT
from harness.deploy import AllInOne, ours_env, start_ours
from harness.figures import percentile, pss_mib
from harness.procs import REQUEST_LOG, busy_threads, uwsgi_master, wait_for

PROJECT = "sahara-soak"  # its own Keystone project: the rows to count are all ours
TABLES = {"data_source": "data_sources", "job_binary": "job_binaries", "job_template": "jobs"}
JB_EXTRA = {"accesskey": "AK", "secretkey": "SK", "endpoint": "http://127.0.0.1:9000"}


@dataclass(frozen=True)
class Plan:
    seconds: float = 600
    workers: int = 4  # SAHARA_API_WORKERS of the deployment
    clients: int = 4  # client threads, each one request at a time
    pause: float = 0.2  # between a client's requests: ~20 req/s in all, a fraction of 2 cores
    live: int = 8  # objects of a kind a client keeps; it deletes its oldest beyond that
    kill_every: float = 20  # kill -9 of a random worker at 20, 40, 60 ... s
    reload_every: float = 60  # graceful reload at 30, 90, 150 ... s: midway between two kills
    reload_first: float = 30
    pss_every: float = 5
    warmup: float = 60  # PSS samples before this are not judged (workers still warming up)
    pss_growth: float = 1.2  # flat: last-quarter median PSS <= this x first-quarter median
    explain_within: float = 5  # a failure is a kill's if it ended at most this long after the kill
    timeout: float = 60  # client timeout per request


@dataclass
class Call:
    op: str
    client: int
    start: float
    end: float
    outcome: str  # "ok", "http 500", "no response (ConnectFailure)"

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    @property
    def answered(self) -> bool:
        """By the API. A 502 is the nginx front's own answer when the worker
        serving the request died (uWSGI logged nothing): not the API's."""
        return not self.outcome.startswith("no response") and self.outcome != "http 502"


@dataclass
class Obj:
    """One object a client made. state: creating, live, deleted, create-failed
    (answered with an error), create-unknown / delete-unknown (no answer)."""

    kind: str
    name: str
    id: str = ""
    state: str = "creating"
    pinned: bool = False  # a job binary that is a live job template's main
    main: Obj | None = None  # a job template's main job binary


@dataclass
class Event:
    kind: str  # "kill" or "reload"
    t: float  # monotonic
    pid: int = 0  # the killed worker
    in_flight: int = 0  # requests the killed worker was serving (uWSGI stats)
    settled_s: float | None = None  # kill: new worker forked; reload: every worker replaced


def db_connect(conf: Path) -> pymysql.Connection:
    """Sahara's MariaDB, from the [database] connection of `conf`."""
    from oslo_config import cfg
    from sqlalchemy.engine import make_url

    opts = cfg.ConfigOpts()
    opts.register_opt(cfg.StrOpt("connection"), group="database")
    opts(args=[], default_config_files=[str(conf)])
    url = make_url(opts.database.connection)
    return pymysql.connect(
        host=url.host, user=url.username, password=url.password, database=url.database, autocommit=True
    )


def manager(sahara: ClientV2, kind: str):  # noqa: ANN201 (saharaclient's managers share no base type)
    return {"data_source": sahara.data_sources, "job_binary": sahara.job_binaries}.get(kind, sahara.job_templates)


class Soaked(AllInOne):
    """The all-in-one deployment under soak, and its uWSGI stats."""

    def workers(self) -> dict[int, int]:
        """{pid: requests in flight} of the serving workers; {} while unknown (e.g. reloading)."""
        try:
            stats = self.stats()
        except (OSError, ValueError):
            return {}
        return {
            w["pid"]: busy_threads([w])
            for w in stats["workers"]
            if w["pid"] > 0 and w.get("status") in ("idle", "busy")
        }


def start_all_in_one(conf: Path, workdir: Path, workers: int) -> Soaked:
    env = ours_env(conf, workdir, SAHARA_API_WORKERS=workers)
    api = start_ours("all-in-one", env, workdir, "all-in-one", cls=Soaked)
    try:
        api.wait_ready(timeout=120)
        wait_for(
            lambda: api.states().get("sahara-engine") == "RUNNING" and len(api.workers()) == workers,
            60,
            lambda: f"all-in-one fully up:\n{api.ctl('status')}\n{api.log_text()[-3000:]}",
            every=0.2,
        )
    except Exception:
        api.stop(timeout=120)
        raise
    return api


class Soak:
    def __init__(
        self, api: Soaked, make_session: Callable[[], ks_session.Session], plan: Plan, say: Callable[[str], None]
    ) -> None:
        self.api, self.make_session, self.plan, self.say = api, make_session, plan, say
        self.prefix = f"soak-{uuid.uuid4().hex[:6]}"
        self.calls: list[Call] = []
        self.objs: list[Obj] = []
        self.events: list[Event] = []
        self.pss: list[dict] = []
        self.stop = threading.Event()
        self.master = uwsgi_master(api.program_pid("sahara-api"))

    # -- the clients -------------------------------------------------------

    def client(self, n: int) -> None:
        rnd = random.Random(n)
        sahara = ClientV2(session=self.make_session(), sahara_url=f"{self.api.url}/v2")
        mine: list[Obj] = []
        ops = [
            (self.create_data_source, 3),
            (self.create_job_template, 2),
            (self.create_job_binary, 1),
            (self.get, 3),
            (self.update, 2),
            (self.list_all, 2),
            (self.plugins, 2),
            (self.delete_one, 1),
        ]
        funcs, weights = zip(*ops, strict=True)
        while not self.stop.is_set():
            rnd.choices(funcs, weights)[0](sahara, n, mine, rnd)
            for kind in TABLES:  # keep at most plan.live of each kind: delete the oldest
                live = [o for o in mine if o.kind == kind and o.state == "live" and not o.pinned]
                if len(live) > self.plan.live:
                    self.delete(sahara, n, mine, live[0])
            self.stop.wait(self.plan.pause)

    def call(self, op: str, n: int, fn: Callable[[], object]) -> tuple[str, object]:
        t0 = time.monotonic()
        result, outcome = None, "ok"
        try:
            result = fn()
        except APIException as e:
            outcome = f"http {e.error_code}"
        except ks_exc.ConnectionError as e:
            outcome = f"no response ({type(e).__name__})"
        self.calls.append(Call(op, n, t0, time.monotonic(), outcome))
        return outcome, result

    def create(self, sahara: ClientV2, n: int, mine: list[Obj], kind: str, fn: Callable[[str], object]) -> Obj:
        obj = Obj(kind, f"{self.prefix}-{n}-{uuid.uuid4().hex[:10]}")
        self.objs.append(obj)
        outcome, result = self.call(f"create {kind}", n, lambda: fn(obj.name))
        if outcome == "ok":
            obj.id, obj.state = result.id, "live"
            mine.append(obj)
        else:
            # Refused by the API, or no answer from it (the DB says at the end; a 502 is the front's).
            obj.state = "create-failed" if self.calls[-1].answered else "create-unknown"
        return obj

    def create_data_source(self, sahara: ClientV2, n: int, mine: list[Obj], rnd: random.Random) -> None:
        self.create(
            sahara,
            n,
            mine,
            "data_source",
            lambda name: sahara.data_sources.create(name, "", "hdfs", f"hdfs://nn/{name}"),
        )

    def create_job_binary(self, sahara: ClientV2, n: int, mine: list[Obj], rnd: random.Random) -> Obj:
        return self.create(
            sahara,
            n,
            mine,
            "job_binary",
            lambda name: sahara.job_binaries.create(name, f"s3://bucket/{name}.pig", extra=JB_EXTRA),
        )

    def create_job_template(self, sahara: ClientV2, n: int, mine: list[Obj], rnd: random.Random) -> None:
        """A job binary, then a Pig job template with it as main (it stays pinned while the template lives)."""
        main = self.create_job_binary(sahara, n, mine, rnd)
        if main.state != "live":
            return
        main.pinned = True
        jt = self.create(
            sahara, n, mine, "job_template", lambda name: sahara.job_templates.create(name, "Pig", [main.id])
        )
        jt.main = main
        if jt.state == "create-failed":
            main.pinned = False  # answered: no template holds it

    def get(self, sahara: ClientV2, n: int, mine: list[Obj], rnd: random.Random) -> None:
        live = [o for o in mine if o.state == "live"]
        if live:
            obj = rnd.choice(live)
            self.call(f"get {obj.kind}", n, lambda: manager(sahara, obj.kind).get(obj.id))

    def update(self, sahara: ClientV2, n: int, mine: list[Obj], rnd: random.Random) -> None:
        live = [o for o in mine if o.state == "live"]
        if not live:
            return
        obj = rnd.choice(live)
        text = f"updated {time.time():.3f}"
        if obj.kind == "job_template":
            self.call("update job_template", n, lambda: sahara.job_templates.update(obj.id, description=text))
        else:
            self.call(f"update {obj.kind}", n, lambda: manager(sahara, obj.kind).update(obj.id, {"description": text}))

    def list_all(self, sahara: ClientV2, n: int, mine: list[Obj], rnd: random.Random) -> None:
        kind = rnd.choice(list(TABLES))
        self.call(f"list {kind}", n, lambda: manager(sahara, kind).list())

    def plugins(self, sahara: ClientV2, n: int, mine: list[Obj], rnd: random.Random) -> None:
        if rnd.random() < 0.5:
            self.call("list plugins", n, sahara.plugins.list)
        else:
            self.call("get plugin version", n, lambda: sahara.plugins.get_version_details("fake", "0.1"))

    def delete_one(self, sahara: ClientV2, n: int, mine: list[Obj], rnd: random.Random) -> None:
        live = [o for o in mine if o.state == "live" and not o.pinned]
        if live:
            self.delete(sahara, n, mine, rnd.choice(live))

    def delete(self, sahara: ClientV2, n: int, mine: list[Obj], obj: Obj) -> None:
        outcome, _ = self.call(f"delete {obj.kind}", n, lambda: manager(sahara, obj.kind).delete(obj.id))
        mine.remove(obj)
        if outcome != "ok":
            obj.state = "delete-unknown"  # the DB says at the end
            return
        obj.state = "deleted"
        if obj.main is not None:  # the template is gone: its main job binary may go too
            obj.main.pinned = False

    # -- chaos and memory ----------------------------------------------------

    def chaos(self, t0: float) -> None:
        p = self.plan
        next_kill, next_reload = p.kill_every, p.reload_first
        while not self.stop.wait(0.1):
            now = time.monotonic() - t0
            if now >= p.seconds:
                return
            if now >= next_reload:
                next_reload += p.reload_every
                self.reload()
            elif now >= next_kill:
                next_kill += p.kill_every
                self.kill()

    def kill(self) -> None:
        deadline = time.monotonic() + 30
        while len(workers := self.api.workers()) < self.plan.workers:  # never during a reload or respawn
            if time.monotonic() > deadline or self.stop.is_set():
                self.say("chaos: workers not all up for 30 s, kill skipped")
                return
            time.sleep(0.1)
        victim = random.choice(sorted(workers))
        event = Event("kill", time.monotonic(), victim, workers[victim])
        os.kill(victim, signal.SIGKILL)
        self.events.append(event)
        while time.monotonic() - event.t < 10:
            if set(self.api.workers()) - set(workers):
                event.settled_s = round(time.monotonic() - event.t, 3)
                break
            time.sleep(0.01)

    def reload(self) -> None:
        before = set(self.api.workers())
        event = Event("reload", time.monotonic())
        self.api.ctl("signal", "HUP", "sahara-api")
        self.events.append(event)
        while time.monotonic() - event.t < 120 and not self.stop.is_set():
            now = self.api.workers()
            if len(now) == self.plan.workers and not set(now) & before:
                event.settled_s = round(time.monotonic() - event.t, 3)
                break
            time.sleep(0.05)

    def sample_pss(self, t0: float) -> None:
        while True:
            procs, rss = [], [0]
            try:
                master = psutil.Process(self.master)
                procs = [master, *master.children()]
            except psutil.Error:
                pass
            for p in procs[1:]:
                with contextlib.suppress(psutil.Error):
                    rss.append(p.memory_info().rss)
            self.pss.append(
                {
                    "t": round(time.monotonic() - t0, 1),
                    "mib": pss_mib(procs),
                    "procs": len(procs),
                    "worker_rss_max_mib": round(max(rss) / 2**20, 1),  # reload-on-rss looks at this
                }
            )
            if self.stop.wait(self.plan.pss_every):
                return

    # -- the run -------------------------------------------------------------

    def run(self) -> None:
        p = self.plan
        t0 = time.monotonic()
        self.t0 = t0
        threads = [threading.Thread(target=self.client, args=(n,), daemon=True) for n in range(p.clients)]
        threads += [
            threading.Thread(target=self.chaos, args=(t0,)),
            threading.Thread(target=self.sample_pss, args=(t0,)),
        ]
        for t in threads:
            t.start()
        next_say = 30.0
        try:
            while (elapsed := time.monotonic() - t0) < p.seconds:
                if elapsed >= next_say:
                    next_say += 30
                    self.progress(elapsed)
                time.sleep(0.5)
        finally:
            self.stop.set()
            for t in threads:
                t.join(timeout=p.timeout + 30)
        self.duration = time.monotonic() - t0
        self.progress(self.duration)

    def progress(self, elapsed: float) -> None:
        failed = [c for c in list(self.calls) if not c.ok]
        kills = sum(e.kind == "kill" for e in self.events)
        reloads = sum(e.kind == "reload" for e in self.events)
        pss = self.pss[-1]["mib"] if self.pss else 0
        self.say(
            f"t={elapsed:.0f} s: {len(self.calls)} requests, {len(failed)} failed, "
            f"{kills} kills, {reloads} reloads, PSS {pss} MiB"
        )


# -- the books ---------------------------------------------------------------


def explain(calls: list[Call], events: list[Event], within: float) -> list[dict]:
    """Each failed request, with the kill that explains it (None: unexplained).
    A kill explains a request that got no answer, was in flight when the worker
    died, and failed within `within` s of it; an answered error is never explained."""
    out = []
    kills = [e for e in events if e.kind == "kill"]
    for c in calls:
        if c.ok:
            continue
        kill = None
        if not c.answered:
            kill = next((k for k in kills if c.start <= k.t <= c.end and c.end - k.t <= within), None)
        out.append({**asdict(c), "kill_pid": kill.pid if kill else None, "kill_t": kill.t if kill else None})
    return out


def books(objs: list[Obj], conn: pymysql.Connection, project_id: str, prefix: str) -> dict:
    """Compare what the clients know with the rows in MariaDB: a live object
    has exactly its row, a deleted or refused one none; one whose create or
    delete got no answer is resolved by its (unique) name and counted."""
    rows: dict[tuple[str, str], list[str]] = {}
    with conn.cursor() as cur:
        for kind, table in TABLES.items():
            cur.execute(
                f"SELECT name, id FROM {table} WHERE tenant_id = %s AND name LIKE %s",  # noqa: S608 (our table names)
                (project_id, prefix + "-%"),
            )
            for name, id_ in cur.fetchall():
                rows.setdefault((kind, name), []).append(id_)
        cur.execute(
            "SELECT j.name, COUNT(m.JobBinary_id) FROM jobs j LEFT JOIN mains_association m ON m.Job_id = j.id "
            "WHERE j.tenant_id = %s AND j.name LIKE %s GROUP BY j.id, j.name",
            (project_id, prefix + "-%"),
        )
        mains = dict(cur.fetchall())
    in_db = sum(len(ids) for ids in rows.values())
    mismatches: list[str] = []
    resolved = {f"{s} {w}": 0 for s in ("create-unknown", "delete-unknown") for w in ("absent", "present")}
    expected = 0
    for o in objs:
        found = rows.pop((o.kind, o.name), [])
        if o.state == "live":
            expected += 1
            if found != [o.id]:
                mismatches.append(f"{o.kind} {o.name} ({o.id}) live, rows {found}")
        elif o.state in ("deleted", "create-failed"):
            if found:
                mismatches.append(f"{o.kind} {o.name} {o.state}, rows {found}")
        else:  # no answer: the row decides
            resolved[f"{o.state} {'present' if found else 'absent'}"] += 1
            expected += bool(found)
            if len(found) > 1:
                mismatches.append(f"{o.kind} {o.name}: {len(found)} rows")
            if found:
                o.id, o.state = found[0], "live"  # cleaned up like the others
        if o.kind == "job_template" and found and mains.get(o.name) != 1:
            mismatches.append(f"job_template {o.name}: {mains.get(o.name)} mains (half-written)")
    mismatches += [f"{kind} {name}: rows {ids} nobody created" for (kind, name), ids in rows.items()]
    return {"rows_expected": expected, "rows_in_db": in_db, "resolved": resolved, "mismatches": mismatches}


def cleanup(sahara: ClientV2, objs: list[Obj]) -> int:
    """Delete what the soak left (templates before their job binaries); returns how many are left."""
    left = 0
    for kind in ("job_template", "job_binary", "data_source"):
        for o in objs:
            if o.kind == kind and o.state == "live":
                try:
                    manager(sahara, kind).delete(o.id)
                    o.state = "deleted"
                except (APIException, ks_exc.ConnectionError):
                    left += 1
    return left


def pss_verdict(samples: list[dict], plan: Plan, duration: float) -> dict:
    """Flat: after the warm-up, the median of the last quarter of the samples
    is at most plan.pss_growth x the median of the first quarter."""
    judged = [s for s in samples if s["t"] >= plan.warmup and s["procs"] > 1]
    quarter = (duration - plan.warmup) / 4
    first = [s["mib"] for s in judged if s["t"] < plan.warmup + quarter]
    last = [s["mib"] for s in judged if s["t"] >= duration - quarter]
    out = {"samples": samples, "warmup_s": plan.warmup, "limit_ratio": plan.pss_growth}
    if first and last:
        out["first_quarter_mib"] = round(statistics.median(first), 1)
        out["last_quarter_mib"] = round(statistics.median(last), 1)
        out["ratio"] = round(out["last_quarter_mib"] / out["first_quarter_mib"], 3)
    out["max_mib"] = max((s["mib"] for s in samples), default=0)
    out["worker_rss_max_mib"] = max((s.get("worker_rss_max_mib", 0) for s in samples), default=0)
    return out


def summarize(run: Soak, booked: dict, log: str, master_now: int) -> dict:
    """The figures and the checks of one soak, as results.json holds them."""
    p, t0 = run.plan, run.t0
    calls = list(run.calls)
    failures = explain(calls, run.events, p.explain_within)
    reloads = [e for e in run.events if e.kind == "reload"]
    in_reload = [  # not cut by a kill, yet failed while a reload ran
        f
        for f in failures
        if f["kill_pid"] is None and any(f["start"] <= r.t + (r.settled_s or 120) and f["end"] >= r.t for r in reloads)
    ]
    ops: dict[str, dict] = {}
    for op in sorted({c.op for c in calls}):
        mine = [c for c in calls if c.op == op]
        ms = [1000 * (c.end - c.start) for c in mine if c.ok]
        ops[op] = {
            "count": len(mine),
            "failed": sum(not c.ok for c in mine),
            "p50_ms": round(percentile(ms, 50), 1),
            "p99_ms": round(percentile(ms, 99), 1),
            "max_ms": round(max(ms, default=float("nan")), 1),
        }
    events = []
    for e in run.events:
        row = {**asdict(e), "t": round(e.t - t0, 2)}
        if e.kind == "kill":
            row["failed"] = sum(1 for f in failures if f["kill_t"] == e.t)
        else:  # requests wait in the listen queue while the master reloads
            end = e.t + (e.settled_s or 0)
            waited = [c.end - c.start for c in calls if c.ok and c.start <= end and c.end >= e.t]
            row["slowest_ms"] = round(1000 * max(waited, default=0))
        events.append(row)
    for f in failures:
        f["start"], f["end"] = round(f["start"] - t0, 3), round(f["end"] - t0, 3)
        f["kill_t"] = None if f["kill_t"] is None else round(f["kill_t"] - t0, 3)
    kills = sum(e.kind == "kill" for e in run.events)
    unexplained = [f for f in failures if f["kill_pid"] is None]
    creates = [c for c in calls if c.op.startswith("create")]
    deletes = [c for c in calls if c.op.startswith("delete")]
    objects = {
        "created": sum(c.ok for c in creates),
        "deleted": sum(c.ok for c in deletes),
        "create_refused": sum(c.answered and not c.ok for c in creates),
        **booked,
    }
    pss = pss_verdict(run.pss, p, run.duration)
    deaths = log.count("DAMN ! worker")
    supervision = {
        "worker_deaths_logged": deaths,
        "recycled": log.count("The work of process"),  # max-requests / reload-on-rss
        "api_started": log.count("spawned: 'sahara-api'"),
        "master_same_pid": master_now == run.master,
    }
    checks = {
        "every failed request was in flight on a killed worker": not unexplained,
        "reloads failed no request": not in_reload,
        "rows in MariaDB = created - deleted": not booked["mismatches"]
        and booked["rows_in_db"] == booked["rows_expected"],
        f"PSS flat (last quarter <= {p.pss_growth} x first quarter)": pss.get("ratio", 99) <= p.pss_growth,
        "no worker died but the killed ones, the master never restarted": deaths == kills
        and supervision["api_started"] == 1
        and supervision["master_same_pid"],
        "every kill and reload settled": all(e.settled_s is not None for e in run.events),
    }
    return {
        "meta": {
            "plan": asdict(p),
            "duration_s": round(run.duration, 1),
            "mode": f"all-in-one: supervisord running the uWSGI API ({p.workers} workers) and sahara-engine",
            "prefix": run.prefix,
            "started": time.strftime("%Y-%m-%d %H:%M %Z", time.gmtime(time.time() - run.duration)),
            "loadavg_end": Path("/proc/loadavg").read_text().split()[:3],
            "cpus": os.cpu_count(),
        },
        "requests": {
            "sent": len(calls),
            "ok": sum(c.ok for c in calls),
            "failed": len(failures),
            "explained_by_kills": len(failures) - len(unexplained),
            "unexplained": len(unexplained),
            "failed_during_reloads": len(in_reload),
            "per_s": round(len(calls) / run.duration, 1),
            # Every answered request has its line (uWSGI logs after the response); a cut one has none.
            "answered": sum(c.answered for c in calls),
            "logged_by_uwsgi": sum(1 for m in REQUEST_LOG.finditer(log) if m[2].startswith("/v2/")),
        },
        "ops": ops,
        "failures": failures,
        "events": events,
        "objects": objects,
        "pss": pss,
        "supervision": supervision,
        "checks": checks,
        "passed": all(checks.values()),
    }


def soak(
    conf: Path,
    workdir: Path,
    project_id: str,
    make_session: Callable[[], ks_session.Session],
    plan: Plan,
    say: Callable[[str], None],
) -> dict:
    """Start the all-in-one deployment, soak it, check the books, clean up, stop it."""
    say(f"starting all-in-one with {plan.workers} workers (log: {workdir / 'all-in-one.log'})")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    loadavg = Path("/proc/loadavg").read_text().split()[:3]
    api = start_all_in_one(conf, workdir, plan.workers)
    try:
        run = Soak(api, make_session, plan, say)
        say(
            f"soaking for {plan.seconds:g} s: {plan.clients} clients, a kill every {plan.kill_every:g} s, "
            f"a reload every {plan.reload_every:g} s"
        )
        run.run()
        conn = db_connect(conf)
        try:
            booked = books(run.objs, conn, project_id, run.prefix)
        finally:
            conn.close()
        results = summarize(run, booked, api.log_text(), uwsgi_master(api.program_pid("sahara-api")))
        results["meta"] |= {"loadavg_start": loadavg, "commit": commit.stdout.strip()}
        left = cleanup(ClientV2(session=make_session(), sahara_url=f"{api.url}/v2"), run.objs)
        if left:
            say(f"cleanup: {left} objects of {run.prefix} could not be deleted")
    finally:
        api.stop(timeout=120)
    return results
