"""write_files: the pure part (decoding, bounds, modes, owners, what is due) and the effect on a real
directory (atomic writes, append, mode and owner, a change at run time)."""

from __future__ import annotations

import base64
import gzip
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from handlers.cloudconfig.write_files import (
    MAX_FILE_BYTES,
    FileSpec,
    TooLarge,
    WriteFilesKeeper,
    decode,
    due,
    gunzip,
    parse_write_files,
    resolve_owner,
    write_file,
)
from supervisor.config.netsources import Retry
from supervisor.domain_checks import config_store
from supervisor.paths import Paths

PASSWD = "root:x:0:0:root:/root:/bin/sh\nalice:x:1234:1000::/home/alice:/bin/sh\n"
GROUP = "root:x:0:\nstaff:x:2345:alice\n"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def parse(*entries: dict[str, Any]) -> Any:
    return parse_write_files({"write_files": list(entries)}, "f.yml")


@pytest.mark.parametrize(("encoding", "content"), [
    (None, "hello\n"),
    ("text/plain", "hello\n"),
    ("b64", b64(b"hello\n")),
    ("base64", b64(b"hello\n")[:4] + "\n  " + b64(b"hello\n")[4:]),  # folded, as YAML blocks have it
    ("gz+b64", b64(gzip.compress(b"hello\n"))),
    ("gzip+base64", b64(gzip.compress(b"hel") + gzip.compress(b"lo\n"))),  # two gzip members
])
def test_every_encoding_cloud_init_spells(encoding: str | None, content: str) -> None:
    entry = {"path": "/etc/x", "content": content, **({"encoding": encoding} if encoding else {})}
    parsed = parse(entry)
    assert parsed.errors == () and parsed.files[0].content == b"hello\n"


def test_bad_content_is_a_warning_naming_the_entry_which_is_skipped() -> None:
    """cloud-init accepts such a config too, and fails only that file (its docs' example1 has a
    placeholder, "...", for content)."""
    parsed = parse({"path": "/a", "content": "!!not base64!!", "encoding": "b64"},
                   {"path": "/b", "content": b64(b"plain, not gzip"), "encoding": "gz+b64"},
                   {"path": "/c", "content": "CiMgVGhpcyBmaWxl...", "encoding": "b64"},
                   {"path": "/ok", "content": "fine"})
    assert parsed.errors == ()
    assert [(e.file, e.key) for e in parsed.warnings] == [("f.yml", "write_files[0].content"),
                                                          ("f.yml", "write_files[1].content"),
                                                          ("f.yml", "write_files[2].content")]
    assert "not base64" in parsed.warnings[0].message
    assert "not gzip data" in parsed.warnings[1].message
    assert parsed.warnings[0].message.endswith("the file is not written")
    assert [f.path for f in parsed.files] == ["/ok"]


def test_a_gzip_bomb_is_refused_without_inflating_it() -> None:
    bomb = gzip.compress(b"\0" * (MAX_FILE_BYTES + 1), compresslevel=9)
    assert len(bomb) < 20_000
    with pytest.raises(TooLarge):
        gunzip(bomb)
    parsed = parse({"path": "/bomb", "content": b64(bomb), "encoding": "gz+b64"})
    assert parsed.errors == () and parsed.files == ()
    assert parsed.warnings[0].key == "write_files[0].content"
    message = parsed.warnings[0].message
    assert f"more than {MAX_FILE_BYTES} bytes once gunzipped (the limit of one file)" in message
    assert gunzip(gzip.compress(b"x" * 100), limit=100) == b"x" * 100


def test_decoded_size_is_bounded() -> None:
    with pytest.raises(TooLarge):
        decode(b64(b"x" * 101), "b64", limit=100)
    with pytest.raises(TooLarge):
        decode("x" * 101, "text/plain", limit=100)


def test_a_gzip_bomb_in_a_config_file_is_a_clear_warning(tmp_path: Path) -> None:
    bomb = b64(gzip.compress(b"\0" * (MAX_FILE_BYTES * 4)))
    text = yaml.safe_dump({"write_files": [{"path": "/x", "encoding": "gzip+base64", "content": bomb}]})
    result = config_store(Paths.sandbox(tmp_path), "").verdict(text, "user-data")
    assert result.errors == []
    assert [(e.file, e.key) for e in result.warnings] == [("user-data", "write_files[0].content")]
    assert "once gunzipped" in result.warnings[0].message


ELF = b"\x7fELF\x02\x01\x01\x00\xff\xfe"


@pytest.mark.parametrize(("encoding", "content", "written"), [
    (None, ELF, ELF),  # cloud-init's doc/examples/cloud-config-write-files.txt: /bin/arch
    ("text/plain", ELF, ELF),
    ("gzip", gzip.compress(b"#!/bin/sh\necho hello world\n", mtime=0), b"#!/bin/sh\necho hello world\n"),
    ("gz", gzip.compress(ELF, mtime=0), ELF),
    ("b64", b64(ELF).encode(), ELF),  # the bytes are base64 text: cloud-init decodes them so
    ("gz+b64", b64(gzip.compress(ELF, mtime=0)).encode(), ELF),
])
def test_binary_content_is_the_files_bytes_as_cloud_init_writes_them(
    tmp_path: Path, encoding: str | None, content: bytes, written: bytes
) -> None:
    entry = {"path": "/bin/arch", "content": content, **({"encoding": encoding} if encoding else {})}
    text = yaml.safe_dump({"write_files": [entry]})  # PyYAML writes bytes as !!binary
    assert "!!binary" in text
    store = config_store(Paths.sandbox(tmp_path), "")
    result = store.verdict(text, "user-data")
    assert (result.errors, result.warnings) == ([], [])
    files = parse_write_files(result.config, "user-data").files
    assert [f.content for f in files] == [written]
    assert store.merge(text, "user-data") == []  # persisted as base64 text, which reads back the same
    assert store.load().ok
    assert [f.content for f in parse_write_files(store.current, "x").files] == [written]


def test_binary_that_is_not_base64_under_a_base64_encoding_is_a_warning(tmp_path: Path) -> None:
    text = yaml.safe_dump({"write_files": [{"path": "/x", "encoding": "b64", "content": ELF}]})
    result = config_store(Paths.sandbox(tmp_path), "").verdict(text, "user-data")
    assert result.errors == []
    assert [w.key for w in result.warnings] == ["write_files[0].content"]


def test_binary_elsewhere_is_a_short_error_naming_the_key(tmp_path: Path) -> None:
    text = "hostname: !!binary " + b64(b"\0" * 3000) + "\n"
    result = config_store(Paths.sandbox(tmp_path), "").verdict(text, "f.yml")
    assert [str(e) for e in result.errors] == [
        "f.yml: hostname: YAML read a !!binary value (3000 bytes): only write_files content can be binary; "
        "give text here (line 1)"
    ]


@pytest.mark.parametrize(("path", "fragment"), [
    ("/etc/../../x", "without '..'"),
    ("/etc/dir/", "names a directory"),
])
def test_paths_must_be_plain_absolute_file_paths(path: str, fragment: str) -> None:
    parsed = parse({"path": path, "content": "x"})
    assert parsed.errors[0].key == "write_files[0].path" and fragment in parsed.errors[0].message


def test_modes_owners_flags_and_defaults() -> None:
    parsed = parse({"path": "/a//b", "content": "x"},
                   {"path": "/c", "permissions": "0755", "owner": "alice:staff", "append": True,
                    "defer": True},
                   {"path": "/d", "permissions": 0o600, "owner": "alice"})
    a, c, d = parsed.files
    assert (a.path, a.mode, a.user, a.group, a.append, a.defer) == ("/a/b", 0o644, None, None, False, False)
    assert (c.mode, c.user, c.group, c.append, c.defer) == (0o755, "alice", "staff", True, True)
    assert c.content == b""
    assert (d.mode, d.user, d.group, d.key) == (0o600, "alice", None, "write_files[2]")


def test_container_entries_are_skipped_with_a_warning() -> None:
    parsed = parse({"path": "/x", "content": "x", "container": "console"}, {"path": "/y"})
    assert [f.path for f in parsed.files] == ["/y"]
    assert parsed.errors == ()
    assert [w.key for w in parsed.warnings] == ["write_files[0].container"]
    assert "'console'" in parsed.warnings[0].message and "skipped" in parsed.warnings[0].message


def test_the_schema_accepts_defer_and_container_and_validate_warns(tmp_path: Path) -> None:
    text = "write_files:\n- {path: /x, defer: true}\n- {path: /y, container: ntp}\n"
    result = config_store(Paths.sandbox(tmp_path), "").verdict(text, "f.yml")
    assert result.errors == []
    assert [(w.file, w.key) for w in result.warnings] == [("f.yml", "write_files[1].container")]


def test_owners_resolve_against_the_os_files() -> None:
    def spec(user: str | None, group: str | None = None) -> FileSpec:
        return FileSpec("write_files[0]", "/x", b"", user=user, group=group)

    assert resolve_owner(spec(None), PASSWD, GROUP) == (0, -1, [])
    assert resolve_owner(spec("alice", "staff"), PASSWD, GROUP) == (1234, 2345, [])
    assert resolve_owner(spec("root", "root"), "", "") == (0, 0, [])
    assert resolve_owner(spec("1000", "1001"), "", "") == (1000, 1001, [])
    uid, gid, warnings = resolve_owner(spec("mallory", "nogroup"), PASSWD, GROUP)
    assert (uid, gid) == (0, 0)
    assert warnings == ["user 'mallory' is unknown (no such name in /etc/passwd); root owns the file",
                        "group 'nogroup' is unknown (no such name in /etc/group); the file's group is root"]


def test_due_writes_each_entry_once_and_deferred_ones_last() -> None:
    now = FileSpec("write_files[0]", "/a", b"1")
    later = FileSpec("write_files[1]", "/b", b"2", defer=True)
    assert due((now, later), frozenset(), deferred_too=False) == [now]
    assert due((now, later), frozenset({now}), deferred_too=True) == [later]
    changed = FileSpec("write_files[0]", "/a", b"changed")
    assert due((changed, later), frozenset({now, later}), deferred_too=True) == [changed]


def test_write_file_is_atomic_with_mode_and_owner(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "dir" / "file"
    me, my_group = os.getuid(), os.getgid()
    write_file(target, FileSpec("k", "/f", b"one", mode=0o4750), me, my_group)
    assert target.read_bytes() == b"one"
    assert target.stat().st_mode & 0o7777 == 0o4750  # the mode is set after chown (which clears setuid)
    assert (target.parent.stat().st_mode & 0o777) == 0o755
    write_file(target, FileSpec("k", "/f", b"two", mode=0o600), me, -1)
    assert target.read_bytes() == b"two" and target.stat().st_mode & 0o7777 == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["file"]  # no temporary file left
    write_file(target, FileSpec("k", "/f", b"+three", append=True, mode=0o640), me, -1)
    assert target.read_bytes() == b"two+three" and target.stat().st_mode & 0o7777 == 0o640


async def test_keeper_writes_under_the_prefix_once_and_again_when_changed(tmp_path: Path) -> None:
    paths = Paths.sandbox(tmp_path)
    files = (FileSpec("write_files[0]", "/etc/a", b"a\n"),
             FileSpec("write_files[1]", "/etc/log", b"line\n", append=True),
             FileSpec("write_files[2]", "/etc/late", b"late\n", defer=True))
    current = list(files)
    keeper = WriteFilesKeeper(paths, lambda: tuple(current))
    await keeper.reconcile(full=True)
    assert (tmp_path / "etc/a").read_bytes() == b"a\n"
    assert not (tmp_path / "etc/late").exists()
    keeper.deferred_too = True
    await keeper.reconcile(full=True)
    await keeper.reconcile(full=True)
    assert (tmp_path / "etc/late").read_bytes() == b"late\n"
    assert (tmp_path / "etc/log").read_bytes() == b"line\n"  # appended once per boot
    current[0] = FileSpec("write_files[0]", "/etc/a", b"changed\n")
    (tmp_path / "etc/late").write_bytes(b"edited by hand\n")
    await keeper.reconcile(full=False)
    assert (tmp_path / "etc/a").read_bytes() == b"changed\n"
    assert (tmp_path / "etc/late").read_bytes() == b"edited by hand\n"  # unchanged entries stay as they are
    assert keeper.status() == {"written": 3, "failed": {}}


async def test_a_file_that_cannot_be_written_is_reported_and_the_others_are_written(tmp_path: Path) -> None:
    paths = Paths.sandbox(tmp_path)
    (tmp_path / "blocker").write_text("a file where a directory is wanted")
    files = (FileSpec("write_files[0]", "/blocker/x", b"x"), FileSpec("write_files[1]", "/ok", b"ok"))
    keeper = WriteFilesKeeper(paths, lambda: files)
    await keeper.reconcile(full=True)
    assert (tmp_path / "ok").read_bytes() == b"ok"
    assert list(keeper.status()["failed"]) == ["write_files[0]"]  # type: ignore[call-overload]


def test_all_contents_together_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import handlers.cloudconfig.write_files as module

    monkeypatch.setattr(module, "MAX_TOTAL_BYTES", 10)
    parsed = parse({"path": "/a", "content": "123456"}, {"path": "/b", "content": "123456"},
                   {"path": "/c", "content": "1234"})
    assert [f.path for f in parsed.files] == ["/a", "/c"]
    assert [w.key for w in parsed.warnings] == ["write_files[1]"]
    assert "more than 10 bytes (the limit of all of write_files)" in parsed.warnings[0].message


# -- source: {uri, headers} (cloud-init's doc/module-docs/cc_write_files/example6.yaml) ---------------------

FAST = Retry(attempts=2, timeout=2.0, pause=0.01)


class Artifacts(BaseHTTPRequestHandler):
    docs: dict[str, bytes] = {}
    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization")))
        body = self.docs.get(self.path)
        self.send_response(200 if body is not None else 404)
        data = body or b""
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def artifacts() -> Iterator[tuple[str, type[Artifacts]]]:
    handler = type("Handler", (Artifacts,), {"seen": [], "docs": {}})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()
    httpd.server_close()


def test_a_source_is_parsed_with_its_headers_and_whether_content_is_a_fallback() -> None:
    source = {"uri": "https://ci.example.com/hello", "headers": {"Authorization": "Basic QQ=="}}
    parsed = parse({"path": "/usr/bin/hello", "source": source, "permissions": "0755"},
                   {"path": "/b", "source": source, "content": "fallback\n"})
    assert (parsed.errors, parsed.warnings) == ((), ())
    first, second = parsed.files
    assert (first.source, first.headers, first.fallback) == (
        "https://ci.example.com/hello", (("Authorization", "Basic QQ=="),), False)
    assert (second.content, second.fallback) == (b"fallback\n", True)


def test_a_source_that_is_not_http_is_a_warning_saying_what_is_written_instead() -> None:
    parsed = parse({"path": "/a", "source": {"uri": "file:///etc/hosts"}, "content": "x"},
                   {"path": "/b", "source": {"uri": "ftp://h/x"}})
    assert [f.path for f in parsed.files] == ["/a"] and parsed.files[0].source is None
    assert [w.key for w in parsed.warnings] == ["write_files[0].source.uri", "write_files[1].source.uri"]
    assert parsed.warnings[0].message.endswith("the file is written from content")
    assert parsed.warnings[1].message.endswith("the file is not written (no content)")


def test_a_sourced_entry_waits_for_the_network_like_a_deferred_one() -> None:
    sourced = FileSpec("write_files[0]", "/a", b"", source="http://h/a")
    assert due((sourced,), frozenset(), deferred_too=False) == []
    assert due((sourced,), frozenset(), deferred_too=True) == [sourced]


def test_cloud_init_example6_is_accepted_and_its_authorization_header_is_a_secret(tmp_path: Path) -> None:
    text = (Path(__file__).parent / "compat_corpus/cloud-init/doc/module-docs/cc_write_files/example6.yaml"
            ).read_text()
    store = config_store(Paths.sandbox(tmp_path), "")
    result = store.verdict(text, "user-data")
    assert (result.errors, result.warnings) == ([], [])
    assert store.merge(text) == [] and store.load().ok
    assert "QWxhZGRpbjpvcGVuIHNlc2FtZQ==" not in str(store.export())
    assert "QWxhZGRpbjpvcGVuIHNlc2FtZQ==" not in store.cloud_config_path.read_text()


async def test_the_keeper_fetches_a_source_with_its_headers(
    tmp_path: Path, artifacts: tuple[str, type[Artifacts]]
) -> None:
    base, handler = artifacts
    handler.docs["/hello"] = ELF
    spec = FileSpec("write_files[0]", "/usr/bin/hello", b"", mode=0o755, source=f"{base}/hello",
                    headers=(("Authorization", "Basic QQ=="),), fallback=False)
    keeper = WriteFilesKeeper(Paths.sandbox(tmp_path), lambda: (spec,), retry=FAST)
    await keeper.reconcile(full=True)
    assert not (tmp_path / "usr/bin/hello").exists()  # not before the network is up
    keeper.deferred_too = True
    await keeper.reconcile(full=True)
    assert (tmp_path / "usr/bin/hello").read_bytes() == ELF
    assert (tmp_path / "usr/bin/hello").stat().st_mode & 0o777 == 0o755
    assert handler.seen == [("/hello", "Basic QQ==")]
    assert keeper.status() == {"written": 1, "failed": {}}


async def test_a_source_that_fails_falls_back_to_content_or_writes_nothing(
    tmp_path: Path, artifacts: tuple[str, type[Artifacts]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import handlers.cloudconfig.write_files as module

    base, handler = artifacts
    monkeypatch.setattr(module, "MAX_FILE_BYTES", 10)
    handler.docs["/big"] = b"x" * 11
    files = (FileSpec("write_files[0]", "/gone", b"from content\n", source=f"{base}/gone"),
             FileSpec("write_files[1]", "/none", b"", source=f"{base}/gone", fallback=False),
             FileSpec("write_files[2]", "/big", b"small\n", source=f"{base}/big"),
             FileSpec("write_files[3]", "/down", b"down\n", source="http://127.0.0.1:9/x"))
    keeper = WriteFilesKeeper(Paths.sandbox(tmp_path), lambda: files, retry=FAST)
    keeper.deferred_too = True
    await keeper.reconcile(full=True)
    assert (tmp_path / "gone").read_bytes() == b"from content\n"  # HTTP 404
    assert not (tmp_path / "none").exists()
    assert (tmp_path / "big").read_bytes() == b"small\n"  # over the limit of one file
    assert (tmp_path / "down").read_bytes() == b"down\n"  # nothing listens there
    assert keeper.status()["failed"] == {"write_files[1]": f"/none: {base}/gone: HTTP 404"}
