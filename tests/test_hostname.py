"""handlers/hostname.py: the host name in the kernel, the host's /etc/hostname and /etc/hosts and the
console's copies; rendered (pure), planned (pure: the order that keeps the name resolvable), and kept by
the reconciler at start and on every config change, writing only what differs."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from blockbuster import BlockBuster

from handlers.hostname import (
    HOSTS_HEADER,
    LINGER,
    Files,
    HostnameKeeper,
    Kernel,
    Linger,
    SetKernelName,
    WriteFile,
    hostname_file,
    hosts_file,
    names_of,
    plan,
)
from handlers.runner import HandlerRunner
from supervisor.backoff import Backoff
from supervisor.bus import Bus
from supervisor.events import ConfigChanged
from supervisor.paths import Paths

FILES = Files.under(Paths.sandbox(Path("/p")))


def local_line(content: bytes) -> list[str]:
    """The names on the 127.0.1.1 line of a hosts file."""
    lines = [line.split() for line in content.decode().splitlines() if line.startswith("127.0.1.1")]
    assert len(lines) == 1, content
    return lines[0][1:]


def resolves(content: bytes, name: str) -> bool:
    """What a resolver reading ``content`` as /etc/hosts does with ``name`` (sudo looks its host up)."""
    for line in content.decode().splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) > 1 and name in fields[1:]:
            return True
    return False


def test_files_are_under_the_prefix() -> None:
    assert Files.under(Paths()) == Files(Path("/etc/hosts"), Path("/etc/hostname"),
                                         Path("/var/lib/corral/console/hosts"),
                                         Path("/var/lib/corral/console/hostname"))
    assert FILES.hosts == Path("/p/etc/hosts")
    assert FILES.console_hosts == Path("/p/var/lib/corral/console/hosts")


def test_hosts_file_names_localhost_and_the_host() -> None:
    content = hosts_file("edge-1")
    assert content.startswith(HOSTS_HEADER.encode())
    assert content.decode().splitlines()[1:] == [
        "127.0.0.1\tlocalhost", "127.0.1.1\tedge-1", "::1\tlocalhost ip6-localhost ip6-loopback",
        "ff02::1\tip6-allnodes", "ff02::2\tip6-allrouters"]
    assert resolves(content, "edge-1") and resolves(content, "localhost")
    assert hostname_file("edge-1") == b"edge-1\n"


def test_a_full_name_is_listed_with_its_short_one() -> None:
    assert names_of("edge-1.example.com") == ["edge-1.example.com", "edge-1"]
    assert names_of("edge-1") == ["edge-1"]
    assert local_line(hosts_file("edge-1.example.com")) == ["edge-1.example.com", "edge-1"]


def test_the_bridge_names_the_old_name_too_unless_it_cannot_stand_in_a_hosts_line() -> None:
    assert local_line(hosts_file("new", also="old.lan")) == ["new", "old.lan", "old"]
    assert local_line(hosts_file("new.lan", also="new")) == ["new.lan", "new"]  # no name twice
    assert local_line(hosts_file("new", also="(none)")) == ["new", "(none)"]  # the kernel's first name
    for odd in ("", "two words", "x#comment", "tab\there"):
        assert local_line(hosts_file("new", also=odd)) == ["new"], odd


def observed_final(name: str) -> dict[Path, bytes | None]:
    return {FILES.hosts: hosts_file(name), FILES.console_hosts: hosts_file(name),
            FILES.hostname: hostname_file(name), FILES.console_hostname: hostname_file(name)}


def test_plan_nothing_when_everything_names_it() -> None:
    assert plan("edge-1", "edge-1", observed_final("edge-1"), FILES) == []


def test_plan_first_boot_writes_every_missing_file_after_naming_the_kernel() -> None:
    steps = plan("edge-1", "(none)", dict.fromkeys(FILES.all()), FILES)
    bridge = hosts_file("edge-1", also="(none)")
    assert steps == [
        WriteFile(FILES.hosts, bridge), WriteFile(FILES.console_hosts, bridge),
        SetKernelName("edge-1", "(none)"),
        WriteFile(FILES.hosts, hosts_file("edge-1")), WriteFile(FILES.console_hosts, hosts_file("edge-1")),
        WriteFile(FILES.hostname, b"edge-1\n"), WriteFile(FILES.console_hostname, b"edge-1\n"),
    ]


def test_plan_a_rename_keeps_the_kernels_name_resolvable_at_every_step() -> None:
    steps = plan("new", "old", observed_final("old"), FILES)
    kernel = "old"
    hosts = {FILES.hosts: hosts_file("old"), FILES.console_hosts: hosts_file("old")}
    for step in steps:  # replay: after each step both hosts files name what the kernel says
        if isinstance(step, SetKernelName):
            kernel = step.name
        elif isinstance(step, Linger):
            continue
        elif step.path in hosts:
            hosts[step.path] = step.content
        assert all(resolves(content, kernel) for content in hosts.values()), step
    assert kernel == "new"
    assert hosts == {FILES.hosts: hosts_file("new"), FILES.console_hosts: hosts_file("new")}
    assert {s.path for s in steps if isinstance(s, WriteFile)} == set(FILES.all())


def test_plan_the_old_name_lingers_after_the_kernel_took_the_new_one() -> None:
    """sudo reads the kernel's name, then looks it up: a sudo that read "old" just before the change
    must still find it (under load the two were seconds apart in a guest: "unable to resolve host")."""
    steps = plan("new", "old", observed_final("old"), FILES)
    at = next(i for i, s in enumerate(steps) if isinstance(s, SetKernelName))
    assert steps[at + 1] == Linger(LINGER)
    assert all(resolves(s.content, "old") for s in steps[:at] if isinstance(s, WriteFile))
    assert not any(isinstance(s, Linger) for s in plan("new", "old", observed_final("old"), FILES, 0.0))


def test_plan_rewrites_only_a_file_that_differs() -> None:
    observed = observed_final("edge-1")
    observed[FILES.console_hosts] = b"127.0.0.1 localhost\n"  # edited by hand
    observed[FILES.hostname] = None  # removed
    assert plan("edge-1", "edge-1", observed, FILES) == [
        WriteFile(FILES.console_hosts, hosts_file("edge-1")), WriteFile(FILES.hostname, b"edge-1\n")]


class FakeKernel:
    """The kernel's name (a fake: the real sethostname is the sandbox's and the guest's, see
    integration/test_cli_sandbox.py and test_guest_os.py); records what the hosts files said at each set."""

    def __init__(self, name: str, files: Files) -> None:
        self.name = name
        self.files = files
        self.sets: list[tuple[str, list[str], list[str]]] = []

    def set(self, name: str) -> None:
        self.sets.append((name, local_line(self.files.hosts.read_bytes()),
                          local_line(self.files.console_hosts.read_bytes())))
        self.name = name

    def kernel(self) -> Kernel:
        return Kernel(get=lambda: self.name, set=self.set)


async def settle(runner: HandlerRunner) -> None:
    for _ in range(400):
        await asyncio.sleep(0.005)
        if runner.stats.state == "idle" and runner._sub.pending() == 0 and runner.stats.reconciles:
            return


async def test_kept_at_start_and_on_each_config_change(tmp_path: Path, blockbuster: BlockBuster) -> None:
    # The fake kernel reads the files to record what they said at each set: the test's own I/O.
    blockbuster.functions["io.BufferedReader.read"].can_block_in("tests/test_hostname.py", "set")
    config: dict[str, Any] = {"hostname": "first"}
    files = Files.under(Paths.sandbox(tmp_path))
    kernel = FakeKernel("(none)", files)
    keeper = HostnameKeeper(Paths.sandbox(tmp_path), lambda: config, kernel.kernel(), linger=0.01)
    bus = Bus()
    runner = HandlerRunner(bus, keeper, Backoff(cap=0.01))
    runner.start()
    try:
        await settle(runner)
        assert kernel.name == "first"
        assert kernel.sets == [("first", ["first", "(none)"], ["first", "(none)"])]  # named before it was set
        for path in (files.hosts, files.console_hosts):
            assert path.read_bytes() == hosts_file("first") and os.stat(path).st_mode & 0o777 == 0o644
        assert files.hostname.read_text() == files.console_hostname.read_text() == "first\n"
        writes = keeper.writes

        bus.publish(ConfigChanged(generation=2, changed=("ssh_authorized_keys",)))  # the name did not change
        await settle(runner)
        # a change of another key does not even wake it (its config_keys)
        assert keeper.writes == writes and len(kernel.sets) == 1 and runner.stats.reconciles == 1
        assert runner.stats.skipped == 1

        config["hostname"] = "edge-2.example.com"
        bus.publish(ConfigChanged(generation=3, changed=("hostname",)))
        await settle(runner)
        full = ["edge-2.example.com", "edge-2"]
        assert kernel.sets[-1] == ("edge-2.example.com", [*full, "first"], [*full, "first"])
        assert local_line(files.hosts.read_bytes()) == local_line(files.console_hosts.read_bytes()) == full
        assert files.hostname.read_text() == "edge-2.example.com\n"

        files.console_hosts.write_text("edited by hand\n")  # a resync puts it back, the kernel untouched
        runner.mark_dirty(full=True)
        await settle(runner)
        assert files.console_hosts.read_bytes() == hosts_file("edge-2.example.com") and len(kernel.sets) == 2
        assert not [*files.hosts.parent.glob(".*.tmp"), *files.console_hosts.parent.glob(".*.tmp")]
    finally:
        await runner.stop()


async def test_a_kernel_refusal_is_the_reconciles_failure_and_retried(tmp_path: Path) -> None:
    config = {"hostname": "edge"}
    refusals = [OSError(22, "Invalid argument")]
    names: list[str] = []

    def set_name(name: str) -> None:
        if refusals:
            raise refusals.pop()
        names.append(name)

    keeper = HostnameKeeper(Paths.sandbox(tmp_path), lambda: config, Kernel(get=lambda: "old", set=set_name),
                            linger=0.01)
    with pytest.raises(OSError, match="Invalid argument"):
        await keeper.reconcile(full=True)
    await keeper.reconcile(full=True)
    assert names == ["edge"]


async def test_no_name_in_the_config_changes_nothing(tmp_path: Path) -> None:
    def refuse(name: str) -> None:
        raise AssertionError(name)

    keeper = HostnameKeeper(Paths.sandbox(tmp_path), dict, Kernel(get=lambda: "old", set=refuse))
    await keeper.reconcile(full=True)
    assert not (tmp_path / "etc").exists()
