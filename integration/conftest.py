"""Fixtures for tests against real components: network namespaces, a private dockerd, the sandboxed PID 1.

Isolation rules (docs/testing.md): nothing a test does may change the host's own network namespace, its
docker, or leave a namespace, process, mount, cgroup or directory behind. ``_host_untouched`` checks the
host's links, addresses, routes, rules and forwarding sysctls around the whole session.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.dockerd import Dockerd, dockerd_factory, unavailable_reason
from integration.netns import (
    NetNS,
    host_net_snapshot,
    list_netns,
    netns_factory,
    require_root,
    sweep_stale,
    unavailable,
    unique_name,
)

DOCKER_FIXTURES = frozenset({"dockerd", "make_dockerd"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if DOCKER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.docker)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("docker") is not None:
        reason = unavailable_reason()
        if reason:
            unavailable(reason)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """On a failure, attach the tail of each private dockerd's log to the report."""
    report = yield
    if report.failed:
        for d in getattr(item, "_corral_dockerds", ()):
            report.sections.append((f"dockerd log ({d.root})", d.log_tail(60)))
        for value in getattr(item, "funcargs", {}).values():  # guests (integration/guest.py): serial logs
            if hasattr(value, "report_sections"):
                report.sections.extend(value.report_sections())
    return report


@pytest.fixture(scope="session", autouse=True)
def _host_untouched() -> Iterator[None]:
    """Fail the session if the host's network namespace changed or test namespaces were left behind."""
    if os.geteuid() != 0:
        yield
        return
    sweep_stale()  # namespaces of earlier runs that were killed before their teardown
    before = host_net_snapshot()
    yield
    ours = unique_name().rsplit("-", 1)[0] + "-"
    left = [n for n in list_netns() if n.startswith(ours)]
    after = host_net_snapshot()
    changed = {k: (before[k], after.get(k)) for k in before if before[k] != after.get(k)}
    assert not left, f"network namespaces left behind: {left}"
    assert not changed, f"the host's network changed during the tests: {changed}"


@pytest.fixture
def make_netns() -> Iterator[Callable[..., NetNS]]:
    """``make_netns(name=None) -> NetNS``: new namespaces with ``lo`` up, all deleted after the test."""
    require_root()
    with netns_factory() as make:
        yield make


@pytest.fixture
def netns(make_netns: Callable[..., NetNS]) -> NetNS:
    """One new network namespace (``corral-test-<pid>-<random>``) with ``lo`` up."""
    return make_netns()


@pytest.fixture
def make_dockerd(
    request: pytest.FixtureRequest, make_netns: Callable[..., NetNS]
) -> Iterator[Callable[..., Dockerd]]:
    """``make_dockerd(netns=None, *, load_image=True, bridge=..., bridge_cidr=..., iptables=True,
    extra_args=()) -> Dockerd``: private daemons, each in its own namespace unless one is given."""
    reason = unavailable_reason()
    if reason:
        unavailable(reason)
    started: list[Dockerd] = []
    request.node._corral_dockerds = started

    with dockerd_factory(make_netns) as make:

        def make_and_record(*args: Any, **kwargs: Any) -> Dockerd:
            d = make(*args, **kwargs)
            started.append(d)
            return d

        yield make_and_record


@pytest.fixture
def dockerd(make_dockerd: Callable[..., Dockerd]) -> Dockerd:
    """A private dockerd in its own network namespace, with ``corral-test/busybox:latest`` loaded."""
    return make_dockerd()


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Any]:
    """``sandbox(config=None, cmdline="", ...) -> Sandbox``: the supervisor as a real PID 1 (see
    integration/sandbox.py); every sandbox is killed after the test."""
    require_root()
    from integration.sandbox import sandbox_factory  # imported here: it needs the supervisor package

    yield from sandbox_factory(tmp_path)


@pytest.fixture(scope="session")
def guest_image() -> Path:
    """The OS image's build output (``python -m image build``, seconds from cache); skipped (failed under
    CI=true) when QEMU or the image cannot be had."""
    from integration import guest

    reason = guest.unavailable_reason()
    if reason:
        unavailable(reason)
    out, why = guest.build_image()
    if out is None:
        unavailable(f"the OS image could not be built: {why}", "the build itself failed; its output is above")
    return out


@pytest.fixture(scope="session")
def guest_ssh_key(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """An ed25519 key pair the guest tests log in with (passed in the guests' ssh_authorized_keys). With
    ``CORRAL_INSTALLED_DISK=DIR``, the key that disk was installed with (``DIR/ssh``): its config has it."""
    from integration import guest, installed

    given = os.environ.get("CORRAL_INSTALLED_DISK")
    if given and (Path(given) / installed.KEY_DIR).is_dir():
        return guest.make_ssh_key(Path(given) / installed.KEY_DIR)
    return guest.make_ssh_key(tmp_path_factory.mktemp("guest-ssh"))


@pytest.fixture
def make_guest(guest_image: Path, guest_ssh_key: Any, tmp_path: Path) -> Iterator[Any]:
    """``make_guest(GuestSpec(...), name=None) -> Guest``: the OS image booted in QEMU to "ready" (hard
    timeout, one retry); stopped after the test; serial logs attached to a failed test's report."""
    from integration import guest

    with guest.guest_factory(tmp_path, guest_ssh_key, guest_image) as factory:
        yield factory


@pytest.fixture(scope="session")
def installed_disk(guest_image: Path, guest_ssh_key: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A disk ``corral install`` made from the live OS (integration/installed.py): a qcow2 base that
    tests boot through overlays (``installed_disk.overlay(path)``), with the outcome of the refused
    installs tried in the same live boot. One install per session: every test that needs an installed
    machine (install, upgrade, rollback) shares it."""
    from integration import guest, installed

    given = os.environ.get("CORRAL_INSTALLED_DISK")
    if given:  # an earlier session's (integration/installed.py): boot it again, no live install
        return installed.load_installed_disk(Path(given))
    iso, why = guest.build_iso(guest_image)
    if iso is None:
        unavailable(f"the ISO could not be made: {why}", "the ISO build itself failed; its output is above")
    return installed.make_installed_disk(tmp_path_factory.mktemp("installed"), guest_image, iso,
                                         guest_ssh_key, boot_timeout=max(guest.BOOT_TIMEOUT, 600.0))
