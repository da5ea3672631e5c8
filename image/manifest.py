"""``manifest.json`` of a build: what is in the image and what each part of it costs.

``component_sizes`` walks the final root and counts every file's bytes once (hard links once) under the
first component of the definition that claims it, by the package that shipped it or by path prefix; what
no component claims is ``other``. So the components add up to ``rootfs_bytes`` exactly, and the kernel
(``vmlinuz``) is counted beside them."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from image.rootfs import matches
from supervisor.atomic import write_atomic

OTHER = "other"


def classify(rel: str, owner: str | None, components: Mapping[str, Sequence[str]]) -> str:
    """The component a root path belongs to: the first whose list names its package or a path prefix /
    glob it is under (entries with '/' are paths, the others package names)."""
    for name, claims in components.items():
        for claim in claims:
            if "/" in claim:
                if matches(rel, [claim]):
                    return name
            elif owner is not None and claim == owner:
                return name
    return OTHER


def component_sizes(root: Path, owners: Mapping[str, str],
                    components: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Bytes per component under ``root`` (regular files by size, symlinks by target length)."""
    sizes = dict.fromkeys([*components, OTHER], 0)
    seen: set[tuple[int, int]] = set()
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            if stat.S_ISREG(st.st_mode):
                if st.st_nlink > 1:
                    if (st.st_dev, st.st_ino) in seen:
                        continue
                    seen.add((st.st_dev, st.st_ino))
                size = st.st_size
            elif stat.S_ISLNK(st.st_mode):
                size = len(os.readlink(path))
            else:
                continue
            rel = path.relative_to(root).as_posix()
            sizes[classify(rel, owners.get(rel), components)] += size
    return sizes


def build_manifest(*, corral_version: str, kernel_version: str, compression: str, initrd_bytes: int,
                   initrd_raw_bytes: int, kernel_bytes: int, components: Mapping[str, int],
                   packages: Sequence[tuple[str, str, str]], python: Sequence[str], modules: Sequence[str],
                   images: Mapping[str, int], input_hash: str) -> dict[str, Any]:
    return {
        "corral_version": corral_version,
        "kernel_version": kernel_version,
        "compression": compression,
        "files": {"vmlinuz": kernel_bytes, "initrd": initrd_bytes},
        "initrd_raw_bytes": initrd_raw_bytes,
        "rootfs_bytes": sum(components.values()),
        "components": {"kernel": kernel_bytes, **components},
        "images": dict(images),
        "packages": [{"name": n, "version": v, "arch": a} for n, v, a in packages],
        "python": list(python),
        "modules": list(modules),
        "input_hash": input_hash,
    }


def write(path: Path, manifest: Mapping[str, Any]) -> None:
    write_atomic(path, (json.dumps(manifest, indent=2, sort_keys=False) + "\n").encode())


def read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
