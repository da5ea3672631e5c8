"""``write_files``: files written from the config, as cloud-init and RancherOS write them.

Pure: ``parse_write_files`` turns the config's entries into ``FileSpec``s (content decoded: plain text,
``b64``/``base64``, ``gz``/``gzip``, ``gz+b64``/``gzip+base64``; the mode; the owner's names), bounded
(``MAX_FILE_BYTES`` decoded and gunzipped per file, ``MAX_TOTAL_BYTES`` for all: a gzip bomb is
refused: a warning naming the entry, which is skipped, as is content that cannot be decoded;
cloud-init too accepts such a config and fails only that file); ``resolve_owner`` finds the owner's
ids in the OS's ``/etc/passwd`` and ``/etc/group`` (an unknown name is a warning, and root is used);
``due`` says which entries are still to write. Effect: ``write_file`` (a thread's work: atomically,
through ``supervisor.atomic``, unless ``append``), driven by ``WriteFilesKeeper``.

When: entries without ``defer`` in the boot phase ``write-files`` (after ``bootcmd``, before the network
and units), deferred ones once the boot phases are done (cloud-init's ``write_files_deferred``). Once per
boot; at run time, an entry that is new or changed (any of its fields) is written at once (unchanged
ones are not written again, an ``append`` entry that changed appends again); removing an entry leaves the
file. RancherOS's ``container:`` (write into a system container) has no equivalent here: the entry is
skipped, with a warning.

cloud-init's ``source: {uri, headers}``: the content is fetched from ``uri`` (http or https) with
netsources' ``Http`` (the datasources' fetcher: bounded tries, each with a timeout, no proxy), at most
``MAX_FILE_BYTES``, once the boot phases are done (the network is up, as cloud-init fetches in its network
stage), like a deferred entry; when the fetch fails the file is written from ``content`` (decoded as
above) or, with no ``content``, not at all, a warning either way, as cloud-init does."""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import posixpath
import urllib.error
import urllib.parse
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import structlog

from supervisor.atomic import fsync_directory, write_atomic
from supervisor.config.check import describe
from supervisor.config.errors import ConfigError, Problems, Source
from supervisor.config.netsources import Http, NotThere, Retry, check_url
from supervisor.events import ConfigChanged, Event
from supervisor.paths import Paths

log = structlog.get_logger("handlers.write_files")

CONFIG_KEY = "write_files"
MAX_FILE_BYTES = 8 << 20
"""The most one entry's content may be once decoded and gunzipped (8 MiB)."""
MAX_TOTAL_BYTES = 32 << 20
"""The most all entries' contents may be together (32 MiB): PID 1 holds them."""
DEFAULT_MODE = 0o644
PLAIN, B64, GZ, GZ_B64 = "text/plain", "b64", "gz", "gz+b64"
ENCODINGS = {"text/plain": PLAIN, "b64": B64, "base64": B64, "gz": GZ, "gzip": GZ,
             "gz+b64": GZ_B64, "gzip+base64": GZ_B64}
SOURCE_RETRY = Retry(attempts=3, timeout=5.0, pause=1.0)
"""How hard a ``source`` is fetched: 3 tries of 5 s, 1 s then 2 s apart (cloud-init: 3 retries, 3 s apart)."""
CONTAINER_WARNING = ("RancherOS wrote this file into its system container {name!r}; corral has no "
                     "such container: the entry is skipped (leave out 'container' to write it on the host)")


@dataclass(frozen=True)
class FileSpec:
    """One entry, checked and decoded. ``user``/``group`` are names or ids as written (None: root's,
    and for the group: left as it is, root's for a new file)."""

    key: str  # write_files[2]
    path: str  # absolute, normalised
    content: bytes
    mode: int = DEFAULT_MODE
    user: str | None = None
    group: str | None = None
    append: bool = False
    defer: bool = False
    source: str | None = None  # an http(s) URL to fetch the content from; ``content`` is the fallback
    headers: tuple[tuple[str, str], ...] = ()  # the request's headers (may hold secrets: never logged)
    fallback: bool = True  # whether ``content`` was given: without it a failed fetch writes nothing


@dataclass(frozen=True)
class Parsed:
    files: tuple[FileSpec, ...]
    errors: tuple[ConfigError, ...]
    warnings: tuple[ConfigError, ...]


class TooLarge(ValueError):
    pass


def gunzip(data: bytes, limit: int = MAX_FILE_BYTES) -> bytes:
    """``data`` gunzipped (every gzip member), refused once the output would pass ``limit`` bytes: never
    more than that is held, whatever the input claims."""
    out = bytearray()
    rest = data
    while rest:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += inflater.decompress(rest, limit + 1 - len(out))
        except zlib.error as exc:
            raise ValueError(f"not gzip data ({exc})") from None
        if len(out) > limit:
            raise TooLarge(f"more than {limit} bytes once gunzipped (the limit of one file)")
        if not inflater.eof:
            raise ValueError("gzip data cut short")
        rest = inflater.unused_data.lstrip(b"\0")
    return bytes(out)


def decode(content: str, encoding: str, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes ``content`` stands for in ``encoding`` (one of ``ENCODINGS``' values)."""
    if encoding in (B64, GZ_B64):
        text = "".join(content.split())
        if len(text) // 4 * 3 > limit + 3 and encoding == B64:
            raise TooLarge(f"more than {limit} bytes once decoded (the limit of one file)")
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"not base64 ({exc})") from None
    else:
        data = content.encode("utf-8", errors="surrogateescape")
    if encoding in (GZ, GZ_B64):
        data = gunzip(data, limit)
    if len(data) > limit:
        raise TooLarge(f"{len(data)} bytes: more than {limit} (the limit of one file)")
    return data


def parse_mode(value: Any) -> int | None:
    """The schema's file mode (``"0644"``, ``"0o644"``, ``420``) as a number; None when absent."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip().removeprefix("0o")
    return int(text, 8)


def parse_write_files(config: Mapping[str, Any], source: Source = "config") -> Parsed:
    """Every ``write_files`` entry of a whole config (the schema has checked their structure)."""
    problems = Problems(source)
    entries = config.get(CONFIG_KEY) or []
    files: list[FileSpec] = []
    total = 0
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        where: tuple[str | int, ...] = (CONFIG_KEY, index)
        if not isinstance(entry, Mapping):
            problems.error(where, f"expected a map, got {describe(entry)}")
            continue
        if entry.get("container"):
            problems.warn((*where, "container"), CONTAINER_WARNING.format(name=str(entry["container"])))
            continue
        spec = _entry(entry, where, problems)
        if spec is None:
            continue
        if total + len(spec.content) > MAX_TOTAL_BYTES:
            problems.warn(where, f"the files' contents add up to more than {MAX_TOTAL_BYTES} bytes "
                                 "(the limit of all of write_files): the file is not written")
            continue
        total += len(spec.content)
        files.append(spec)
    return Parsed(tuple(files), tuple(problems.errors), tuple(problems.warnings))


def _entry(entry: Mapping[str, Any], where: tuple[str | int, ...], problems: Problems) -> FileSpec | None:
    raw = str(entry.get("path", ""))
    path = posixpath.normpath(raw)
    if not raw.startswith("/") or ".." in raw.split("/"):
        problems.error((*where, "path"), f"{raw!r}: an absolute path without '..' is wanted")
        return None
    if path == "/" or raw.endswith("/"):
        problems.error((*where, "path"), f"{raw!r} names a directory: give the file's path")
        return None
    encoding = ENCODINGS.get(str(entry.get("encoding") or PLAIN).lower(), PLAIN)
    try:
        content = decode(str(entry.get("content") or ""), encoding)
    except ValueError as exc:  # cloud-init too accepts the config and fails only this file
        problems.warn((*where, "content"), f"cannot be decoded as {entry.get('encoding')}: {exc}; "
                                           "the file is not written")
        return None
    user: str | None = None
    group: str | None = None
    if entry.get("owner"):
        user, _, rest = str(entry["owner"]).partition(":")
        group = rest or None
    mode = parse_mode(entry.get("permissions"))
    spec = FileSpec(key=problems.key(where), path=path, content=content,
                    mode=DEFAULT_MODE if mode is None else mode, user=user, group=group,
                    append=bool(entry.get("append", False)), defer=bool(entry.get("defer", False)))
    source = entry.get("source")
    if not isinstance(source, Mapping):
        return spec
    fallback = entry.get("content") is not None
    uri = str(source.get("uri", ""))
    try:
        check_url(uri, "a write_files source")
    except ValueError as exc:
        instead = "the file is written from content" if fallback else "the file is not written (no content)"
        problems.warn((*where, "source", "uri"), f"{exc}: only those are fetched; {instead}")
        return spec if fallback else None
    headers = source.get("headers")
    pairs = tuple((str(k), str(v)) for k, v in headers.items()) if isinstance(headers, Mapping) else ()
    return replace(spec, source=uri, headers=pairs, fallback=fallback)


# -- owners --------------------------------------------------------------------------------------------


def _ids(text: str) -> dict[str, tuple[int, int]]:
    """name -> (id, primary group) from /etc/passwd (or name -> (gid, gid) from /etc/group)."""
    out: dict[str, tuple[int, int]] = {}
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[2].isdigit():
            gid = int(fields[3]) if len(fields) > 3 and fields[3].isdigit() else int(fields[2])
            out.setdefault(fields[0], (int(fields[2]), gid))
    return out


def resolve_owner(spec: FileSpec, passwd: str, group: str) -> tuple[int, int, list[str]]:
    """(uid, gid, warnings): a name looked up in ``passwd``/``group`` (the OS's files' text), a number
    taken as it is; an unknown name is a warning and root (0) is used. No group: -1 (left as it is)."""
    warnings: list[str] = []
    uid, gid = 0, -1
    if spec.user is not None:
        found = _lookup(spec.user, _ids(passwd))
        if found is None:
            warnings.append(f"user {spec.user!r} is unknown (no such name in /etc/passwd); "
                            "root owns the file")
        else:
            uid = found
    if spec.group is not None:
        found = _lookup(spec.group, _ids(group))
        if found is None:
            warnings.append(f"group {spec.group!r} is unknown (no such name in /etc/group); "
                            "the file's group is root")
            gid = 0
        else:
            gid = found
    return uid, gid, warnings


def _lookup(name: str, table: Mapping[str, tuple[int, int]]) -> int | None:
    if name.isdigit():
        return int(name)
    if name == "root":
        return 0
    entry = table.get(name)
    return entry[0] if entry is not None else None


# -- what to write, and writing it -----------------------------------------------------------------------


def due(files: tuple[FileSpec, ...], written: frozenset[FileSpec], deferred_too: bool) -> list[FileSpec]:
    """The entries to write now: not yet written this boot (a changed entry is a new one), deferred ones
    and those fetched from a ``source`` (which needs the network) only once ``deferred_too``."""
    return [f for f in files
            if f not in written and (deferred_too or not (f.defer or f.source is not None))]


def shown_url(url: str) -> str:
    """``url`` without what may be a secret (user:password@, the query) for the journal and status."""
    parts = urllib.parse.urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


def fetch_source(spec: FileSpec, retry: Retry = SOURCE_RETRY) -> tuple[bytes | None, str | None]:
    """``(content, why not fetched)``: the body at ``spec.source`` (blocking: run it in a thread), or, when
    it cannot be fetched, the fallback ``content`` (None without one) and why."""
    try:
        body = Http(retry).request(spec.source or "", headers=dict(spec.headers), limit=MAX_FILE_BYTES)
        if len(body) > MAX_FILE_BYTES:
            raise TooLarge(f"more than {MAX_FILE_BYTES} bytes (the limit of one file)")
        return body, None
    except NotThere:
        why = "HTTP 404"
    except urllib.error.HTTPError as exc:
        why = f"HTTP {exc.code} {exc.reason}"
    except urllib.error.URLError as exc:
        why = str(exc.reason)
    except (OSError, ValueError) as exc:  # timed out, reset; too large; a bad URL
        why = str(exc) or type(exc).__name__
    return (spec.content if spec.fallback else None), why


def write_file(target: Path, spec: FileSpec, uid: int, gid: int) -> None:
    """Write one entry at ``target`` (its path under the Paths prefix). Blocking: run it in a thread."""
    target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    if spec.append:
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, spec.mode)
        try:
            view = memoryview(spec.content)
            while view:
                view = view[os.write(fd, view):]
            os.fchown(fd, uid, gid)
            os.fchmod(fd, spec.mode)  # after chown, which clears setuid bits
            os.fsync(fd)
        finally:
            os.close(fd)
        fsync_directory(target.parent)
        return
    write_atomic(target, spec.content, spec.mode)
    os.chown(target, uid, gid, follow_symlinks=False)
    os.chmod(target, spec.mode)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


class WriteFilesKeeper:
    """The reconciler: writes what ``due`` says, one entry at a time in a thread. A failed entry is a
    warning naming it and its path (retried at the next change, never a boot failure)."""

    name = "write-files"
    kinds: tuple[type[Event], ...] = (ConfigChanged,)
    config_keys: tuple[str, ...] | None = (CONFIG_KEY,)

    def __init__(self, paths: Paths, files: Callable[[], tuple[FileSpec, ...]],
                 retry: Retry = SOURCE_RETRY) -> None:
        self.paths = paths
        self.files = files
        self.retry = retry
        self.deferred_too = False  # set once the boot phases are done
        self.written: set[FileSpec] = set()
        self.failed: dict[str, str] = {}
        self._lock = asyncio.Lock()  # the runner's reconcile and the end of boot's never interleave

    async def reconcile(self, full: bool) -> None:
        async with self._lock:
            await self._reconcile()

    async def _reconcile(self) -> None:
        files = self.files()
        self.written &= set(files)  # an entry changed back later is written again
        todo = due(files, frozenset(self.written), self.deferred_too)
        if not todo:
            return
        passwd = await asyncio.to_thread(_read, self.paths.under("/etc/passwd"))
        group = await asyncio.to_thread(_read, self.paths.under("/etc/group"))
        for spec in todo:
            uid, gid, warnings = resolve_owner(spec, passwd, group)
            for warning in warnings:
                log.warning(f"write_files: {warning}", entry=spec.key, path=spec.path)
            target = self.paths.under(spec.path)
            fetched = spec
            if spec.source is not None:
                content, why = await asyncio.to_thread(fetch_source, spec, self.retry)
                if why is not None:
                    instead = "written from content" if content is not None else "not written (no content)"
                    log.warning(f"write_files: source not fetched: {instead}", entry=spec.key,
                                path=spec.path, source=shown_url(spec.source), error=why)
                if content is None:
                    self.failed[spec.key] = f"{spec.path}: {shown_url(spec.source)}: {why}"
                    self.written.add(spec)  # as a failed write: the next change of the entry retries
                    continue
                fetched = replace(spec, content=content)
            try:
                await asyncio.to_thread(write_file, target, fetched, uid, gid)
            except OSError as exc:
                self.failed[spec.key] = f"{spec.path}: {exc.strerror or exc}"
                log.warning("write_files: file not written", entry=spec.key, path=spec.path,
                            error=exc.strerror or str(exc))
                self.written.add(spec)  # not retried in a loop: the next change of the entry retries
                continue
            self.failed.pop(spec.key, None)
            self.written.add(spec)
            log.info("file written", entry=spec.key, path=spec.path, bytes=len(fetched.content),
                     mode=f"{spec.mode:04o}", uid=uid, gid=gid, append=spec.append, deferred=spec.defer,
                     **({"source": shown_url(spec.source)} if spec.source is not None else {}))

    def status(self) -> dict[str, object]:
        return {"written": len(self.written), "failed": dict(self.failed)}
