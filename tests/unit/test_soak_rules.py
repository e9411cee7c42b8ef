"""The soak's rules (soak/run.py) on made-up timelines: which failed
requests a kill explains, and when PSS counts as flat."""

from __future__ import annotations

from soak.run import Call, Event, Plan, explain, pss_verdict


def test_only_unanswered_requests_in_flight_at_a_kill_are_explained() -> None:
    kill = Event("kill", t=100.0, pid=42)
    calls = [
        Call("get data_source", 0, 99.9, 100.01, "no response (ConnectFailure)"),  # cut by the kill
        Call("create data_source", 1, 99.0, 99.5, "no response (ConnectFailure)"),  # ended before it
        Call("list job_binary", 2, 100.2, 100.3, "no response (ConnectFailure)"),  # started after it
        Call("update job_binary", 3, 99.9, 100.1, "http 500"),  # answered: never the kill's
        Call("get data_source", 0, 99.0, 106.0, "no response (ConnectTimeout)"),  # failed too long after
        Call("list plugins", 1, 99.9, 100.1, "ok"),
        Call("get job_binary", 2, 99.95, 100.02, "http 502"),  # the nginx front's answer for a cut request
    ]
    rows = explain(calls, [kill, Event("reload", t=100.0)], within=5)
    assert [(r["op"], r["kill_pid"]) for r in rows] == [
        ("get data_source", 42),
        ("create data_source", None),
        ("list job_binary", None),
        ("update job_binary", None),
        ("get data_source", None),
        ("get job_binary", 42),
    ]


def test_pss_is_flat_when_the_last_quarter_stays_within_the_bound() -> None:
    plan = Plan(seconds=100, warmup=20, pss_growth=1.2)
    flat = [{"t": t, "mib": 200 + (t % 20), "procs": 5} for t in range(0, 101, 5)]
    growing = [{"t": t, "mib": 200 + 3 * t, "procs": 5} for t in range(0, 101, 5)]
    assert pss_verdict(flat, plan, 100)["ratio"] <= 1.2
    assert pss_verdict(growing, plan, 100)["ratio"] > 1.2
    # A sample taken while the master had no workers (mid-reload) is not judged.
    assert "ratio" not in pss_verdict([{"t": 50, "mib": 10, "procs": 1}], plan, 100)
