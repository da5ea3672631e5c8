"""Kernel modules for the image: the listed modules plus everything they need, nothing else.

The kernel package ships no ``modules.dep`` (its postinst runs depmod), so ``install`` runs ``depmod -b``
over the unpacked kernel first, takes the closure of the wanted names over ``modules.dep`` (hard
dependencies) and ``modules.softdep`` (``pre:``/``post:`` ones, e.g. ext4 -> crc32c), copies those files
with ``modules.builtin*`` and ``modules.order`` into the image root and runs ``depmod -b`` there, so
``modprobe`` and MODALIAS loading in the guest see exactly what is shipped. A wanted module the kernel
has built in is fine (nothing to ship); one it does not have at all is an error naming it."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_SUFFIXES = (".ko.xz", ".ko.zst", ".ko.gz", ".ko")
_METADATA = ("modules.builtin", "modules.builtin.modinfo", "modules.order")


class ModulesError(RuntimeError):
    """A wanted module the kernel does not have, or depmod failing (the message names it)."""


def module_name(path: str) -> str:
    """``kernel/net/8021q/8021q.ko`` -> ``8021q``; dashes and underscores are the same to modprobe."""
    base = path.rsplit("/", 1)[-1]
    for suffix in _SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


def parse_modules_dep(text: str) -> dict[str, list[str]]:
    """``modules.dep`` -> {module path: [paths it needs]}."""
    deps: dict[str, list[str]] = {}
    for line in text.splitlines():
        path, sep, rest = line.partition(":")
        if sep:
            deps[path.strip()] = rest.split()
    return deps


def parse_builtin(text: str) -> set[str]:
    """``modules.builtin`` -> the names of the modules built into the kernel."""
    return {module_name(line.strip()) for line in text.splitlines() if line.strip()}


def parse_softdep(text: str) -> dict[str, list[str]]:
    """``modules.softdep`` (``softdep NAME pre: A B post: C``) -> {name: [A, B, C]}."""
    soft: dict[str, list[str]] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) < 3 or words[0] != "softdep":
            continue
        soft.setdefault(words[1].replace("-", "_"), []).extend(
            w.replace("-", "_") for w in words[2:] if w not in ("pre:", "post:"))
    return soft


@dataclass
class Closure:
    paths: list[str] = field(default_factory=list)  # module files to ship, relative to lib/modules/<ver>
    builtin: list[str] = field(default_factory=list)  # wanted names the kernel has built in
    missing: list[str] = field(default_factory=list)  # wanted names the kernel has not at all


def closure(wanted: Iterable[str], deps: Mapping[str, Sequence[str]], builtin: set[str],
            softdeps: Mapping[str, Sequence[str]] | None = None) -> Closure:
    """The module files ``wanted`` need (sorted); soft dependencies the kernel lacks are skipped."""
    by_name = {module_name(path): path for path in deps}
    soft = softdeps or {}
    result = Closure()
    files: set[str] = set()
    stack: list[tuple[str, bool]] = [(name.replace("-", "_"), True) for name in wanted]
    seen: set[str] = set()
    while stack:
        name, required = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        path = by_name.get(name)
        if path is None:
            if required:
                (result.builtin if name in builtin else result.missing).append(name)
            continue
        files.add(path)
        stack.extend((module_name(dep), True) for dep in deps[path])
        stack.extend((dep, False) for dep in soft.get(name, ()))
    result.paths = sorted(files)
    result.builtin.sort()
    result.missing.sort()
    return result


def kernel_version(kernel_root: Path) -> str:
    versions = sorted(p.name for p in (kernel_root / "lib" / "modules").iterdir() if p.is_dir())
    if len(versions) != 1:
        raise ModulesError(f"{kernel_root}/lib/modules: expected one kernel version, found {versions}")
    return versions[0]


def depmod(root: Path, version: str) -> None:
    result = subprocess.run(["depmod", "-b", os.fspath(root), version], capture_output=True, text=True,
                            timeout=600)
    if result.returncode != 0:
        raise ModulesError(f"depmod -b {root} {version}: {result.stderr.strip()}")


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def install(kernel_root: Path, version: str, wanted: Sequence[str], dest_root: Path) -> Closure:
    """Copy the closure of ``wanted`` from the unpacked kernel into ``dest_root`` and index it there.
    Raises ModulesError naming the modules the kernel does not have."""
    src = kernel_root / "lib" / "modules" / version
    if not (src / "modules.dep").exists():
        depmod(kernel_root, version)
    found = closure(wanted, parse_modules_dep(_read(src / "modules.dep")),
                    parse_builtin(_read(src / "modules.builtin")),
                    parse_softdep(_read(src / "modules.softdep")))
    if found.missing:
        raise ModulesError(f"image/definition.yml: modules: not in kernel {version}: "
                           f"{', '.join(found.missing)}")
    dest = dest_root / "usr" / "lib" / "modules" / version
    dest.mkdir(parents=True, exist_ok=True)
    for rel in [*found.paths, *_METADATA]:
        source = src / rel
        if not source.exists():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest / rel)
    depmod(dest_root, version)
    return found
