"""Keys corral knows but does not implement: the one table of them, key path -> what corral does instead.

RancherOS's keys with no equivalent here (from rancher/os ``config/types.go``: ``RancherConfig``,
``DockerConfig``, ``SSHConfig``, ``StateConfig``, ``UpgradeConfig``; and its kernel command line keys)
and the cloud-init modules corral does not run (every top-level key of cloud-init's own schema,
``cloudinit/config/schemas/schema-cloud-config-v1.json`` at canonical/cloud-init 04eacd06e, that corral
does not implement). Such a key is accepted, never a rejection: it is a
warning naming the key and what corral does instead, every time the config is loaded (boot, reload,
``config validate``, ``set``/``merge``), listed by ``corral status`` and ``corral config validate``.

This table is read by the config store (the warnings; the domain checks do not see these keys), by
``python -m supervisor.gen_schema`` (schema.json accepts each key, any value, its description the
message) and by ``python -m supervisor.gen_compat`` (docs/compatibility.md, every RancherOS, cloud-init
and netplan key with corral's verdict, checked current by a test). A key that corral comes to implement
leaves this table for its parser's."""

from __future__ import annotations

from collections.abc import Mapping

from supervisor.config.keypath import KeyPath, parse_path

_USER_DOCKERD = "corral's user dockerd is Debian's docker.io, run as the `docker` system unit " \
    "(units/defaults/docker.yml)"
_OWN_MERGE = "corral merges config layers its own way: maps merge, lists and scalars replace (docs/config.md)"
_SYSTEM_DOCKERD = "corral's system dockerd runs with fixed options (docs/system-docker.md)"

# RancherOS's DockerConfig (EngineOpts and the rest), for rancher.docker.* and rancher.system_docker.*
_DOCKER_FIELDS = (
    "args", "bridge", "bip", "config_file", "containerd", "debug", "exec_root", "group", "graph", "host",
    "insecure_registry", "live_restore", "log_driver", "log_opts", "pid_file", "registry_mirror", "restart",
    "selinux_enabled", "storage_driver", "userland_proxy", "engine", "tls", "tls_args", "extra_args",
    "server_cert", "server_key", "ca_cert", "ca_key", "environment", "storage_context", "exec",
)

NOT_IMPLEMENTED: Mapping[str, str] = {
    # -- RancherOS: rancher.* (corral.* is the same) ---------------------------------------------------
    "rancher.docker.engine": "corral's user dockerd is Debian's docker.io; engine switching (ros engine) "
                             "does not exist",
    "rancher.docker": f"{_USER_DOCKERD}, with corral's options: to run it otherwise, turn it off "
                      "(corral.services_include.docker: false) and give your own unit in corral.services",
    **{f"rancher.system_docker.{name}": _SYSTEM_DOCKERD for name in _DOCKER_FIELDS},
    "rancher.autoformat": "RancherOS's autoformat containers (services that formatted the state disk), "
                          "not a list of devices, so it cannot be read as corral.state.autoformat: corral "
                          "formats a blank state disk itself; list the devices in corral.state.autoformat",
    "rancher.bootstrap_docker": "corral has no bootstrap dockerd: the kernel modules, the state partition "
                                "and the network are set up by PID 1 itself",
    "rancher.bootstrap": "corral has no bootstrap containers: the state partition is prepared by PID 1 "
                         "(corral.state, docs/storage.md)",
    "rancher.cloud_init_services": "corral runs no cloud-init containers: datasources are read by PID 1 "
                                   "(corral.cloud_init.datasources)",
    "rancher.console": "corral has one console, Debian-based (the `console` unit); console switching "
                       "(ros console) does not exist",
    "rancher.force_console_rebuild": "the console is an image shipped with corral, never rebuilt",
    "rancher.autologin": "no autologin: log in on the console with corral.password or over ssh with "
                         "ssh_authorized_keys",
    "rancher.recovery": "no recovery console: a boot that cannot go on opens the emergency shell",
    "rancher.rm_usr": "corral's /usr is the read-only image; nothing to remove",
    "rancher.no_sharedroot": "corral shares no root with containers",
    "rancher.disable": "corral's own services are not RancherOS's: turn a shipped one off with "
                       "corral.services_include.NAME: false",
    "rancher.repositories": "no service repositories: a unit is given in corral.services or a unit file",
    # RancherOS's UpgradeConfig: corral's own upgrade keys are corral.upgrade.* (docs/install.md)
    "rancher.upgrade.url": "no release index: give `corral os upgrade --image FILE|URL` the image itself",
    "rancher.upgrade.image": "no upgrade container image: `corral os upgrade --image FILE|URL` writes "
                             "the new version into the inactive boot slot",
    "rancher.upgrade.rollback": "`corral os rollback` makes the other boot slot the default; a new "
                                "version that does not come up is rolled back by itself "
                                "(corral.upgrade.trial_timeout)",
    "rancher.upgrade.policy": "no automatic upgrade policy: upgrades are run with `corral os upgrade`",
    "rancher.registry_auths": "no registry credentials for the system dockerd: corral's own images are "
                              "shipped with the image; the user dockerd reads ~/.docker/config.json",
    "rancher.defaults": "RancherOS's built-in defaults; corral's are its shipped config "
                        "(supervisor/config/defaults/)",
    "rancher.default_network": "RancherOS's built-in network defaults; corral's are its shipped config",
    "rancher.resize_device": "no root partition resizing: corral runs from RAM and keeps its state on "
                             "corral.state",
    "rancher.restart_services": "units are restarted by corral's reconciler when their config changes",
    "rancher.hypervisor_service": "no hypervisor guest-tools service is started for you: run one as a "
                                  "unit in corral.services",
    "rancher.shutdown_timeout": "the time between SIGTERM and SIGKILL at shutdown is corral.shutdown_grace",
    "rancher.http_load_retries": "corral.cloud_init.datasources are read with corral's own retries",
    "rancher.preload_wait": ("image archives are loaded from the `images` boot phase; a unit waits for "
                             "the archive with its image"),
    "rancher.ssh": "sshd runs in the console on port 22 with host keys made once in "
                   "/var/lib/corral/console/ssh; host keys, port and address are not configurable",
    "rancher.state.directory": "the state partition is mounted as a whole (corral.state)",
    "rancher.state.mdadm_scan": "no mdadm: give corral.state.dev a device node or LABEL=",
    "rancher.state.lvm_scan": "no LVM scan: give corral.state.dev a device node or LABEL=",
    "rancher.state.cryptsetup": "no encrypted state partition",
    "rancher.state.rngd": "no rngd: the kernel's own entropy is used",
    "rancher.state.script": "no state script: prepare the disk before boot, or let corral.state.autoformat "
                            "format it",
    "rancher.state.oem_fstype": "no OEM partition",
    "rancher.state.oem_dev": "no OEM partition",
    "rancher.state.boot_fstype": "corral boots from its kernel and initrd; it mounts no boot partition",
    "rancher.state.boot_dev": "corral boots from its kernel and initrd; it mounts no boot partition",
    # -- cloud-init modules corral does not run ----------------------------------------------------------
    "users": "the console has the users `rancher` and `docker`; keys go in ssh_authorized_keys, the password "
             "in corral.password",
    "groups": "the console's groups are fixed",
    "chpasswd": "the console's password is corral.password",
    "ssh_pwauth": "the console's sshd takes keys (ssh_authorized_keys) and the password corral.password "
                  "sets; that is not configurable",
    "ssh_keys": "sshd's host keys are made once, in /var/lib/corral/console/ssh",
    "ssh_deletekeys": "sshd's host keys are made once and kept",
    "ssh_genkeytypes": "sshd's host keys are made once, ed25519 and ecdsa",
    "disable_root": "root has no login over ssh; log in as rancher",
    "fqdn": "the host name is `hostname`",
    "preserve_hostname": "the host name is always `hostname` (default corral)",
    "manage_etc_hosts": "corral writes /etc/hosts itself with the host name",
    "timezone": "corral runs in UTC",
    "ntp": "no NTP client is shipped: run one as a unit in corral.services",
    "locale": "corral sets no locale; the console passes on the LANG and LC_* an ssh client sends",
    "packages": "corral installs no packages: run software as units in corral.services",
    "package_update": "corral installs no packages",
    "package_upgrade": "corral is upgraded by replacing its image",
    "apt": "corral has no package manager",
    "growpart": "no root partition to grow: corral runs from RAM",
    "resize_rootfs": "no root filesystem to resize: corral runs from RAM",
    "power_state": "power off or reboot with `corral poweroff` / `corral reboot`",
    "final_message": "the boot's end is the journal's `boot ready` line",
    "phone_home": "no phone-home",
    "ca_certs": "the image's CA certificates are fixed",
    "ca-certs": "the image's CA certificates are fixed",
    "password": "the console's password is corral.password",
    "user": "the console has the users `rancher` and `docker`; keys go in ssh_authorized_keys",
    "ssh": "sshd runs in the console with fixed settings",
    "ssh_import_id": "keys are not fetched from Launchpad or GitHub: list them in ssh_authorized_keys",
    "ssh_publish_hostkeys": "sshd's host keys are not published to a datasource",
    "ssh_quiet_keygen": "sshd's host keys are made once, quietly",
    "ssh_fp_console_blacklist": "host key fingerprints are not written to the console",
    "ssh_key_console_blacklist": "host keys are not written to the console",
    "no_ssh_fingerprints": "host key fingerprints are not written to the console",
    "allow_public_ssh_keys": "the keys are ssh_authorized_keys (and a datasource's public keys)",
    "disable_root_opts": "root has no login over ssh; log in as rancher",
    "authkey_hash": "sshd's settings are fixed",
    "create_hostname_file": "corral always writes /etc/hostname with the host name",
    "prefer_fqdn_over_hostname": "the host name is `hostname`, as given",
    "locale_configfile": "corral sets no locale",
    "keyboard": "corral sets no keyboard layout: the console is serial or ssh",
    "random_seed": "the kernel's own entropy is used",
    "disable_ec2_metadata": "corral reads EC2 metadata only when `ec2` is in corral.cloud_init.datasources",
    "launch-index": "corral reads all of user-data; there is no multi-instance launch index",
    "vendor_data": "corral reads no vendor-data",
    "merge_how": _OWN_MERGE,
    "merge_type": _OWN_MERGE,
    "cloud_init_modules": "corral's modules and their order are fixed (docs/config.md)",
    "cloud_config_modules": "corral's modules and their order are fixed (docs/config.md)",
    "cloud_final_modules": "corral's modules and their order are fixed (docs/config.md)",
    "migrate": "corral keeps no cloud-init semaphores to migrate",
    "output": "output goes to corral's journal (corral logs)",
    "reporting": "corral reports to no webhook: its events are in the journal (corral logs)",
    "system_info": "the distribution is corral's own",
    "updates": "no network-config updates on boot events: the network follows the config "
               "(docs/networking.md)",
    "swap": "no swap file is made",
    "mount_default_fields": "mounts are corral's own rules (docs/storage.md)",
    "disk_setup": "no disk partitioning at boot: corral.state.autoformat formats a blank state disk",
    "fs_setup": "no filesystem creation at boot: corral.state.autoformat formats a blank state disk",
    "device_aliases": "no disk partitioning at boot, so no aliases",
    "resolv_conf": "/etc/resolv.conf comes from the network config (corral.network.dns, netplan nameservers)",
    "manage_resolv_conf": "/etc/resolv.conf comes from the network config (corral.network.dns, netplan "
                          "nameservers)",
    "rsyslog": "no syslog daemon: the journal is corral's (corral logs)",
    "wireguard": "no WireGuard setup: run it as a privileged unit in corral.services",
    "drivers": "no driver installation: the image's kernel modules are loaded from corral.modules and udev",
    "rpi": "corral has no Raspberry Pi support",
    "fan": "no Ubuntu FAN networking",
    "lxd": "no LXD: containers are Docker's",
    "byobu_by_default": "no byobu",
    "grub_dpkg": "corral boots from its kernel and initrd, not from GRUB installed by dpkg",
    "grub-dpkg": "corral boots from its kernel and initrd, not from GRUB installed by dpkg",
    "autoinstall": "no Ubuntu autoinstall",
    "ubuntu_pro": "not Ubuntu",
    "ubuntu_advantage": "not Ubuntu",
    "landscape": "no Landscape client: run it as a unit in corral.services",
    "rh_subscription": "not Red Hat",
    "spacewalk": "no Spacewalk client",
    "apt_pipelining": "corral has no package manager",
    "apt_update": "corral has no package manager",
    "apt_upgrade": "corral has no package manager",
    "apt_reboot_if_required": "corral has no package manager",
    "package_reboot_if_required": "corral installs no packages",
    "apk_repos": "corral has no package manager",
    "yum_repos": "corral has no package manager",
    "yum_repo_dir": "corral has no package manager",
    "zypper": "corral has no package manager",
    "snap": "no snapd: run software as units in corral.services",
    "ansible": "no configuration-management agent is run for you: run it as a unit in corral.services",
    "chef": "no configuration-management agent is run for you: run it as a unit in corral.services",
    "puppet": "no configuration-management agent is run for you: run it as a unit in corral.services",
    "salt_minion": "no configuration-management agent is run for you: run it as a unit in corral.services",
    "mcollective": "no configuration-management agent is run for you: run it as a unit in corral.services",
    "version": "a cloud-config's version marker: corral reads every cloud-config the same way",
}
"""Key path as people write it (``rancher.``: RancherOS's spelling of ``corral.``) -> what corral does
instead. Under a key, every key is ignored with it."""


def key_path(shown: str) -> KeyPath:
    """The key path a table key stands for in the merged config (``rancher.`` is ``corral.``)."""
    path = parse_path(shown)
    return ("corral", *path[1:]) if path[:1] == ("rancher",) else path


def ignored() -> dict[KeyPath, tuple[str, str]]:
    """The table as the config store takes it: key path -> (the key as written, what corral does)."""
    return {key_path(shown): (shown, what) for shown, what in NOT_IMPLEMENTED.items()}
