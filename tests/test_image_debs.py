"""image.debs: apt-cache output parsing, the OR-group/virtual choice, the closure walk and the lock file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from image.debs import (
    DebsError,
    Move,
    Package,
    PinsGone,
    Resolution,
    VersionsLookup,
    chain,
    choose,
    closure,
    format_lock,
    merged_path,
    parse_depends,
    parse_lock,
    parse_madison,
    parse_show,
    read_lock,
    request_hash,
    resolve,
    usr_merge,
)

DEPENDS = """\
docker.io
  PreDepends: init-system-helpers
  Depends: libc6
  Depends: libsystemd0
    libelogind0
  Depends: lsb-base
    sysvinit-utils
 |Depends: iptables
  Depends: nftables
  Depends: <awk>
    mawk
    gawk
  Recommends: ca-certificates
libc6
  Depends: libgcc-s1
"""


def test_parse_depends_groups_alternatives_and_providers() -> None:
    parsed = parse_depends(DEPENDS)
    assert parsed["docker.io"] == [["init-system-helpers"], ["libc6"], ["libsystemd0", "libelogind0"],
                                   ["lsb-base", "sysvinit-utils"], ["iptables", "nftables"], ["mawk", "gawk"]]
    assert parsed["libc6"] == [["libgcc-s1"]]


def test_choose_prefers_what_is_chosen_and_honours_exclude() -> None:
    assert choose(["iptables", "nftables"], set(), set()) == "iptables"
    assert choose(["iptables", "nftables"], {"nftables"}, set()) is None  # already satisfied
    assert choose(["lsb-base", "sysvinit-utils"], set(), {"lsb-base"}) is None  # excluded group
    assert choose([], set(), set()) is None


def test_closure_walks_depends_breadth_first_and_stops_at_excluded() -> None:
    graph = {"a": [["b"], ["x"]], "b": [["c", "d"]], "c": [["a"]], "x": [["y"]]}
    calls: list[list[str]] = []

    def lookup(names: object) -> dict[str, list[list[str]]]:
        batch = list(names)  # type: ignore[call-overload]
        calls.append(batch)
        return {n: graph.get(n, []) for n in batch}

    assert closure(["a"], exclude=["x"], depends=lookup) == ["a", "b", "c"]
    assert calls == [["a"], ["b"], ["c"]]  # one apt-cache call per level


def test_closure_names_an_unknown_package() -> None:
    with pytest.raises(DebsError, match="no such Debian package: nope"):
        closure(["nope"], depends=lambda names: {})


def test_parse_show_takes_the_candidate_stanza() -> None:
    text = ("Package: runc\nVersion: 1.1.5+ds1-1+deb12u1\nArchitecture: amd64\nDescription: x\n cont\n\n"
            "Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n")
    assert parse_show(text) == {"runc": Package("runc", "1.1.5+ds1-1+deb12u1", "amd64"),
                                "tzdata": Package("tzdata", "2024a-0+deb12u1", "all")}


def test_lock_round_trip_is_sorted_and_keeps_the_request() -> None:
    pkgs = [Package("zlib1g", "1:1.2.13.dfsg-1", "amd64"), Package("busybox-static", "1:1.35.0-4", "amd64")]
    text = format_lock(pkgs, "abc123")
    assert text.splitlines()[2:] == ["busybox-static 1:1.35.0-4 amd64", "zlib1g 1:1.2.13.dfsg-1 amd64"]
    assert parse_lock(text) == ("abc123", sorted(pkgs))


def test_lock_error_names_file_and_line() -> None:
    with pytest.raises(DebsError, match=r"packages.lock: line 2: expected 'name version arch'"):
        parse_lock("# request x\nbroken line here too\n", "packages.lock")


def _offered(table: dict[str, set[str]]) -> VersionsLookup:
    return lambda names: {n: table[n] for n in names if n in table}


def test_resolve_reads_a_lock_written_for_the_same_request(tmp_path: Path) -> None:
    lock = tmp_path / "packages.lock"
    pkgs = [Package("busybox-static", "1:1.35.0-4", "amd64")]
    lock.write_text(format_lock(pkgs, request_hash(["busybox-static"], ["dpkg"])))
    got = resolve(["busybox-static"], lock, exclude=["dpkg"],
                  versions=_offered({"busybox-static": {"1:1.35.0-4"}}))
    assert got == Resolution(pkgs, [])


GRAPH = {"linux-image-cloud-amd64": [["linux-image-6.1.0-57-cloud-amd64"]], "busybox-static": [],
         "linux-image-6.1.0-57-cloud-amd64": [], "linux-image-6.1.0-56-cloud-amd64": []}
NOW = {"busybox-static": Package("busybox-static", "1:1.35.0-4", "amd64"),
       "linux-image-cloud-amd64": Package("linux-image-cloud-amd64", "6.1.192-3", "amd64"),
       "linux-image-6.1.0-57-cloud-amd64": Package("linux-image-6.1.0-57-cloud-amd64", "6.1.192-3", "amd64")}
OLD = [Package("busybox-static", "1:1.35.0-4", "amd64"),
       Package("linux-image-6.1.0-56-cloud-amd64", "6.1.192-2", "amd64"),
       Package("linux-image-cloud-amd64", "6.1.192-2", "amd64")]
NAMES = ["busybox-static", "linux-image-cloud-amd64"]


def _resolve(lock: Path, refreshed: list[bool] | None = None, frozen: bool = False) -> Resolution:
    """resolve() with apt stood in for by GRAPH (depends), NOW (candidates and what the lists offer)."""
    def depends(names: Sequence[str]) -> dict[str, list[list[str]]]:
        return {n: GRAPH[n] for n in names}

    def refresh() -> bool:
        (refreshed if refreshed is not None else []).append(True)
        return True

    return resolve(NAMES, lock, frozen=frozen, depends=depends,
                   candidate=lambda names: [NOW[n] for n in names],
                   versions=_offered({n: {p.version} for n, p in NOW.items()}), refresh=refresh)


def test_a_pin_the_archive_dropped_moves_and_the_lock_is_rewritten(tmp_path: Path) -> None:
    """A kernel security update replaced 6.1.192-2 (and its ABI package): the pins move to what the
    archive has, the closure follows the new meta package, busybox keeps its pin, the lock is rewritten."""
    lock = tmp_path / "packages.lock"
    lock.write_text(format_lock(OLD, request_hash(NAMES)))
    refreshed: list[bool] = []
    got = _resolve(lock, refreshed)
    assert [str(m) for m in got.moves] == ["linux-image-6.1.0-56-cloud-amd64 6.1.192-2 -> (gone)",
                                           "linux-image-6.1.0-57-cloud-amd64 (new) -> 6.1.192-3",
                                           "linux-image-cloud-amd64 6.1.192-2 -> 6.1.192-3"]
    assert got.packages == sorted(NOW.values())
    assert read_lock(lock) == (request_hash(NAMES), sorted(NOW.values()))
    assert refreshed == [True]  # the lists were refreshed before a pin was called gone


def test_frozen_names_every_pin_gone_and_rewrites_nothing(tmp_path: Path) -> None:
    lock = tmp_path / "packages.lock"
    text = format_lock(OLD, request_hash(NAMES))
    lock.write_text(text)
    with pytest.raises(PinsGone) as caught:
        _resolve(lock, frozen=True)
    assert "linux-image-6.1.0-56-cloud-amd64 6.1.192-2" in str(caught.value)
    assert "linux-image-cloud-amd64 6.1.192-2" in str(caught.value)
    assert "busybox-static" not in str(caught.value)
    assert lock.read_text() == text


def test_stale_lists_refreshed_first_move_nothing(tmp_path: Path) -> None:
    """apt's lists are older than the lock: after the refresh they offer the pins, which stay."""
    lock = tmp_path / "packages.lock"
    pins = sorted(NOW.values())
    lock.write_text(format_lock(pins, request_hash(NAMES)))
    lists = {"stale": True}

    def versions(names: Sequence[str]) -> dict[str, set[str]]:
        return {} if lists["stale"] else {n: {NOW[n].version} for n in names}

    got = resolve(NAMES, lock, versions=versions, refresh=lambda: not lists.update(stale=False))
    assert got == Resolution(pins, [])


def test_frozen_refuses_a_lock_for_another_request_and_no_lock(tmp_path: Path) -> None:
    lock = tmp_path / "packages.lock"
    with pytest.raises(DebsError, match="no lock to build from"):
        _resolve(lock, frozen=True)
    lock.write_text(format_lock(OLD, "another"))
    with pytest.raises(DebsError, match="another package list"):
        _resolve(lock, frozen=True)


def test_parse_madison_keeps_binary_versions() -> None:
    text = ("linux-image-cloud-amd64 |  6.1.192-3 | http://deb.debian.org/debian-security "
            "bookworm-security/main amd64 Packages\n"
            "linux-image-cloud-amd64 |  6.1.176-1 | http://deb.debian.org/debian bookworm/main amd64 "
            "Packages\n"
            "linux-signed-amd64 | 6.1.176-1 | http://deb.debian.org/debian bookworm/main Sources\n")
    assert parse_madison(text) == {"linux-image-cloud-amd64": {"6.1.192-3", "6.1.176-1"}}


def test_chain_joins_two_resolutions_moves() -> None:
    first = [Move("a", "1", "2"), Move("b", "1", "2")]
    second = [Move("a", "2", "3"), Move("b", "2", "1"), Move("c", None, "1")]
    assert chain(first, second) == [Move("a", "1", "3"), Move("c", None, "1")]


def test_request_hash_ignores_order_but_not_content() -> None:
    assert request_hash(["a", "b"], ["x"]) == request_hash(["b", "a"], ["x"])
    assert request_hash(["a", "b"], ["x"]) != request_hash(["a", "b"], [])


def test_filename_escapes_the_epoch() -> None:
    assert Package("zlib1g", "1:1.2.13", "amd64").filename == "zlib1g_1%3a1.2.13_amd64.deb"


def test_merged_path() -> None:
    assert merged_path("./bin/ls") == "usr/bin/ls"
    assert merged_path("./lib64/ld-linux-x86-64.so.2") == "usr/lib64/ld-linux-x86-64.so.2"
    assert merged_path("./usr/sbin/runc") == "usr/sbin/runc"
    assert merged_path("./etc/binfmt") == "etc/binfmt"


def test_usr_merge_moves_and_links(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "sh").write_text("sh")
    (tmp_path / "usr" / "bin").mkdir(parents=True)
    (tmp_path / "usr" / "bin" / "env").write_text("env")
    (tmp_path / "lib" / "x86_64-linux-gnu").mkdir(parents=True)
    (tmp_path / "lib" / "x86_64-linux-gnu" / "libc.so.6").write_text("libc")
    usr_merge(tmp_path)
    assert (tmp_path / "bin").is_symlink() and str((tmp_path / "bin").readlink()) == "usr/bin"
    assert sorted(p.name for p in (tmp_path / "usr" / "bin").iterdir()) == ["env", "sh"]
    assert (tmp_path / "lib" / "x86_64-linux-gnu" / "libc.so.6").read_text() == "libc"
    assert not (tmp_path / "lib64").exists()  # nothing shipped there: no dangling link
    usr_merge(tmp_path)  # idempotent
    assert (tmp_path / "usr" / "bin" / "sh").read_text() == "sh"
