"""image/console.py's file selection (ELF closure looked up in the unpacked root, never the build
machine's) and console-init's reading of corral.password= from the command line (run in busybox sh)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from image.console import FILES_DIR, ConsoleImageError, add_with_libraries, collect
from image.docker import Rootfs
from image.elf import elf_needs

BUSYBOX = Path("/usr/bin/busybox")
HOST_LIBS = Path("/usr/lib/x86_64-linux-gnu")
LOADER = "ld-linux-x86-64.so.2"


def test_elf_needs_of_a_dynamic_binary_a_static_one_and_a_script() -> None:
    interp, needed, _ = elf_needs(Path(os.path.realpath("/usr/bin/true")))
    assert interp == f"/lib64/{LOADER}" and "libc.so.6" in needed
    if BUSYBOX.exists():  # busybox-static
        assert elf_needs(BUSYBOX) == (None, [], [])
    assert elf_needs(FILES_DIR / "console-init") == (None, [], [])


def fake_root(root: Path, with_libc: bool = True) -> Path:
    """A Debian-like merged-/usr root with /usr/bin/true and (optionally) the libraries it needs."""
    if not (HOST_LIBS / LOADER).exists():
        pytest.skip("not an x86-64 Debian machine")
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/lib64").mkdir()
    libs = root / "usr/lib/x86_64-linux-gnu"
    libs.mkdir(parents=True)
    for top in ("bin", "lib", "lib64", "sbin"):
        (root / top).symlink_to(f"usr/{top}")
    shutil.copy2(os.path.realpath("/usr/bin/true"), root / "usr/bin/true")
    shutil.copy2(HOST_LIBS / LOADER, libs / LOADER)
    (root / "usr/lib64" / LOADER).symlink_to(f"/lib/x86_64-linux-gnu/{LOADER}")  # absolute, as Debian's
    if with_libc:
        shutil.copy2(HOST_LIBS / "libc.so.6", libs / "libc.so.6")
    return root


def test_libraries_are_found_in_the_root(tmp_path: Path) -> None:
    root = fake_root(tmp_path / "root")
    fs = Rootfs(root=root.resolve())
    add_with_libraries(fs, ["/usr/bin/true"])
    assert set(fs.files) == {"usr/bin/true", f"usr/lib/x86_64-linux-gnu/{LOADER}",
                             "usr/lib/x86_64-linux-gnu/libc.so.6"}
    assert fs.links == {f"usr/lib64/{LOADER}": f"/lib/x86_64-linux-gnu/{LOADER}"}
    assert all(path.is_relative_to(root.resolve()) for path in fs.files.values())  # none of the host's


def test_a_library_missing_from_the_root_is_an_error_naming_it(tmp_path: Path) -> None:
    root = fake_root(tmp_path / "root", with_libc=False)
    with pytest.raises(ConsoleImageError, match=r"/usr/bin/true needs libc\.so\.6: not in "):
        add_with_libraries(Rootfs(root=root.resolve()), ["/usr/bin/true"])


def test_collect_names_what_the_root_lacks(tmp_path: Path) -> None:
    root = fake_root(tmp_path / "root")
    with pytest.raises(ConsoleImageError, match=r"missing /usr/sbin/sshd, .*/usr/bin/sudo.*unpack"):
        collect(root)


CASES = [
    ('BOOT_IMAGE=/vmlinuz console=ttyS0 corral.password=s3cret quiet', "s3cret"),
    ('console=ttyS0 corral.password="battery staple!" quiet', "battery staple!"),
    ("corral.password=first corral.password=second", "second"),  # the last one wins, as in corral's config
    ("rancher.password=old corral.password=new", "new"),  # corral's wins over the RancherOS alias
    ("rancher.password=r1 quiet", "r1"),
    ("xcorral.password=no notcorral.password=no", ""),
    ("corral.password=* quiet", "*"),  # no globbing
    ("quiet", ""),
]


@pytest.mark.parametrize(("cmdline", "expected"), CASES)
def test_console_init_reads_the_password_from_the_command_line(tmp_path: Path, cmdline: str,
                                                                expected: str) -> None:
    if not BUSYBOX.exists():
        pytest.skip("busybox-static missing")
    (tmp_path / "cmdline").write_text(cmdline + "\n")
    env = {"PATH": "/usr/bin:/bin", "CORRAL_CONSOLE_NO_MAIN": "1",
           "CORRAL_CONSOLE_CMDLINE": str(tmp_path / "cmdline")}
    script = f". {FILES_DIR / 'console-init'}; printf '[%s]' \"$(password_from_cmdline)\""
    out = subprocess.run([BUSYBOX, "sh", "-c", script], env=env, cwd=tmp_path, capture_output=True,
                         text=True, timeout=30, check=True)
    assert out.stdout == f"[{expected}]"


def test_console_init_without_a_command_line_file_has_no_password(tmp_path: Path) -> None:
    if not BUSYBOX.exists():
        pytest.skip("busybox-static missing")
    env = {"PATH": "/usr/bin:/bin", "CORRAL_CONSOLE_NO_MAIN": "1",
           "CORRAL_CONSOLE_CMDLINE": str(tmp_path / "absent")}
    script = f". {FILES_DIR / 'console-init'}; printf '[%s]' \"$(password_from_cmdline)\""
    out = subprocess.run([BUSYBOX, "sh", "-c", script], env=env, capture_output=True, text=True,
                         timeout=30, check=True)
    assert out.stdout == "[]"


@pytest.mark.parametrize(("release", "expected"), [
    ('NAME="corral"\nVERSION_ID="2.0.0"\nPRETTY_NAME="corral 2.0.0"\n', "corral 2.0.0 on \\n (\\l)\n\n"),
    ("VERSION_ID=3.1\n", "corral 3.1 on \\n (\\l)\n\n"),
    (None, "corral \\n (\\l)\n\n"),  # no os-release to read: the banner as the image ships it
])
def test_console_init_puts_the_hosts_version_in_the_banner(tmp_path: Path, release: str | None,
                                                           expected: str) -> None:
    if not BUSYBOX.exists():
        pytest.skip("busybox-static missing")
    if release is not None:
        (tmp_path / "os-release").write_text(release)
    env = {"PATH": "/usr/bin:/bin", "CORRAL_CONSOLE_NO_MAIN": "1",
           "CORRAL_CONSOLE_OS_RELEASE": str(tmp_path / "os-release")}
    script = f". {FILES_DIR / 'console-init'}; write_issue {tmp_path / 'issue'}"
    subprocess.run([BUSYBOX, "sh", "-c", script], env=env, capture_output=True, text=True, timeout=30,
                   check=True)
    assert (tmp_path / "issue").read_text() == expected
