"""docs/compatibility.md (supervisor/gen_compat.py): every key of RancherOS, cloud-init and netplan, with
the verdict corral's parsers give it. The keys come from the formats' own lists (tests/compat_keys/,
tests/cloud_init_schema/), the verdicts from corral's schema, key tables and supervisor/compat.py; these
tests hold the document to both, and the verdicts to what the config store really says."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from supervisor import gen_compat
from supervisor.config.errors import ConfigError
from supervisor.config.store import ConfigStore
from supervisor.domain_checks import config_store
from supervisor.gen_compat import ITEM, Judge, Verdict
from supervisor.paths import Paths

Path_ = tuple[str, ...]


@pytest.fixture(scope="module")
def built() -> tuple[str, Judge]:
    return gen_compat.build()


@pytest.fixture
def store(tmp_path: Path) -> ConfigStore:
    paths = Paths.sandbox(tmp_path)
    paths.config_dir.mkdir(parents=True)
    return config_store(paths, "")


def test_docs_compatibility_md_is_current(built: tuple[str, Judge]) -> None:
    assert gen_compat.DOC.read_text(encoding="utf-8") == built[0], "run python -m supervisor.gen_compat"
    assert gen_compat.main(["--check"]) == 0


def test_check_fails_on_a_stale_document(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / "compatibility.md"
    stale.write_text(gen_compat.render().replace("| warned |", "| applied |", 1))
    monkeypatch.setattr(gen_compat, "DOC", stale)
    assert gen_compat.main(["--check"]) == 1


def test_every_key_of_every_parser_table_is_a_formats_key_or_named_as_corrals(
    built: tuple[str, Judge],
) -> None:
    """A key a parser's table has is in RancherOS's, cloud-init's or netplan's own list (the doc gives its
    verdict there), or ADDITIONS says why it is there; and ADDITIONS names no key that is neither."""
    _, judge = built
    unlisted = set(gen_compat.unlisted(judge))
    assert unlisted - set(gen_compat.ADDITIONS) == set(), "table keys in no format's list: explain them"
    assert set(gen_compat.ADDITIONS) - unlisted == set(), "ADDITIONS names keys a format lists, or none"
    names = {table.name for table in gen_compat.all_tables()}
    assert set(gen_compat.CORRAL_TABLES) <= names
    assert {
        "network_netplan_ethernet",
        "network_rancher_interface",
        "network_v1_subnet",
        "storage_state",
    } <= names


def test_a_key_added_to_a_table_without_a_format_listing_it_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from netconf import rancher

    monkeypatch.setitem(rancher.IFACE.keys, "made_up", {"type": "string"})
    judge = Judge()
    gen_compat.rancheros_rows(judge)
    assert ("network_rancher_interface", "made_up") in gen_compat.unlisted(judge)
    assert ("network_rancher_interface", "made_up") not in gen_compat.ADDITIONS


def test_the_tables_are_found_in_the_parsers_modules() -> None:
    from netconf import netplan_devices, rancher
    from storage import rules

    found = set(map(id, gen_compat.all_tables()))
    assert {id(rancher.IFACE), id(netplan_devices.DEFINITIONS["bonds"]), id(rules.STATE)} <= found


def _covered(path: Path_, rows: Iterable[tuple[Path_, Verdict]]) -> bool:
    """``path`` has a row, or sits under a row that stands for it (rejected, or warned whole)."""
    listed = dict(rows)
    if path in listed:
        return True
    return any(
        path[:n] in listed and listed[path[:n]].kind in ("rejected", "warned") for n in range(1, len(path))
    )


def test_every_key_of_each_formats_own_list_is_in_the_document() -> None:
    judge = Judge()
    rancher = gen_compat.rancheros_keys()
    assert ("rancher", "docker", "engine") in rancher and ("rancher", "state", "mdadm_scan") in rancher
    assert ("rancher", "network", "interfaces", "NAME", "bond_opts") in rancher
    assert ("write_files", ITEM, "container") in rancher
    rows = gen_compat.rancheros_rows(judge)
    assert all(_covered(path, rows) for path in rancher)

    cloud = gen_compat.cloud_init_keys()
    assert len([p for p in cloud if len(p) == 1]) > 90 and ("write_files", ITEM, "source") in cloud
    rows = gen_compat.cloud_init_rows(judge)
    assert all(_covered(path, rows) for path in cloud)

    netplan = gen_compat.netplan_keys()
    paths = {k.path for k in netplan}
    assert {
        ("dhcp4-overrides", "use-dns"),
        ("dhcp6-overrides", "use-dns"),
        ("gateway4",),
        ("gateway6",),
    } <= paths
    assert {("parameters", "ageing-time"), ("parameters", "aging-time"), ("routes", "on-link")} <= paths
    assert gen_compat.netplan_device_types()[:3] == ["ethernets", "modems", "wifis"]
    rows_np = gen_compat.netplan_rows(judge)
    shown = {row.path for row in rows_np}
    top_warned = {
        row.path[0] for row in rows_np if row.verdicts[0][0] == "" and row.verdicts[0][1].kind != "applied"
    }
    for key in netplan:
        skipped = key.types is not None and key.types and set(key.types) <= top_warned
        assert key.path in shown or skipped or any(key.path[:n] in shown for n in range(1, len(key.path))), (
            key
        )

    v1 = gen_compat.network_config_v1_keys()
    assert set(v1) == {"", "physical", "bond", "bridge", "vlan", "nameserver", "route"}
    assert ("params", "bond-miimon") in v1["bond"] and ("subnets", ITEM, "routes", ITEM, "gateway") in v1[
        "vlan"
    ]
    for kind, rows_v1 in gen_compat.v1_rows(judge).items():
        assert all(_covered(path, rows_v1) for path in v1[kind]), kind


def test_the_document_lists_the_three_verdicts_with_what_corral_does(built: tuple[str, Judge]) -> None:
    text = built[0]
    for line in (
        "| `rancher.docker.engine` | warned | corral's user dockerd is Debian's docker.io;",
        "| `rancher.network.interfaces.NAME.dhcp` | applied | as [`corral.network.interfaces.NAME.dhcp`]"
        "(networking.md)",
        "| `rancher.state.dev` | applied | as [`corral.state.dev`](storage.md)",
        "| `rancher.autoformat` | warned | RancherOS's autoformat containers",
        "| `rancher.state.wait` | warned | RancherOS's boolean is ignored: corral.state.wait is a number of "
        "seconds",
        "| `domain` | `network_dns` | rejected | RancherOS's netconf never had it; corral names `search` "
        "instead |",
        "| `timezone` | warned | corral runs in UTC |",
        "| `wifis` | warned | not implemented; Wi-Fi links are not set up",
        "| `routes[].mtu` | warned | route option 'mtu' is not implemented",
        "| `parameters.mode` | applied |",
    ):
        assert line in text, line
    for heading in ("## RancherOS", "## cloud-init", "## netplan", "## cloud-init network-config v1"):
        assert f"\n{heading}\n" in text


# -- the verdicts are the config store's ---------------------------------------------------------------------

SAMPLE = {"<id>": "eth0", "NAME": "eth0", "<address>": "10.0.0.2/24"}


def _nest(path: Path_, value: Any) -> Any:
    """The config that sets ``path`` to ``value``: a list for ``[]``, a sample name for a placeholder."""
    for seg in reversed(path):
        value = [value] if seg == ITEM else {SAMPLE.get(seg, seg): value}
    return value


def _names(problem: ConfigError, path: Path_) -> bool:
    """The problem's key is ``path`` as the store writes it (``a.b[0].c``, the placeholders' samples; one
    spelling of ``rancher.`` or ``corral.``)."""
    want = ".".join(SAMPLE.get(seg, seg) for seg in path if seg != ITEM)
    return _corral(problem.key.replace("[0]", "")) == _corral(want)


def _corral(key: str) -> str:
    """``rancher.`` is ``corral.``: a domain's problems are named the one way, the store's the other."""
    return "corral." + key.removeprefix("rancher.") if key.startswith("rancher.") else key


def _check(store: ConfigStore, config: dict[str, Any], path: Path_, verdict: Verdict) -> None:
    """The store's verdict on ``config`` is ``verdict``, on the key ``path``."""
    result = store.verdict(yaml.safe_dump(config), "probe.yml")
    if verdict.kind == "warned":
        assert not [e for e in result.errors if _names(e, path)], (path, result.errors)
        assert any(_names(w, path) and verdict.note in w.message for w in result.warnings), (
            path,
            verdict,
            result.warnings,
        )
    elif verdict.kind == "rejected":
        assert any(_names(e, path) for e in result.errors), (path, result.errors)


def test_rancheros_and_cloud_init_verdicts_are_the_stores(store: ConfigStore) -> None:
    judge = Judge()
    checked = 0
    typed = gen_compat.rancheros_types()
    samples: dict[str | None, Any] = {"boolean": True, "integer": 1, "string": "x"}
    for path, verdict in [*gen_compat.rancheros_rows(judge), *gen_compat.cloud_init_rows(judge)]:
        if verdict.kind != "applied":  # RancherOS's own kind of value, where it says one
            _check(store, _nest(path, samples.get(typed.get(path), {"some": "value"})), path, verdict)
            checked += 1
    assert checked > 150


def test_netplan_verdicts_are_the_stores(store: ConfigStore) -> None:
    checked = 0
    for row in gen_compat.netplan_rows(Judge()):
        for device, verdict in row.verdicts:
            if verdict.kind == "applied":
                continue
            path = row.where
            full = ("network", *((device, "<id>") if device else ()), *path)
            named = full
            if ("netplan", path) in gen_compat.BY_CODE:  # the parser names the address it warns about
                named = full[: full.index("<address>")]
            _check(store, _nest(full, {"some": "value"} if path[-1] != "lifetime" else 0), named, verdict)
            checked += 1
    assert checked > 40


def test_network_config_v1_verdicts_are_the_stores(store: ConfigStore) -> None:
    checked = 0
    for kind, rows in gen_compat.v1_rows(Judge()).items():
        if not kind:
            continue
        for path, verdict in rows:
            if verdict.kind == "applied":
                continue
            entry: dict[str, Any] = {"type": kind, "name": "eth0"}
            if path[0] == "subnets":  # subnets[].KEY, subnets[].routes[].KEY
                subnet: dict[str, Any] = {"type": "static", "address": "10.0.0.2/24"}
                if len(path) == 3:
                    subnet[path[2]] = "10.0.0.255"
                else:
                    subnet["routes"] = [{"network": "10.1.0.0/16", "gateway": "10.0.0.1", path[4]: "x"}]
                entry["subnets"] = [subnet]
                key: Path_ = ("config", "0", *("0" if seg == ITEM else seg for seg in path))
            elif path[0] == "params":
                entry["params"] = {path[1]: "1"}
                key = ("config", "0", *path)
            else:
                entry[path[0]] = "x"
                key = ("config", "0", *path)
            result = store.verdict(
                yaml.safe_dump({"network": {"version": 1, "config": [entry]}}), "probe.yml"
            )
            want = "network." + ".".join(key)
            problems = result.warnings if verdict.kind == "warned" else result.errors
            assert any(
                p.key.replace("[", ".").replace("]", "") == want and verdict.note in p.message
                for p in problems
            ), (kind, path, verdict, problems)
            checked += 1
    assert checked >= 20
