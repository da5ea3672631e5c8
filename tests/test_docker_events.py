"""The docker events source's decisions, with plain data: parsing dockerd's events, what a listing
after a reconnect says happened meanwhile, and dropping events that ``since=`` replays."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from supervisor.bus import Bus
from supervisor.events.docker import ContainerEvent
from supervisor.sources.docker import (
    FIRST_CONNECT_WINDOW,
    DockerEventsSource,
    Seen,
    apply_event,
    container_event,
    observed_changes,
    since_param,
    view_of,
)
from units.runtime import ContainerState


def raw(action: str, cid: str = "c1", t: int = 1_000_000_000_000_000_001, **attrs: str) -> dict[str, Any]:
    return {"Type": "container", "Action": action, "status": action, "id": cid,
            "Actor": {"ID": cid, "Attributes": {"name": "web", "image": "x", **attrs}},
            "time": t // 10**9, "timeNano": t}


def state(cid: str, running: bool, started: float | None = 10.0, finished: float | None = None,
          exit_code: int | None = None, name: str = "web", unit: str | None = "web") -> ContainerState:
    return ContainerState(id=cid, name=name, image="x", image_id="sha256:x",
                          state="running" if running else "exited", running=running, exit_code=exit_code,
                          started_at=started, finished_at=finished,
                          oom_killed=False, pid=1 if running else 0, restart_count=0,
                          labels={"io.corral.unit": unit} if unit else {})


def test_container_events_are_parsed() -> None:
    die = container_event(raw("die", exitCode="137", **{"io.corral.unit": "web"}), "system")
    assert die == ContainerEvent(daemon="system", action="die", container_id="c1", name="web", unit="web",
                                 exit_code=137, time_nano=1_000_000_000_000_000_001, ts=die.ts if die else 0)
    kill = container_event(raw("kill", signal="15"), "user")
    assert kill is not None and kill.signal == "15" and kill.exit_code is None and kill.unit is None
    for action in ("create", "start", "stop", "oom", "destroy"):
        event = container_event(raw(action), "system")
        assert event is not None and event.action == action
    assert container_event(raw("exec_start: sh -c true"), "system") is None
    assert container_event(raw("health_status: healthy"), "system") is None
    assert container_event({**raw("start"), "Type": "network"}, "system") is None


def test_since_param_keeps_nanoseconds() -> None:
    assert since_param(1_700_000_000_000_000_042) == "1700000000.000000042"


def test_a_fresh_view_has_nothing_to_report() -> None:
    listing = [state("a", True), state("b", False, finished=20.0, exit_code=1)]
    assert observed_changes(view_of(listing), listing, "system") == []


def test_changes_while_disconnected_are_observed() -> None:
    before = {
        "died": Seen("died", "died", running=True, started_at=10.0),
        "started": Seen("started", None, running=False, started_at=5.0, finished_at=6.0),
        "restarted": Seen("restarted", None, running=True, started_at=10.0),
        "reran": Seen("reran", None, running=False, started_at=1.0, finished_at=2.0),
        "gone": Seen("gone", "gone", running=False),
        "same": Seen("same", None, running=True, started_at=10.0),
        "event-updated": Seen("event-updated", None, running=True),  # times unknown: no guessing
    }
    listing = [
        state("died", False, started=10.0, finished=30.0, exit_code=137, name="died", unit="died"),
        state("started", True, started=25.0, name="started", unit=None),
        state("restarted", True, started=28.0, name="restarted", unit=None),
        state("reran", False, started=20.0, finished=21.0, exit_code=4, name="reran", unit=None),
        state("same", True, started=10.0, name="same", unit=None),
        state("event-updated", True, started=99.0, name="event-updated", unit=None),
        state("new", True, name="new", unit="new"),
        state("new-exited", False, finished=12.0, exit_code=0, name="new-exited", unit=None),
    ]
    got = [(e.container_id, e.action, e.exit_code) for e in observed_changes(before, listing, "system")]
    assert got == [
        ("died", "die", 137),
        ("started", "start", None),
        ("restarted", "die", None), ("restarted", "start", None),
        ("reran", "start", None), ("reran", "die", 4),
        ("new", "create", None), ("new", "start", None),
        ("new-exited", "create", None), ("new-exited", "start", None), ("new-exited", "die", 0),
        ("gone", "destroy", None),
    ]
    assert all(e.observed and e.time_nano == 0 and e.daemon == "system"
               for e in observed_changes(before, listing, "system"))
    destroy = observed_changes(before, listing, "system")[-1]
    assert destroy.unit == "gone" and destroy.name == "gone"


def test_events_keep_the_view_current() -> None:
    view: dict[str, Seen] = {}
    for action in ("create", "start"):
        event = container_event(raw(action), "system")
        assert event is not None
        apply_event(view, event)
    assert view["c1"].running
    die = container_event(raw("die", exitCode="1"), "system")
    assert die is not None
    apply_event(view, die)
    assert not view["c1"].running and view["c1"].finished_at is None
    destroy = container_event(raw("destroy"), "system")
    assert destroy is not None
    apply_event(view, destroy)
    assert view == {}


async def test_events_replayed_by_since_are_dropped_once() -> None:
    bus = Bus()
    sub = bus.subscribe("t", ContainerEvent)
    source = DockerEventsSource(bus, socket=None)  # type: ignore[arg-type]
    t0 = 1_000_000_000_000_000_000

    async def stream(events: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
        for e in events:
            yield e

    first = [raw("create", t=t0), raw("start", t=t0 + 5), raw("kill", t=t0 + 5, signal="9")]
    await source._relay_events(stream(first), 0, set())
    assert source.since == since_param(t0 + 5)
    resume_nano, resume_keys = source._last_nano, set(source._at_last)
    # since= replays everything from t0+5 on: the two seen at t0+5 are dropped, the rest passes
    replay = [raw("start", t=t0 + 5), raw("kill", t=t0 + 5, signal="9"), raw("die", t=t0 + 5, exitCode="137"),
              raw("destroy", t=t0 + 9)]
    await source._relay_events(stream(replay), resume_nano, resume_keys)
    actions = []
    while (e := sub.get_nowait()) is not None:
        assert isinstance(e, ContainerEvent)
        actions.append(e.action)
    assert actions == ["create", "start", "kill", "die", "destroy"]
    assert source.stats.replayed_dropped == 2 and source.since == since_param(t0 + 9)


def test_until_its_first_connection_a_source_polls_at_the_start_pace() -> None:
    """The user's dockerd is started by a unit and nobody calls ``wake()`` when it first answers: until the
    source's first connection it retries at most 0.5 s apart (not the reconnect backoff's 5 s), for
    ``FIRST_CONNECT_WINDOW`` seconds; once it has connected, or after that window, the backoff's pace."""
    source = DockerEventsSource(Bus(), Path("/nonexistent.sock"), daemon="user")
    source._started_at = 1000.0
    first = [source.next_delay(ran_for=0.0, now=1000.0 + i) for i in range(40)]
    assert first[0] == 0.02 and max(first) == 0.5 and first == sorted(first)
    later = [source.next_delay(ran_for=0.0, now=1000.0 + FIRST_CONNECT_WINDOW + i) for i in range(8)]
    assert later[-1] == source.backoff.cap == 5.0  # a dockerd that never came is not polled every 0.5 s
    reconnecting = DockerEventsSource(Bus(), Path("/nonexistent.sock"), daemon="user")
    reconnecting._started_at = 1000.0
    reconnecting.stats.sessions = 1  # it connected once: a lost stream waits on the reconnect backoff
    delays = [reconnecting.next_delay(ran_for=0.0, now=1001.0) for _ in range(8)]
    assert delays == [reconnecting.backoff.delay_for(n) for n in range(1, 9)] and delays[-1] == 5.0
