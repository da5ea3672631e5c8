"""image.rootfs: strip rules, busybox applet links, /etc and config files."""

from __future__ import annotations

import subprocess
from pathlib import Path

from image.rootfs import (
    HOST_PYTHON,
    add_busybox_applets,
    compile_python,
    etc_files,
    install_config,
    matches,
    strip,
)

RULES = ["usr/share/doc", "**/*.a", "usr/lib/python3.11/test", "usr/lib/python3.11/lib-dynload/_test*"]


def test_matches_prefixes_globs_and_basenames() -> None:
    assert matches("usr/share/doc", RULES)
    assert matches("usr/share/doc/runc/copyright", RULES)
    assert not matches("usr/share/docker", RULES)  # a prefix is a whole path component
    assert matches("usr/lib/x86_64-linux-gnu/libc.a", RULES)
    assert not matches("usr/lib/x86_64-linux-gnu/libc.so.6", RULES)
    assert matches("usr/lib/python3.11/test/test_os.py", RULES)
    assert not matches("usr/lib/python3.11/unittest/case.py", RULES)
    assert matches("usr/lib/python3.11/lib-dynload/_testcapi.cpython-311-x86_64-linux-gnu.so", RULES)


def test_strip_removes_and_counts(tmp_path: Path) -> None:
    for rel in ("usr/share/doc/a/copyright", "usr/lib/libx.a", "usr/lib/libx.so", "usr/share/docker/x"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("12345")
    removed, freed = strip(tmp_path, RULES)
    assert removed == 2 and freed == 10
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert left == ["usr/lib/libx.so", "usr/share/docker/x"]


def test_busybox_applets_never_shadow_a_package(tmp_path: Path) -> None:
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/sbin").mkdir(parents=True)
    (tmp_path / "usr/bin/busybox").write_text("")
    (tmp_path / "usr/sbin/modprobe").write_text("")  # kmod's
    added = add_busybox_applets(tmp_path, ["sh", "modprobe", "ip", "busybox", "sh"])
    assert added == ["ip", "sh"]
    assert str((tmp_path / "usr/bin/sh").readlink()) == "busybox"
    assert not (tmp_path / "usr/bin/modprobe").exists()


def test_etc_names_the_os_and_root() -> None:
    files = etc_files("1.2.3")
    assert b'PRETTY_NAME="corral 1.2.3"' in files["usr/lib/os-release"]
    assert files["etc/passwd"].startswith(b"root:x:0:0:")
    assert b"\ndhcpcd:x:100:65534:DHCP Client Daemon:/usr/lib/dhcpcd:/bin/false\n" in files["etc/passwd"]
    assert files["etc/hostname"] == b"corral\n"
    assert b"\n127.0.1.1\tcorral\n" in files["etc/hosts"]  # the reconciler's render: sudo finds the name


def test_install_config_copies_yml_verbatim_or_nothing(tmp_path: Path) -> None:
    src = tmp_path / "config"
    root = tmp_path / "root"
    assert install_config(root, src) == []  # no directory: no config, no error
    src.mkdir()
    (src / "10-image.yml").write_text("#cloud-config\ncorral: {}\n")
    (src / "notes.txt").write_text("x")
    assert install_config(root, src) == ["10-image.yml"]
    copied = root / "usr/share/corral/cloud-config.d/10-image.yml"
    assert copied.read_text() == "#cloud-config\ncorral: {}\n"


def _package(root: Path) -> Path:
    pkg = root / "usr/lib/python3/dist-packages/demo"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("VALUE = 42\n")
    (pkg / "data.txt").write_text("not python\n")
    return pkg


def test_sourceless_compile_keeps_only_pyc_that_imports(tmp_path: Path) -> None:
    pkg = _package(tmp_path)
    compile_python(tmp_path, [Path("usr/lib/python3/dist-packages")], sourceless=True)
    assert sorted(p.name for p in pkg.iterdir()) == ["__init__.pyc", "data.txt"]
    out = subprocess.run([HOST_PYTHON, "-c", "import demo; print(demo.VALUE)"], capture_output=True,
                         text=True, env={"PYTHONPATH": str(pkg.parent)}, timeout=60)
    assert out.stdout.strip() == "42", out.stderr


def test_compile_keeps_sources_by_default(tmp_path: Path) -> None:
    pkg = _package(tmp_path)
    compile_python(tmp_path, [Path("usr/lib/python3/dist-packages")])
    assert (pkg / "__init__.py").exists() and list((pkg / "__pycache__").glob("__init__.*.pyc"))
