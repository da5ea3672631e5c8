"""Start order: after/before, oneshots, createonly, parallel waves, cycles, shutdown in reverse."""

from __future__ import annotations

import pytest

from units.graph import GraphError, UnitGraph
from units.loader import build_units
from units.model import Unit
from units.unitfiles import parse_unit_text


def units_from(text: str) -> dict[str, Unit]:
    raws, errors = parse_unit_text(text, "test.yml")
    units, _graph, more = build_units(raws, {})
    assert [*errors, *more] == []
    return units


def unit(name: str, **kwargs: object) -> Unit:
    return Unit(name=name, image="busybox", **kwargs)  # type: ignore[arg-type]


SYSTEM = """
volumes:
  image: busybox
  labels: {io.corral.createonly: "true"}
cloud-init:
  image: busybox
  labels: {io.corral.oneshot: "true"}
  volumes_from: [volumes]
network:
  image: busybox
  labels: {io.corral.before: cloud-init}
ntp:
  image: busybox
  labels: {io.corral.after: network}
console:
  image: busybox
  labels: {io.corral.after: cloud-init}
docker:
  image: busybox
  labels: {io.rancher.os.after: console}
syslog:
  image: busybox
"""


def test_waves_honour_after_before_and_implicit_volumes_from() -> None:
    graph = UnitGraph.of(units_from(SYSTEM))
    assert graph.waves() == [
        ["network", "syslog", "volumes"],
        ["cloud-init", "ntp"],
        ["console"],
        ["docker"],
    ]
    assert graph.deps["cloud-init"] == {"network", "volumes"}  # before + volumes_from
    assert graph.stop_waves() == list(reversed(graph.waves()))


def test_independent_units_are_in_the_same_wave() -> None:
    graph = UnitGraph.of({n: unit(n) for n in ("c", "a", "b")})
    assert graph.waves() == [["a", "b", "c"]]
    assert graph.ready(set(), set()) == {"a", "b", "c"}


def test_ready_set_follows_starts_and_oneshot_exits() -> None:
    graph = UnitGraph.of(units_from(SYSTEM))
    assert graph.ready(set(), set()) == {"network", "syslog", "volumes"}
    # the createonly holder counts once created, the network once started
    started = {"network", "syslog", "volumes"}
    assert graph.ready(started, set()) == {"cloud-init", "ntp"}
    started |= {"cloud-init", "ntp"}
    # cloud-init is a oneshot: started is not enough, console waits for it to exit
    assert graph.ready(started, set()) == set()
    assert graph.blocking("console", started, set()) == ["cloud-init"]
    # it exited (with any code: a failed oneshot still lets its dependents start)
    assert graph.ready(started, {"cloud-init"}) == {"console"}
    assert graph.ready(started | {"console"}, {"cloud-init"}) == {"docker"}


def test_oneshot_that_could_not_start_lets_dependents_go() -> None:
    once, then = unit("once", oneshot=True), unit("then", after=frozenset({"once"}))
    graph = UnitGraph.of({"once": once, "then": then})
    assert graph.ready(set(), set()) == {"once"}
    assert graph.ready(set(), {"once"}) == {"then"}


def test_stop_order_is_reverse_dependency() -> None:
    graph = UnitGraph.of(units_from(SYSTEM))
    running = {"network", "syslog", "ntp", "console", "docker"}
    assert graph.stop_ready(running) == {"syslog", "ntp", "docker"}
    assert graph.stop_ready({"network", "console"}) == {"network", "console"}
    assert graph.dependents("network") == {"cloud-init", "ntp"}


def test_cycle_error_names_every_unit_in_it() -> None:
    units = {
        "a": unit("a", after=frozenset("b"), before=frozenset("c"), key="corral.services.a", source="cfg"),
        "b": unit("b", after=frozenset({"c"}), key="corral.services.b", source="cfg"),
        "c": unit("c", key="corral.services.c", source="cfg"),
        "d": unit("d", after=frozenset({"a"})),
    }
    graph, errors = UnitGraph.build(units)
    assert graph is None
    assert len(errors) == 1
    assert errors[0].key == "corral.services.a.labels" and errors[0].file == "cfg"
    assert "ordering cycle between units a, b, c: a -> b -> c -> a" in errors[0].message
    assert "d" not in errors[0].message.split(": ")[1]  # d only waits for the cycle
    with pytest.raises(GraphError, match="ordering cycle"):
        UnitGraph.of(units)


def test_two_separate_cycles_are_both_reported() -> None:
    units = {
        "a": unit("a", after=frozenset({"b"})),
        "b": unit("b", after=frozenset({"a"})),
        "x": unit("x", before=frozenset({"y"})),
        "y": unit("y", before=frozenset({"x"})),
    }
    _, errors = UnitGraph.build(units)
    assert [e.message.split(":")[0] for e in errors] == [
        "ordering cycle between units a, b",
        "ordering cycle between units x, y",
    ]


def test_dependency_on_a_missing_unit_names_both() -> None:
    web = unit("web", after=frozenset({"db"}), labels=(("io.corral.after", "db"),))
    _, errors = UnitGraph.build({"web": web})
    assert [(e.key, e.message) for e in errors] == [
        ('web.labels["io.corral.after"]', "unit 'web' is ordered after 'db', which is not a unit")
    ]
