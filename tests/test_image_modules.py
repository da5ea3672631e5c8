"""image.modules: the closure over a sample modules.dep, built-ins, soft dependencies."""

from __future__ import annotations

from image.modules import closure, module_name, parse_builtin, parse_modules_dep, parse_softdep

MODULES_DEP = """\
kernel/drivers/net/bonding/bonding.ko: kernel/net/tls/tls.ko
kernel/net/8021q/8021q.ko: kernel/net/802/mrp.ko kernel/net/802/garp.ko kernel/net/802/stp.ko \
kernel/net/llc/llc.ko
kernel/net/802/mrp.ko:
kernel/net/802/garp.ko: kernel/net/802/stp.ko kernel/net/llc/llc.ko
kernel/net/802/stp.ko: kernel/net/llc/llc.ko
kernel/net/llc/llc.ko:
kernel/net/tls/tls.ko:
kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko kernel/fs/mbcache.ko kernel/lib/crc16.ko
kernel/fs/jbd2/jbd2.ko:
kernel/fs/mbcache.ko:
kernel/lib/crc16.ko:
kernel/crypto/crc32c_generic.ko:
kernel/drivers/block/virtio_blk.ko.xz:
kernel/drivers/unused/unused.ko:
"""
BUILTIN = "kernel/net/packet/af_packet.ko\nkernel/drivers/virtio/virtio.ko\n"
SOFTDEP = "# Soft dependencies\nsoftdep ext4 pre: crc32c-generic\nsoftdep 8021q post: missing_mod\n"


def test_module_name_normalises() -> None:
    assert module_name("kernel/net/8021q/8021q.ko") == "8021q"
    assert module_name("kernel/drivers/block/virtio_blk.ko.xz") == "virtio_blk"
    assert module_name("kernel/crypto/crc32c-generic.ko") == "crc32c_generic"


def test_closure_takes_dependencies_softdeps_and_nothing_else() -> None:
    found = closure(["8021q", "ext4", "virtio-blk", "af_packet", "nosuch"], parse_modules_dep(MODULES_DEP),
                    parse_builtin(BUILTIN), parse_softdep(SOFTDEP))
    names = {module_name(p) for p in found.paths}
    assert names == {"8021q", "mrp", "garp", "stp", "llc", "ext4", "jbd2", "mbcache", "crc16",
                     "crc32c_generic", "virtio_blk"}
    assert found.paths == sorted(found.paths)
    assert found.builtin == ["af_packet"]
    assert found.missing == ["nosuch"]  # the soft dependency missing_mod is not an error


def test_parse_softdep() -> None:
    assert parse_softdep(SOFTDEP) == {"ext4": ["crc32c_generic"], "8021q": ["missing_mod"]}
