"""handlers/authorized_keys.py: ssh_authorized_keys rendered (pure) and written atomically, at boot and on
every config change, only when the file differs."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from handlers.authorized_keys import HEADER, AuthorizedKeysWriter, keys_path, needs_write, render
from handlers.runner import HandlerRunner
from supervisor.backoff import Backoff
from supervisor.bus import Bus
from supervisor.events import ConfigChanged
from supervisor.paths import Paths

ED = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGJ0ZXN0a2V5IGZvciBjb3JyYWwgdGVzdHMgb25seQ test@corral"
RSA = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 other@corral"


def test_render_one_key_per_line_trimmed_blank_entries_dropped() -> None:
    rendered = render({"ssh_authorized_keys": [f"  {ED}\n", "", "   ", RSA]})
    assert rendered.content == HEADER + f"{ED}\n{RSA}\n".encode()
    assert rendered.keys == 2 and rendered.refused == ()


def test_render_without_keys_is_an_empty_file() -> None:
    assert render({}).content == HEADER
    assert render({"ssh_authorized_keys": None}).content == HEADER


def test_render_refuses_an_entry_of_several_lines_and_names_it() -> None:
    smuggled = f'{ED}\ncommand="/bin/evil" {RSA}'
    rendered = render({"ssh_authorized_keys": [RSA, smuggled, 7]})
    assert rendered.content == HEADER + f"{RSA}\n".encode()
    assert rendered.refused == ("ssh_authorized_keys[1]: a public key is one line; this entry has several",
                                "ssh_authorized_keys[2]: expected a string, got int")


def test_needs_write_only_when_missing_or_different() -> None:
    assert needs_write(b"a", None)
    assert needs_write(b"a", b"b")
    assert not needs_write(b"a", b"a")


def test_keys_path_is_under_the_prefix(tmp_path: Path) -> None:
    assert keys_path(Paths.sandbox(tmp_path)) == tmp_path / "var/lib/corral/console/authorized_keys"
    assert keys_path(Paths()) == Path("/var/lib/corral/console/authorized_keys")


async def settle(runner: HandlerRunner) -> None:
    for _ in range(400):
        await asyncio.sleep(0.005)
        if runner.stats.state == "idle" and runner._sub.pending() == 0 and runner.stats.reconciles:
            return


async def test_written_at_start_and_on_each_config_change_only_when_different(tmp_path: Path) -> None:
    config: dict[str, Any] = {"ssh_authorized_keys": [ED]}
    bus = Bus()
    writer = AuthorizedKeysWriter(Paths.sandbox(tmp_path), lambda: config)
    runner = HandlerRunner(bus, writer, Backoff(cap=0.01))
    runner.start()
    try:
        await settle(runner)
        path = tmp_path / "var/lib/corral/console/authorized_keys"
        assert path.read_bytes() == HEADER + f"{ED}\n".encode()
        assert os.stat(path).st_mode & 0o777 == 0o644
        assert os.stat(path.parent).st_mode & 0o777 == 0o755
        assert writer.writes == 1

        bus.publish(ConfigChanged(generation=2, changed=("hostname",)))  # the keys did not change
        await settle(runner)
        # a change of another key does not even wake it (its config_keys)
        assert writer.writes == 1 and runner.stats.reconciles == 1 and runner.stats.skipped == 1

        config["ssh_authorized_keys"] = [RSA]
        bus.publish(ConfigChanged(generation=3, changed=("ssh_authorized_keys",)))
        await settle(runner)
        assert path.read_bytes() == HEADER + f"{RSA}\n".encode() and writer.writes == 2

        path.write_text("edited by hand\n")  # a resync puts it back
        runner.mark_dirty(full=True)
        await settle(runner)
        assert path.read_bytes() == HEADER + f"{RSA}\n".encode() and writer.writes == 3

        config.pop("ssh_authorized_keys")  # keys removed from the config: they stop working
        bus.publish(ConfigChanged(generation=4, changed=("ssh_authorized_keys",)))
        await settle(runner)
        assert path.read_bytes() == HEADER
        assert not list(path.parent.glob(".*.tmp"))
    finally:
        await runner.stop()
