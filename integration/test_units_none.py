"""A `net: none` unit against the real system dockerd in the sandbox: created with NetworkDisabled (no
libnetwork sandbox), it starts, resolves `localhost` from the hosts file corral binds, has `lo` up with
127.0.0.1, has its hostname (dockerd's, its id's first 12 digits), and keeps all of it across a restart by
corral (its init killed), a `docker restart`, and in replace mode (the spare is made the same way); a
unit joining its network (`net: service:web`) has the same files, and so has one with a read-only root."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.sandbox import Sandbox
from integration.units_helpers import (
    EXPECTED_ERRORS,
    config,
    inspect,
    kill_unit,
    system_docker_on,
    unit,
    units,
    wait_for,
    wait_state,
    with_busybox,
)
from units.etc_files import HOSTS_TEXT

pytestmark = pytest.mark.docker


@pytest.fixture(autouse=True)
def _system_docker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    with system_docker_on(monkeypatch, tmp_path):
        yield


def sh(sb: Sandbox, name: str, *argv: str) -> str:
    return sb.cli("system-docker", "exec", name, *argv).stdout


def check_inside(sb: Sandbox, name: str) -> None:
    """What dockerd's none network gave the container, inside it."""
    info = inspect(sb, name)
    assert info["Config"]["NetworkDisabled"] is True
    assert info["HostConfig"]["NetworkMode"] == "none"
    assert info["NetworkSettings"]["SandboxID"] == ""  # no libnetwork sandbox
    assert sh(sb, name, "cat", "/etc/hosts") == HOSTS_TEXT
    ping = sh(sb, name, "ping", "-c1", "-W1", "localhost")
    assert "1 packets received" in ping and "127.0.0.1" in ping
    assert "nameserver" in sh(sb, name, "cat", "/etc/resolv.conf")
    hostname = info["Config"]["Hostname"]
    assert hostname == info["Id"][:12]
    assert sh(sb, name, "hostname").strip() == hostname
    assert sh(sb, name, "cat", "/etc/hostname").strip() == hostname
    lo = sh(sb, name, "ip", "addr", "show", "lo")
    assert ",UP" in lo and "inet 127.0.0.1/8" in lo
    assert len(sh(sb, name, "ip", "-o", "link").splitlines()) == 1  # lo alone


def test_a_none_unit_runs_without_libnetwork_and_resolves_localhost(sandbox: Any) -> None:
    sb: Sandbox = sandbox(config({"web": unit(restart="always"),
                                  "spare": unit(restart="always",
                                                labels={"io.corral.restart-mode": "replace"}),
                                  "peer": unit(net="service:web"),
                                  "ro": unit(read_only=True)}),
                          setup=with_busybox)
    sb.wait_ready(90)
    wait_state(sb, "web", "running")
    check_inside(sb, "web")
    check_inside(sb, "ro")  # a read-only root: the binds' mount points are made before it is
    # a unit in web's network: web's files (dockerd gives a joiner the joined container's HostsPath ...)
    wait_state(sb, "peer", "running")
    assert inspect(sb, "peer")["HostConfig"]["NetworkMode"] == f"container:{inspect(sb, 'web')['Id']}"
    assert sh(sb, "peer", "cat", "/etc/hosts") == HOSTS_TEXT
    assert "1 packets received" in sh(sb, "peer", "ping", "-c1", "-W1", "localhost")
    files = sb.paths.state_dir / "units-etc" / "web"
    assert (files / "hosts").read_text() == HOSTS_TEXT
    web = inspect(sb, "web")  # dockerd takes the binds' sources as the container's files
    assert (web["HostsPath"], web["ResolvConfPath"]) == (str(files / "hosts"), str(files / "resolv.conf"))
    assert sh(sb, "web", "cat", "/etc/resolv.conf") == (files / "resolv.conf").read_text()
    assert sh(sb, "web", "sh", "-c", "echo x >> /etc/hosts || echo read-only").strip() == "read-only"

    # corral's restart of the same container (its init killed)
    before = inspect(sb, "web")["Id"]
    kill_unit(sb, "web")
    wait_for("web restarted", lambda: units(sb)["web"]["restarts"] == 1
             and inspect(sb, "web")["State"]["Running"], 30)
    assert inspect(sb, "web")["Id"] == before
    check_inside(sb, "web")
    # docker's own restart
    sb.cli("system-docker", "restart", "-t", "0", "web")
    wait_for("web running again", lambda: inspect(sb, "web")["State"]["Running"], 30)
    check_inside(sb, "web")

    # replace mode: the spare is made from the same body and replaces the container
    wait_state(sb, "spare", "running")
    old = inspect(sb, "spare")["Id"]
    listing = ("system-docker", "ps", "-a", "--filter", "label=io.corral.unit=spare",
               "--format", "{{.Labels}}")
    wait_for("the spare made", lambda: "io.corral.spare=true" in sb.cli(*listing).stdout)
    wait_for("the inits watched", lambda: sb.request("status")["units"]["inits_watched"] >= 2)
    kill_unit(sb, "spare")
    wait_for("spare replaced", lambda: inspect(sb, "spare")["Id"] != old
             and inspect(sb, "spare")["State"]["Running"], 30)
    check_inside(sb, "spare")
    assert json.loads(sb.cli("system-docker", "network", "inspect", "none").stdout)[0]["Containers"] == {}
    assert sb.stop() == 0
    sb.assert_clean_journal(EXPECTED_ERRORS)
