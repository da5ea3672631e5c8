"""image/iso.py without grub-mkrescue: grub.cfg, the command line, the manifest's section, the cache."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from image import build, iso, run


def test_grub_cfg_boots_the_build_with_the_qemu_command_line_and_both_consoles() -> None:
    cfg = iso.grub_cfg("1.2.3")
    assert "menuentry 'corral 1.2.3 (live)' {\n" in cfg
    assert f"  linux /boot/vmlinuz console=tty0 {run.BASE_APPEND}\n" in cfg
    assert "  initrd /boot/initrd\n" in cfg
    # ttyS0 last: it becomes /dev/console, where the journal's echo and "ready" go
    assert iso.APPEND.split().index("console=tty0") < iso.APPEND.split().index("console=ttyS0,115200")
    assert "terminal_output serial console\n" in cfg and "serial --unit=0 --speed=115200\n" in cfg
    assert "set timeout=3\n" in cfg


def test_mkrescue_makes_both_platforms_and_passes_the_volume_id_to_xorriso(tmp_path: Path) -> None:
    argv = iso.mkrescue_argv(tmp_path / "stage", tmp_path / "o.iso")
    assert argv[0] == "grub-mkrescue"
    assert not any(a.startswith(("--directory", "-d")) for a in argv)  # one platform only: never
    assert argv[argv.index("-o") + 1] == os.fspath(tmp_path / "o.iso")
    assert argv[argv.index("--"):] == ["--", "-volid", "CORRAL"]
    assert {"--locales=", "--fonts=", "--themes="} <= set(argv)  # a text menu needs none of them


def test_missing_tools_name_their_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda tool: None if tool == "mformat" else f"/usr/bin/{tool}")
    (tmp_path / "i386-pc").mkdir()
    assert iso.missing_tools(tmp_path) == ["mformat (mtools)",
                                           f"{tmp_path / 'x86_64-efi'} (grub-efi-amd64-bin)"]


def test_the_bootloader_is_what_is_neither_kernel_nor_initrd() -> None:
    section = iso.Sizes(kernel=10, initrd=70, iso=100).as_manifest("k")
    assert section == {"file": "corral.iso", "bytes": 100,
                       "components": {"kernel": 10, "initrd": 70, "bootloader": 20}, "input_hash": "k"}


def _fake_out(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    (out / "vmlinuz").write_bytes(b"kernel")
    (out / "initrd").write_bytes(b"initrd" * 10)
    return out


def test_build_stages_kernel_initrd_and_cfg_then_is_up_to_date(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    out = _fake_out(tmp_path)
    calls: list[list[str]] = []

    def mkrescue(argv: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        staging, dest = Path(argv[argv.index("-o") + 2]), Path(argv[argv.index("-o") + 1])
        files = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
        assert files == ["boot/grub/grub.cfg", "boot/initrd", "boot/vmlinuz"]
        (staging.parent / ".iso-cfg-seen").write_text((staging / "boot/grub/grub.cfg").read_text())
        assert (staging / "boot/grub/grub.cfg").read_text().startswith("# corral live ISO")
        dest.write_bytes(b"\0" * 1000)
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(iso, "missing_tools", lambda: [])
    monkeypatch.setattr(subprocess, "run", mkrescue)
    section, made = iso.build(out, "9.9")
    assert "menuentry 'corral 9.9 (live)'" in (out / ".iso-cfg-seen").read_text()
    assert made and section["components"] == {"kernel": 6, "initrd": 60, "bootloader": 934}
    assert not (out / ".iso-staging").exists()
    assert iso.build(out, "9.9", section) == (section, False)  # same inputs: not made again
    assert len(calls) == 1
    (out / "initrd").write_bytes(b"other")
    assert iso.build(out, "9.9", section)[1]  # a new initrd: made again
    assert iso.build(out, "9.10", section)[1]  # another version in grub.cfg: made again


def test_a_failed_mkrescue_names_it_and_leaves_no_iso(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    out = _fake_out(tmp_path)
    monkeypatch.setattr(iso, "missing_tools", lambda: [])
    monkeypatch.setattr(subprocess, "run",
                        lambda argv, **_: subprocess.CompletedProcess(argv, 1, "", "xorriso : FAILURE : no"))
    with pytest.raises(iso.IsoError, match="grub-mkrescue failed \\(1\\):\nxorriso : FAILURE : no"):
        iso.build(out, "1")
    assert not (out / iso.ISO_NAME).exists() and not (out / ".iso-staging").exists()


def test_missing_tools_are_an_error_before_anything_is_made(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(iso, "missing_tools", lambda: ["xorriso (xorriso)"])
    with pytest.raises(iso.IsoError, match=r"--iso needs xorriso \(xorriso\)"):
        iso.build(_fake_out(tmp_path), "1")


def test_summary_lists_the_iso_components() -> None:
    data = {"corral_version": "1", "kernel_version": "6", "compression": "zstd", "initrd_raw_bytes": 1,
            "files": {"initrd": 1}, "components": {"kernel": 1},
            "iso": iso.Sizes(kernel=1 << 20, initrd=2 << 20, iso=4 << 20).as_manifest("k")}
    text = build.summary(data)
    assert "corral.iso 4.0 MiB" in text
    assert "  bootloader   1.0 MiB" in text
