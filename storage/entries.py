"""cloud-config's ``mounts:`` list entries, ``[device, path, fstype, options, dump, passno]``, as cloud-init
and RancherOS read them. Pure, like ``storage.rules`` (it uses ``storage.mountspec``'s pieces).

Besides block devices (``LABEL=``, ``UUID=``, a path, a bare name ``sdb1`` = ``/dev/sdb1``) an entry may be
a bind mount (options ``bind`` or ``rbind``; the source a path) or an NFS mount (fstype ``nfs``/``nfs4``,
or a source ``host:/path``): rules of ``kind`` ``bind`` and ``nfs`` with a ``source``, mounted by
``storage.sourced``'s plan. Entries corral cannot act on are warnings naming the entry and what happens
instead, never errors, as cloud-init wrote them to fstab and went on: swap; a mount point of ``none`` or
none at all (cloud-init's way to drop a default entry); a mount point where storage has no place
(``/dev/zero``); cloud-init's datasource names (``ephemeral0``) and ``device_aliases`` names
(``my_alias.1``); other network filesystems (``glusterfs``, ``cifs``). Several list entries may share a
mount point (cloud-init's own example names ``sdc`` and ``xvdh`` for one path: whichever the hypervisor
has)."""

from __future__ import annotations

import posixpath
import re
from dataclasses import replace
from typing import Any

from storage.mountspec import (
    _FLAG_OPTIONS,
    _REFUSED_OPTIONS,
    Match,
    MountOptions,
    MountRule,
    _fstype,
    _mount_path,
    parse_device_ref,
    parse_options,
)
from supervisor.config.check import describe
from supervisor.config.errors import Problems
from supervisor.config.keypath import KeyPath, format_path
from supervisor.mounts import MS_NODEV, MS_NOSUID

NFS_TYPES = ("nfs", "nfs4")
# cloud-init's names that only its datasources resolve (cc_mounts.is_meta_device_name)
_META_NAME = re.compile(r"^(ami|root|ephemeral[0-9]*|ebs[0-9]*)$")
# cloud-init's NETWORK_NAME_RE: "server:/path", "host:port"
_NETWORK_NAME = re.compile(r"^.+:.*")
_NFS_SOURCE = re.compile(r"^(\[[0-9A-Fa-f:.%a-zA-Z]+\]|[A-Za-z0-9][A-Za-z0-9_.\-]*):(/[^\s]*)$")
# mount.nfs's -o value: options as mount(8) writes them, no spaces, no shell or option syntax
_NFS_OPTION = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:=/@,+\-]*$")
MAX_SOURCE = 1024


def parse_list_entry(entry: list[Any], here: KeyPath, problems: Problems) -> MountRule | None:
    """cloud-config's ``[device, path, fstype, options, dump, passno]``, as cloud-init and RancherOS read
    it (see the module doc): a block device, a bind mount, an NFS mount, or a warning."""
    key = format_path(here)
    before = len(problems.errors)
    if len(entry) > 6:
        problems.error(here, "expected at most [device, path, fstype, options, dump, passno]")
        return None
    fields = [None if v is None else str(v) if isinstance(v, int) and not isinstance(v, bool) else v
              for v in entry]
    for i, v in enumerate(fields):
        if v is not None and not isinstance(v, str):
            problems.error((*here, i), f"expected a string, got {describe(v)}")
            return None
    dev_text = fields[0] if fields else None
    path_text = fields[1] if len(fields) > 1 else None
    fstype_text = fields[2] if len(fields) > 2 else None
    opts_text = fields[3] if len(fields) > 3 and fields[3] is not None else "defaults"
    if fstype_text == "swap" or path_text in ("none", "swap"):
        problems.warn(here, "swap entries are not supported by corral; ignored")
        return None
    if dev_text is None or not dev_text.strip():
        problems.error((*here, 0), "a device is required")
        return None
    dev = dev_text.strip()
    if path_text is None or not path_text.strip():
        problems.warn(here, f"no mount point for {dev!r} (cloud-init's way to drop an earlier or default "
                            "entry of that device); corral has no default mounts: nothing is mounted")
        return None
    words = [w.strip() for w in opts_text.split(",") if w.strip()]
    fstype = _fstype(fstype_text, (*here, 2), problems) if fstype_text is not None else None
    if len(problems.errors) > before:
        return None
    if "bind" in words or "rbind" in words:
        return _bind_rule(key, dev, path_text, words, here, problems)
    upper = dev.upper()
    by_name = upper.startswith(("LABEL=", "UUID=", "PARTUUID=", "PARTLABEL="))
    if fstype in NFS_TYPES or (fstype is None and not by_name and _NFS_SOURCE.match(dev)):
        return _nfs_rule(key, dev, path_text, fstype or "nfs", words, opts_text, here, problems)
    if not by_name and (_NETWORK_NAME.match(dev) or dev.startswith("//")):
        problems.warn(here, f"{dev!r} is a {fstype or 'network'} filesystem: corral mounts NFS "
                            "(fstype nfs or nfs4), bind mounts and block devices; this entry is not mounted")
        return None
    if _META_NAME.match(dev):
        problems.warn((*here, 0), f"{dev!r} is a name only cloud-init's datasources resolve (the cloud's "
                                  "block device mapping); corral does not: this entry is not mounted")
        return None
    if re.match(r"^[A-Za-z_][A-Za-z0-9_-]*\.[0-9]+$", dev):
        problems.warn((*here, 0), f"{dev!r} is a cloud-init device_aliases name (NAME.PARTITION); corral "
                                  "does not implement device_aliases: this entry is not mounted")
        return None
    target = _mount_path(path_text, (*here, 1), problems, lenient=True)
    if target is None and len(problems.errors) == before:
        return None  # warned: a place corral mounts nothing at
    match = parse_device_ref(dev, (*here, 0), problems, allow_glob=True)
    options = parse_options(opts_text, (*here, 3), problems)
    fsck = False
    if len(fields) > 5 and fields[5] is not None:
        passno = fields[5].strip()
        if not passno.isdigit():
            problems.error((*here, 5), f"{passno!r} is not a fsck pass number (0, 1 or 2)")
            return None
        fsck = int(passno) > 0
    if len(fields) > 4 and fields[4] is not None and not fields[4].strip().isdigit():
        problems.error((*here, 4), f"{fields[4]!r} is not a dump frequency (a number)")
        return None
    if len(problems.errors) > before or match is None or target is None or options is None:
        return None
    return MountRule(key=key, match=match, path=target, fstype=fstype, options=options, fsck=fsck)


def _bind_rule(key: str, source: str, path_text: str, words: list[str], here: KeyPath,
               problems: Problems) -> MountRule | None:
    """``[/test, /home/rancher/test, "", bind]``: mount(2) MS_BIND (``rbind``: with MS_REC), then a remount
    with the entry's flags (``nodev,nosuid`` unless ``dev``/``suid``), as mount(8) does for ``bind,ro``."""
    before = len(problems.errors)
    if not source.startswith("/") or len(source) > MAX_SOURCE or "\0" in source:
        problems.error((*here, 0), f"{source!r} is not an absolute path: a bind mount's source is a path")
    target = _mount_path(path_text, (*here, 1), problems, lenient=True)
    rest = [w for w in words if w not in ("bind", "rbind")]
    options = parse_options(",".join(rest), (*here, 3), problems)
    if len(problems.errors) > before or target is None or options is None:
        return None
    if options.data:
        problems.warn((*here, 3), f"{options.data!r}: a bind mount takes flags only; ignored")
    norm = posixpath.normpath(source)
    if norm == target:
        problems.warn(here, f"{norm} bound onto itself: nothing to do; not mounted")
        return None
    return MountRule(key=key, match=Match(), path=target, fstype="rbind" if "rbind" in words else "bind",
                     options=replace(options, data=""), kind="bind", source=norm)


def _nfs_rule(key: str, source: str, path_text: str, fstype: str, words: list[str], text: str,
              here: KeyPath, problems: Problems) -> MountRule | None:
    """``[server:/export, /mnt/nfs, nfs, "vers=4.2,ro"]``: mounted by ``mount.nfs SOURCE PATH -o OPTIONS``
    (``mount.nfs4`` for nfs4). Its options are passed on as written (with ``nodev,nosuid`` unless
    ``dev``/``suid``), each checked: no spaces, nothing that reads as an option of its own."""
    before = len(problems.errors)
    if not _NFS_SOURCE.match(source) or len(source) > MAX_SOURCE:
        problems.error((*here, 0), f"{source!r} is not an NFS export (server:/path)")
    target = _mount_path(path_text, (*here, 1), problems, lenient=True)
    kept: list[str] = []
    auto = True
    for word in words:
        if word == "noauto":
            auto = False
        elif word.startswith(("x-", "comment=")):
            continue
        elif word in _REFUSED_OPTIONS:
            problems.error((*here, 3), f"option {word!r}: {_REFUSED_OPTIONS[word]}")
        elif not _NFS_OPTION.match(word) or len(word) > 256:
            problems.error((*here, 3), f"option {word!r} is not an NFS mount option")
        else:
            kept.append(word)
    if len(problems.errors) > before or target is None:
        return None
    flags = MS_NODEV | MS_NOSUID
    for word in kept:
        if word in _FLAG_OPTIONS:
            flag, on = _FLAG_OPTIONS[word]
            flags = flags | flag if on else flags & ~flag
    for word, flag in (("nodev", MS_NODEV), ("nosuid", MS_NOSUID)):
        if flags & flag and word not in kept:
            kept.append(word)
    options = MountOptions(flags=flags, data=",".join(kept), text=text.strip() or "defaults", auto=auto)
    return MountRule(key=key, match=Match(), path=target, fstype=fstype, options=options, kind="nfs",
                     source=source)
