"""The configured units (handlers/units/desired.py): loaded again on a new config generation, policies
kept or made afresh, a config that does not load, the deliberate stops file, the sandbox's paths; and
the reconciler recreating only the unit whose definition changed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import structlog.testing

from handlers.units.desired import DesiredUnits, Reloaded, localize
from tests.units_fakes import loaded_by_generation, make, settle, svc, unit_of


def test_localize_moves_state_paths_under_the_sandbox_only() -> None:
    u = unit_of("d:\n  image: x\n  volumes:\n    - /var/lib/user-docker:/var/lib/docker\n"
                "    - /var/run:/host/run\n    - /run/x:/x:ro\n    - /etc/ssl/certs:/etc/ssl/certs:ro\n"
                "    - named:/data\n    - /anon\n", "d")
    assert localize(u, None) is u
    moved = localize(u, Path("/sb"))
    assert [v.source for v in moved.volumes] == ["/sb/var/lib/user-docker", "/sb/run", "/sb/run/x",
                                                 "/etc/ssl/certs", "named", None]
    assert [v.options for v in moved.volumes] == [v.options for v in u.volumes]


class Config:
    def __init__(self, services: dict[str, Any]) -> None:
        self.services = services
        self.generation = 1

    def set(self, services: dict[str, Any]) -> None:
        self.services = services
        self.generation += 1


def desired(tmp_path: Path, config: Config, prefix: Path | None = None) -> DesiredUnits:
    return DesiredUnits(loaded=loaded_by_generation(lambda: {"corral": {"services": config.services}},
                                                    lambda: config.generation),
                        stops_file=tmp_path / "stops.json", prefix=prefix)


def test_policies_are_kept_across_loads_unless_the_definition_changed(tmp_path: Path) -> None:
    config = Config({"keep": svc(), "policy": svc(restart="always"), "change": svc(), "gone": svc()})
    units = desired(tmp_path, config)
    assert units.load() == Reloaded()
    assert units.load() is None  # the same generation: nothing loaded
    before = dict(units.policies)
    assert units.graph is not None and set(units.graph.deps) == set(before)
    config.set({"keep": svc(), "policy": svc(restart="on-failure:2"), "change": svc("sleep 1"), "new": svc()})
    assert units.load() == Reloaded(changed=frozenset({"change"}), removed=frozenset({"gone"}))
    assert units.policies["keep"] is before["keep"]
    assert units.policies["policy"] is before["policy"]  # only its restart changed: the container stays
    assert str(units.policies["policy"].restart) == "on-failure:2"
    assert units.policies["change"] is not before["change"]
    assert set(units.units) == {"keep", "policy", "change", "new"}


def test_a_new_generation_is_taken_once(tmp_path: Path) -> None:
    """The units come from the config store, loaded once per generation: the same generation is the same
    object, and nothing is taken twice."""
    config = Config({"web": svc()})
    units = desired(tmp_path, config)
    assert units.load() is not None
    assert units.load() is None
    config.set({"web": svc(), "db": svc()})
    assert units.load() is not None and set(units.units) == {"web", "db"}
    assert units.load() is None


async def test_deliberate_stops_of_unless_stopped_units_are_saved_and_read_back(tmp_path: Path) -> None:
    config = Config({"web": svc(restart="unless-stopped"), "job": svc(restart="always")})
    units = desired(tmp_path, config)
    units.load()
    await units.read_stops()  # none yet
    assert units.save_stops() is None  # nothing to write
    units.policy("web").deliberately_stopped()
    units.policy("job").deliberately_stopped()
    saving = units.save_stops()
    assert saving is not None
    await saving
    assert json.loads((tmp_path / "stops.json").read_text())["stopped"] == ["web"]
    # Read before the first load, or after it (the boot phase loads first): web stays stopped.
    before = desired(tmp_path, config)
    await before.read_stops()
    before.load()
    after = desired(tmp_path, config)
    after.load()
    assert not after.policy("web").stopped
    await after.read_stops()
    for again in (before, after):
        assert again.policy("web").stopped and not again.policy("job").stopped
        assert again.save_stops() is None  # the file holds what it should
    await after.saved()


async def test_stops_of_units_no_longer_unless_stopped_are_forgotten(tmp_path: Path) -> None:
    (tmp_path / "stops.json").write_text(json.dumps({"version": 1, "stopped": ["web", "gone"]}))
    config = Config({"web": svc(restart="always")})
    units = desired(tmp_path, config)
    units.load()
    await units.read_stops()
    await units.saved()
    assert not units.policy("web").stopped
    assert json.loads((tmp_path / "stops.json").read_text())["stopped"] == []


async def test_stops_not_written_are_written_at_the_next_change(tmp_path: Path) -> None:
    config = Config({"web": svc(restart="unless-stopped"), "db": svc(restart="unless-stopped")})
    units = DesiredUnits(loaded=loaded_by_generation(lambda: {"corral": {"services": config.services}},
                                                     lambda: config.generation),
                         stops_file=tmp_path / "no" / "stops.json")
    units.load()
    await units.read_stops()
    (tmp_path / "no").write_text("a file where the directory should be")
    units.policy("web").deliberately_stopped()
    await units.save_stops()  # type: ignore[misc]
    assert units.save_stops() is not None  # not on disk: written again at the next try
    await units.saved()
    (tmp_path / "no").unlink()
    units.policy("db").deliberately_stopped()
    await units.save_stops()  # type: ignore[misc]
    assert json.loads((tmp_path / "no" / "stops.json").read_text())["stopped"] == ["db", "web"]


def test_unknown_unit_has_no_policy(tmp_path: Path) -> None:
    units = desired(tmp_path, Config({"web": svc()}))
    units.load()
    with pytest.raises(KeyError):
        units.policy("nope")


def test_in_reach_and_the_graph_among_them(tmp_path: Path) -> None:
    config = Config({"db": svc(), "app": svc(labels={"io.corral.after": "db"}),
                     "mine": svc(labels={"io.corral.scope": "user", "io.corral.after": "db"})})
    units = desired(tmp_path, config)
    units.load()
    everything = units.in_reach({"system", "user"})
    assert units.graph_for(everything) is units.graph
    system = units.in_reach({"system"})
    assert set(system) == {"db", "app"}
    assert units.graph_for(system).deps == {"db": frozenset(), "app": frozenset({"db"})}


def test_the_sandbox_moves_the_units_paths_under_its_directory(tmp_path: Path) -> None:
    config = Config({"d": svc(volumes=["/var/lib/x:/x"], labels={"io.corral.requires-mount": "/mnt/data"})})
    units = desired(tmp_path, config, prefix=Path("/sb"))
    units.load()
    assert [v.source for v in units.units["d"].volumes] == ["/sb/var/lib/x"]
    assert units.units["d"].requires_mounts == ("/sb/mnt/data",)


async def test_config_change_recreates_only_the_changed_unit(tmp_path: Path) -> None:
    handler, docker, state = make(tmp_path, {"keep": svc(restart="always"), "change": svc(restart="always")})
    await settle(handler)
    docker.calls.clear()
    state["config"] = {"corral": {"services": {"keep": svc(restart="unless-stopped"),
                                               "change": svc("sleep 601", restart="always"),
                                               "new": svc()}}}
    state["generation"] = 2
    await settle(handler)
    assert ("stop", "change") in docker.calls and ("remove", "change") in docker.calls
    assert ("start", "change") in docker.calls and ("start", "new") in docker.calls
    assert not any(name == "keep" for _, name in docker.calls)  # only its policy changed
    assert handler.desired.policies["keep"].restart.name == "unless-stopped"
    state["config"] = {"corral": {"services": {"keep": svc(restart="unless-stopped")}}}
    state["generation"] = 3
    await settle(handler)
    assert sorted(c["Names"][0] for c in docker.containers.values()) == ["/keep"]
    await handler.close()


async def test_a_remembered_stop_holds_when_the_boot_phase_loads_before_the_first_reconcile(
        tmp_path: Path) -> None:
    (tmp_path / "stops.json").write_text(json.dumps({"version": 1, "stopped": ["web"]}))
    handler, docker, _ = make(tmp_path, {"web": svc(restart="unless-stopped"), "db": svc()})
    handler.load()  # what the `units` boot phase does, on the loop: the file is not read there
    await settle(handler)
    assert handler.unit_status("web")["state"] == "stopped"
    assert not any(name == "web" for _, name in docker.calls)  # never created nor started
    assert handler.unit_status("db")["state"] == "running"
    await handler.close()


def test_a_rancheros_unit_placed_in_the_user_dockerd_says_so_in_the_journal_at_info(tmp_path: Path) -> None:
    """A RancherOS service without a scope label runs in the user dockerd, as RancherOS ran it: an info
    line when it comes (not again on a load that does not change it), nothing for corral's own units."""
    rancheros = svc(labels={"io.rancher.os.after": "network"})
    config = Config({"docker": svc(labels={"io.corral.scope": "system"}), "web": rancheros})
    units = desired(tmp_path, config)
    with structlog.testing.capture_logs() as logs:
        units.load()
    notes = [e for e in logs if e["event"] == "unit runs as RancherOS ran it"]
    assert [(e["unit"], e["log_level"]) for e in notes] == [("web", "info")]
    assert "runs in the user dockerd, as RancherOS ran it, after the unit 'docker'" in notes[0]["note"]
    assert units.units["web"].scope == "user"
    config.set({"docker": svc(labels={"io.corral.scope": "system"}), "web": rancheros, "db": svc()})
    with structlog.testing.capture_logs() as logs:
        units.load()
    assert [e for e in logs if e["event"] == "unit runs as RancherOS ran it"] == []
