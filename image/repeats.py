"""Which files of a preloaded image repeat the root's: the console image carries its own libc, libcrypto,
busybox... byte for byte the root's copies (both come from the same Debian packages). Compressed as one
initrd, a repeat costs almost nothing when it lies within the compressor's window of its first copy
(``initramfs.split_around`` places the root's copies around the archive); far away, it costs its full
compressed size again.

``repeated(archive, root)`` reads a ``docker save`` archive (the layers listed in its ``manifest.json``)
and returns the root-relative paths whose file in a layer has the same size and bytes as the root's, in
the layer's order."""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def _digest(stream: IO[bytes]) -> str:
    digest = hashlib.sha256()
    while chunk := stream.read(1 << 20):
        digest.update(chunk)
    return digest.hexdigest()


def _layer_files(archive: tarfile.TarFile) -> Iterator[tuple[str, int, IO[bytes]]]:
    manifest = archive.extractfile("manifest.json")
    if manifest is None:
        return
    for image in json.load(manifest):
        for layer_name in image.get("Layers", []):
            layer_stream = archive.extractfile(layer_name)
            if layer_stream is None:
                continue
            with tarfile.open(fileobj=layer_stream, mode="r:") as layer:
                for member in layer:
                    if not member.isreg():
                        continue
                    data = layer.extractfile(member)
                    if data is not None:
                        yield member.name.lstrip("./").lstrip("/"), member.size, data


def repeated(archive_path: Path, root: Path) -> list[str]:
    """Paths (relative to ``root``) that a layer of the archive holds with the root's exact bytes."""
    out: list[str] = []
    seen: set[str] = set()
    with tarfile.open(archive_path, mode="r:") as archive:
        for rel, size, data in _layer_files(archive):
            mine = root / rel
            if rel in seen or mine.is_symlink() or not mine.is_file() or mine.stat().st_size != size:
                continue
            with mine.open("rb") as f:
                if _digest(f) != _digest(data):
                    continue
            seen.add(rel)
            out.append(rel)
    return out
