"""`corral-image run` without booting: the QEMU command line, the run directory, the config segment."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from image import run


def fake_out(tmp_path: Path, initrd: bytes = b"\x28\xb5\x2f\xfd compressed") -> Path:
    out = tmp_path / "out"
    out.mkdir()
    (out / "vmlinuz").write_bytes(b"kernel")
    (out / "initrd").write_bytes(initrd)
    return out


def option(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_command_line_has_what_the_guest_needs(tmp_path: Path) -> None:
    m = run.Machine(kernel=tmp_path / "vmlinuz", initrd=tmp_path / "initrd", append="corral.password=x",
                    disks=(run.Disk(tmp_path / "a.img", "s0"),), nics=3, ssh_port=2200, qmp=tmp_path / "q")
    argv = run.qemu_argv(m)
    assert argv[:4] == [run.QEMU, "-nodefaults", "-display", "none"]
    assert option(argv, "-machine") == ["pc"]  # ACPI power button + PCI hotplug on the root bus
    assert option(argv, "-accel") == ["tcg"]
    assert option(argv, "-m") == ["1536M"]
    assert "-no-reboot" in argv
    assert option(argv, "-append") == ["console=ttyS0,115200 panic=-1 corral.password=x"]
    assert option(argv, "-serial") == ["mon:stdio"]
    assert option(argv, "-netdev") == ["user,id=n0,hostfwd=tcp:127.0.0.1:2200-:22",
                                       "user,id=n1", "user,id=n2"]
    nics = [d for d in option(argv, "-device") if d.startswith("virtio-net-pci")]
    assert nics == [f"virtio-net-pci,netdev=n{i},mac=52:54:00:c0:ff:0{i}" for i in range(3)]
    assert "virtio-blk-pci,drive=d0,serial=s0" in option(argv, "-device")
    assert option(argv, "-qmp") == [f"unix:{tmp_path / 'q'},server=on,wait=off"]


def test_memory_below_one_gib_is_refused(tmp_path: Path) -> None:
    with pytest.raises(run.RunError, match="at least 1024M"):
        run.qemu_argv(run.Machine(kernel=tmp_path, initrd=tmp_path, memory_mib=512))


@pytest.mark.parametrize(("text", "size"), [("512M", 512 << 20), ("2G", 2 << 30), ("1GiB", 1 << 30),
                                             ("4096", 4096), ("64k", 64 << 10)])
def test_sizes(text: str, size: int) -> None:
    assert run.parse_size(text) == size


@pytest.mark.parametrize("text", ["", "1.5G", "lots", "0", "-1G"])
def test_bad_sizes_name_the_option(text: str) -> None:
    with pytest.raises(run.RunError, match="--disk"):
        run.parse_size(text, "--disk")


def test_missing_build_output_says_how_to_build(tmp_path: Path) -> None:
    with pytest.raises(run.RunError, match="python -m image build"):
        run.prepare(run.Options(out=tmp_path / "nothing", run_dir=tmp_path / "run"))


def test_prepare_makes_zeroed_disks_state_first(tmp_path: Path) -> None:
    out = fake_out(tmp_path)
    m = run.prepare(run.Options(out=out, run_dir=tmp_path / "run", disks=["8M", "16M"], state_disk="4M",
                                nics=1, memory="1G", qmp=tmp_path / "q.sock"))
    assert [d.serial for d in m.disks] == [run.STATE_DISK_SERIAL, "corral-disk0", "corral-disk1"]
    assert [d.path.stat().st_size for d in m.disks] == [4 << 20, 8 << 20, 16 << 20]
    assert all(d.path.stat().st_blocks == 0 for d in m.disks)  # sparse: reads as zeros
    assert m.initrd == out / "initrd"  # no --config: the build output itself
    assert m.nics == 2 and m.memory_mib == 1024


def test_state_disk_path_is_used_as_it_is(tmp_path: Path) -> None:
    disk = tmp_path / "mine.img"
    disk.write_bytes(b"x" * 4096)
    m = run.prepare(run.Options(out=fake_out(tmp_path), run_dir=tmp_path / "run", state_disk=os.fspath(disk)))
    assert m.disks[0].path == disk
    with pytest.raises(run.RunError, match=r"--state-disk: .*no directory"):
        run.prepare(run.Options(out=tmp_path / "out", run_dir=tmp_path / "run",
                                state_disk=os.fspath(tmp_path / "nodir" / "state.img")))


def test_a_state_disk_path_is_made_once_and_then_kept(tmp_path: Path) -> None:
    """`make run`'s state disk: made zeroed (sparse) at the first run, the same file with its data after."""
    disk = tmp_path / "state.img"
    opts = run.Options(out=fake_out(tmp_path), run_dir=tmp_path / "run", state_disk=os.fspath(disk),
                       state_size="64M")
    assert run.prepare(opts).disks[0].path == disk
    assert disk.stat().st_size == 64 << 20 and disk.stat().st_blocks == 0
    with disk.open("r+b") as f:
        f.write(b"formatted by the guest")
    run.prepare(opts)
    assert disk.read_bytes().startswith(b"formatted by the guest")


@pytest.mark.skipif(shutil.which("cpio") is None, reason="cpio missing")
def test_config_is_appended_as_a_cpio_segment(tmp_path: Path) -> None:
    original = b"\x28\xb5\x2f\xfd" + b"z" * 1001  # not a multiple of 512: the segment is aligned after it
    out = fake_out(tmp_path, original)
    config = tmp_path / "cc.yml"
    config.write_text("#cloud-config\nhostname: from-config\n")
    m = run.prepare(run.Options(out=out, run_dir=tmp_path / "run", config=config))
    assert m.initrd == tmp_path / "run" / "initrd"
    assert (out / "initrd").read_bytes() == original  # the build output is left alone
    data = m.initrd.read_bytes()
    assert data.startswith(original)
    segment_at = -len(original) % 512 + len(original)
    assert data[len(original):segment_at] == b"\0" * (segment_at - len(original))
    listing = subprocess.run(["cpio", "-t", "-v", "--quiet"], input=data[segment_at:], capture_output=True,
                             check=True).stdout.decode()
    names = [line.split()[-1] for line in listing.splitlines()]
    assert names == ["etc", "etc/corral", "etc/corral/seed", run.USER_DATA_PATH]
    assert listing.splitlines()[-1].startswith("-rw-------")  # the config may hold secrets
    extract = tmp_path / "x"
    extract.mkdir()
    subprocess.run(["cpio", "-i", "-d", "--quiet"], cwd=extract, input=data[segment_at:], check=True)
    assert (extract / run.USER_DATA_PATH).read_text() == config.read_text()


def test_unreadable_config_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(run.RunError, match="--config: cannot read"):
        run.prepare(run.Options(out=fake_out(tmp_path), run_dir=tmp_path / "run", config=tmp_path / "no.yml"))


def test_cli_prints_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = fake_out(tmp_path)
    assert run.main(["--out", os.fspath(out), "--run-dir", os.fspath(tmp_path / "run"), "--disk", "1M",
                     "--nic", "1", "--ssh-port", "0", "--print"]) == 0
    line = capsys.readouterr().out
    assert "hostfwd" not in line and "id=n1" in line and "disk0.img" in line
    assert run.main(["--out", os.fspath(out), "--memory", "256M", "--print"]) == 2


def test_firmware_boots_a_cdrom_without_kernel_or_initrd(tmp_path: Path) -> None:
    m = run.Machine(kernel=None, initrd=None, cdrom=tmp_path / "corral.iso", ssh_port=None)
    argv = run.qemu_argv(m)
    assert "-kernel" not in argv and "-initrd" not in argv and "-append" not in argv
    assert option(argv, "-blockdev")[:2] == [
        f"driver=file,filename={tmp_path / 'corral.iso'},node-name=cdf,read-only=on",
        "driver=raw,file=cdf,node-name=cd,read-only=on"]
    assert "ide-cd,drive=cd,bus=ide.1,bootindex=0" in option(argv, "-device")
    assert "-drive" not in argv  # SeaBIOS, QEMU's default firmware


def test_uefi_is_two_pflash_drives_with_the_variables_writable(tmp_path: Path) -> None:
    m = run.Machine(kernel=None, initrd=None, cdrom=tmp_path / "c.iso",
                    uefi=run.Uefi(tmp_path / "CODE.fd", tmp_path / "VARS.fd"))
    assert option(run.qemu_argv(m), "-drive") == [
        f"if=pflash,format=raw,unit=0,readonly=on,file={tmp_path / 'CODE.fd'}",
        f"if=pflash,format=raw,unit=1,file={tmp_path / 'VARS.fd'}"]


def test_a_disk_with_a_bootindex_is_what_the_firmware_boots(tmp_path: Path) -> None:
    m = run.Machine(kernel=None, initrd=None, disks=(run.Disk(tmp_path / "stick.img", "st", bootindex=0),))
    argv = run.qemu_argv(m)
    assert "virtio-blk-pci,drive=d0,serial=st,bootindex=0" in option(argv, "-device")
    assert not any(d.startswith("ide-cd") for d in option(argv, "-device"))


def test_nothing_to_boot_is_refused(tmp_path: Path) -> None:
    with pytest.raises(run.RunError, match="nothing to boot"):
        run.qemu_argv(run.Machine(kernel=None, initrd=None, disks=(run.Disk(tmp_path / "a", "s"),)))
    with pytest.raises(run.RunError, match="needs an initrd"):
        run.qemu_argv(run.Machine(kernel=tmp_path / "vmlinuz", initrd=None))


def test_an_iso_on_cdrom_gets_the_state_disk_the_blank_disks_and_the_images_after_it(tmp_path: Path) -> None:
    from integration.firmware import iso_machine
    from integration.guest import GuestSpec

    state, image = tmp_path / "state.img", tmp_path / "data.img"
    state.write_bytes(b"ext4")
    image.write_bytes(b"data")
    spec = GuestSpec(iso=tmp_path / "corral.iso", state_disk=state, disks=["1M"], images=[image])
    m = iso_machine(tmp_path / "run", spec, 2222, tmp_path / "qmp.sock")
    assert m.kernel is None and m.cdrom == (tmp_path / "corral.iso").resolve()
    assert [(d.path, d.serial, d.bootindex) for d in m.disks] == [  # /dev/vda, vdb, vdc in the guest
        (state.resolve(), run.STATE_DISK_SERIAL, None),
        (tmp_path / "run" / "disk0.img", "corral-disk0", None),
        (image.resolve(), "corral-image0", None)]
    assert (tmp_path / "run" / "disk0.img").stat().st_size == 1 << 20
    argv = run.qemu_argv(m)
    assert "ide-cd,drive=cd,bus=ide.1,bootindex=0" in option(argv, "-device")
