"""A ``net: none`` system unit without libnetwork (units/etc_files.py, units/spec.py): its create body has
``NetworkDisabled`` and binds of the hosts and resolv.conf corral writes for it (dockerd's own content),
its spare's too; user units and units of other networks keep dockerd's network; the files are written
before a create and once before a start."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from handlers.units.desired import DesiredUnits, with_etc_files
from tests.units_fakes import loaded_by_generation, svc, unit_of, units_of
from units.etc_files import HOSTS_TEXT, EtcFiles, hosts_text, resolv_text
from units.loader import build_units
from units.model import Unit
from units.spec import config_hash, create_body, spare_request
from units.unitfiles import parse_unit_text

# What the real dockerd (20.10) writes as /etc/hosts for a container of its `none` network (read with
# `docker exec C cat /etc/hosts` in a `--net none` container).
DOCKERD_NONE_HOSTS = (
    "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
)


def none_unit(**extra: object) -> Unit:
    return replace(unit_of("web:\n  image: busybox\n  net: none\n", "web"), etc_dir="/state/units-etc/web",
                   **extra)  # type: ignore[arg-type]


def test_a_none_unit_with_its_files_is_created_without_libnetwork() -> None:
    body = create_body(none_unit())
    assert body["NetworkDisabled"] is True
    assert body["HostConfig"]["NetworkMode"] == "none"  # what docker inspect shows, as before
    assert body["HostConfig"]["Binds"] == ["/state/units-etc/web/hosts:/etc/hosts:ro",
                                           "/state/units-etc/web/resolv.conf:/etc/resolv.conf:ro"]


def test_without_its_files_a_none_unit_keeps_dockerds_none_network() -> None:
    plain = replace(none_unit(), etc_dir=None)
    body = create_body(plain)
    assert "NetworkDisabled" not in body
    assert body["HostConfig"]["NetworkMode"] == "none"
    assert "Binds" not in body["HostConfig"]
    assert config_hash(plain) != config_hash(none_unit())  # the change recreates the container


def test_a_path_the_unit_binds_itself_is_left_to_it() -> None:
    u = unit_of("web:\n  image: busybox\n  net: none\n  volumes:\n    - /srv/hosts:/etc/hosts:ro\n", "web")
    body = create_body(replace(u, etc_dir="/state/units-etc/web"))
    assert body["HostConfig"]["Binds"] == ["/srv/hosts:/etc/hosts:ro",
                                           "/state/units-etc/web/resolv.conf:/etc/resolv.conf:ro"]


def test_the_spare_of_a_replace_unit_is_made_from_the_same_body() -> None:
    u = none_unit(replace=True)
    spare = spare_request(u)
    assert spare["NetworkDisabled"] is True
    assert spare["HostConfig"]["Binds"] == create_body(u)["HostConfig"]["Binds"]


def test_only_system_units_with_net_none_get_files() -> None:
    root = Path("/state/units-etc")
    got = with_etc_files(units_of(
        "a:\n  image: x\n  net: none\n"
        "b:\n  image: x\n  net: none\n  labels:\n    io.corral.scope: user\n"
        "c:\n  image: x\n  net: host\n"
        "d:\n  image: x\n  net: bridge\n"
        "e:\n  image: x\n  net: none\n  volumes_from: [c]\n"), root)
    assert got["a"].etc_dir == "/state/units-etc/a"
    assert got["b"].scope == "user" and got["b"].etc_dir is None  # the user dockerd cannot see the files
    assert got["c"].etc_dir is None and got["d"].etc_dir is None
    assert got["e"].etc_dir is None  # what it takes from c may bind /etc/hosts: dockerd's none network
    assert "NetworkDisabled" not in create_body(got["e"])
    for net in ("host", "bridge"):
        assert "NetworkDisabled" not in create_body(replace(got["c"], network_mode=net, etc_dir="/x"))
    plain = units_of("a:\n  image: x\n  net: none\n")
    assert with_etc_files(plain, None) == plain


def test_a_unit_joining_a_none_units_network_gets_nothing_of_its_own() -> None:
    """dockerd gives it the joined container's files (the paths of its binds on /etc/hosts and
    /etc/resolv.conf: integration/test_units_none.py); NetworkDisabled would give it a namespace."""
    got = with_etc_files(units_of("web:\n  image: x\n  net: none\npeer:\n  image: x\n  net: service:web\n"),
                         Path("/state/units-etc"))
    assert got["peer"].etc_dir is None
    body = create_body(got["peer"])
    assert "NetworkDisabled" not in body and "Binds" not in body["HostConfig"]


def test_desired_units_carry_their_files_directory(tmp_path: Path) -> None:
    services = {"web": svc(net="none"), "host": svc(net="host")}
    desired = DesiredUnits(loaded=loaded_by_generation(lambda: {"corral": {"services": services}}, lambda: 1),
                           etc_root=tmp_path / "units-etc")
    desired.load()
    assert desired.units["web"].etc_dir == str(tmp_path / "units-etc" / "web")
    assert desired.units["host"].etc_dir is None


def test_hosts_is_dockerds_for_a_container_without_an_address() -> None:
    assert hosts_text() == HOSTS_TEXT == DOCKERD_NONE_HOSTS


def test_resolv_conf_is_the_hosts_filtered_as_dockerd_filters_it() -> None:
    host = ("# made by the network handler\nsearch example.org\nnameserver 127.0.0.53\nnameserver ::1\n"
            "nameserver 2001:db8::53\nnameserver 192.0.2.53\noptions ndots:2\n")
    assert resolv_text(host) == ("# made by the network handler\nsearch example.org\nnameserver 192.0.2.53\n"
                                 "options ndots:2\n")
    # nothing left (or no file): Google's two, as libnetwork adds them
    assert resolv_text("nameserver 127.0.0.1\nsearch lan\n") == ("search lan\nnameserver 8.8.8.8\n"
                                                              "nameserver 8.8.4.4\n")
    assert resolv_text("") == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"


def test_files_are_written_before_a_create_and_once_before_starts(tmp_path: Path) -> None:
    host = tmp_path / "resolv.conf"
    host.write_text("nameserver 192.0.2.1\n")
    etc = EtcFiles(host)
    u = replace(none_unit(), etc_dir=str(tmp_path / "web"))

    async def run() -> None:
        await etc.ensure(u)  # a start with nothing written yet (PID 1 restarted): written
        assert (tmp_path / "web" / "hosts").read_text() == DOCKERD_NONE_HOSTS
        assert (tmp_path / "web" / "resolv.conf").read_text() == "nameserver 192.0.2.1\n"
        host.write_text("nameserver 192.0.2.2\n")
        await etc.ensure(u)  # a start (a restart): no I/O
        assert (tmp_path / "web" / "resolv.conf").read_text() == "nameserver 192.0.2.1\n"
        await etc.ensure(u, fresh=True)  # a create: the host's now
        assert (tmp_path / "web" / "resolv.conf").read_text() == "nameserver 192.0.2.2\n"
        await etc.ensure(replace(u, etc_dir=None))  # nothing to write
        await etc.ensure(None)

    asyncio.run(run())


def test_keys_that_would_change_the_files_are_errors_naming_the_key() -> None:
    for key, value in (("hostname", "web"), ("domainname", "example.org"), ("dns", "[192.0.2.53]"),
                       ("dns_search", "[example.org]"), ("extra_hosts", "['db:192.0.2.1']")):
        raws, errors = parse_unit_text(f"web:\n  image: busybox\n  net: none\n  {key}: {value}\n", "t.yml")
        _units, _graph, more = build_units(raws, {})
        messages = [str(e) for e in [*errors, *more]]
        assert any(f"web.{key}" in m and "unknown key" in m for m in messages), messages
