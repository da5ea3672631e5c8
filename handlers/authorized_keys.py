"""Writes ``ssh_authorized_keys`` (the top-level cloud-config key, a list of public keys, as cloud-init and
RancherOS) to ``/var/lib/corral/console/authorized_keys``, where the console's sshd reads them for
``rancher`` (the console mounts that directory).

Level-triggered: at boot and on every config change (or resync) it renders the file the config wants
(``render``, pure: one key per line, surrounding whitespace and blank entries dropped; an entry holding a
line break is refused, since it would smuggle a second line, e.g. a key with options, into the file),
reads the file that is there and writes only when they differ, atomically, mode 0644. No keys in the
config: an empty file (keys given earlier stop working). The journal gets the number of keys written."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from supervisor.atomic import write_atomic
from supervisor.events import ConfigChanged, Event
from supervisor.paths import Paths

log = structlog.get_logger("handlers.authorized_keys")

CONFIG_KEY = "ssh_authorized_keys"
CONSOLE_DIR = "var/lib/corral/console"  # under the Paths prefix; the console unit mounts it
FILE_NAME = "authorized_keys"
MODE = 0o644
HEADER = b"# ssh_authorized_keys from corral's config; written by corral, rewritten at each change\n"


@dataclass(frozen=True)
class Rendered:
    content: bytes
    keys: int
    refused: tuple[str, ...] = ()  # "ssh_authorized_keys[2]: ..." for each entry left out


def render(config: Mapping[str, Any]) -> Rendered:
    """The file the config asks for. Entries that are not one line of text are left out, each named."""
    entries = config.get(CONFIG_KEY) or []
    lines: list[str] = []
    refused: list[str] = []
    if not isinstance(entries, list):
        return Rendered(HEADER, 0, (f"{CONFIG_KEY}: expected a list of public keys",))
    for index, entry in enumerate(entries):
        where = f"{CONFIG_KEY}[{index}]"
        if not isinstance(entry, str):
            refused.append(f"{where}: expected a string, got {type(entry).__name__}")
            continue
        key = entry.strip()
        if not key:
            continue
        if "\n" in key or "\r" in key or "\0" in key:
            refused.append(f"{where}: a public key is one line; this entry has several")
            continue
        lines.append(key)
    content = HEADER + "".join(f"{line}\n" for line in lines).encode()
    return Rendered(content, len(lines), tuple(refused))


def needs_write(desired: bytes, observed: bytes | None) -> bool:
    """Whether the file must be (re)written: it is missing or differs."""
    return observed != desired


def keys_path(paths: Paths) -> Path:
    return paths.under(CONSOLE_DIR) / FILE_NAME


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _write(path: Path, content: bytes) -> None:
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    write_atomic(path, content, MODE)


class AuthorizedKeysWriter:
    """The reconciler (driven by ``handlers.runner.HandlerRunner``)."""

    name = "authorized-keys"
    kinds: tuple[type[Event], ...] = (ConfigChanged,)
    config_keys: tuple[str, ...] | None = (CONFIG_KEY,)

    def __init__(self, paths: Paths, config: Callable[[], Mapping[str, Any]]) -> None:
        self.path = keys_path(paths)
        self.config = config
        self.writes = 0
        self._refused: tuple[str, ...] = ()

    async def reconcile(self, full: bool) -> None:
        rendered = render(self.config())
        if rendered.refused != self._refused:
            for reason in rendered.refused:
                log.error("ssh key refused", reason=reason, file=str(self.path))
            self._refused = rendered.refused
        observed = await asyncio.to_thread(_read, self.path)
        if not needs_write(rendered.content, observed):
            return
        await asyncio.to_thread(_write, self.path, rendered.content)
        self.writes += 1
        log.info("ssh authorized keys written", file=str(self.path), keys=rendered.keys)
