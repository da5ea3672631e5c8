#!/usr/bin/env bash
# Install the Debian packages that corral's build and tests need; only the missing ones, and fast when
# nothing is missing (one dpkg-query, no apt-get update).
#
# No service may start while installing: docker.io's dockerd would create docker0 and NAT rules on the
# host, dnsmasq would bind port 53. A policy-rc.d that exits 101 makes invoke-rc.d refuse every start; it
# is put in place only for the install and the host's own policy-rc.d (if any) is restored afterwards.
set -euo pipefail

PACKAGES=(
  python3-venv python3-dev iproute2 util-linux procps docker.io dnsmasq busybox-static e2fsprogs kmod
  iptables jq   # jq: the docs test runs the docs' `corral ... | jq` examples as written
  # the OS image (issue 6): build it (cpio, compressors), boot it (QEMU under TCG), reach it (ssh client)
  cpio zstd xz-utils binutils qemu-system-x86 openssh-client
  # udevd as a process corral supervises (`corral.udev: true`)
  udev
  # the guest test's NoCloud seed and config drive, ISOs as clouds make them (test_guest_datasources.py)
  genisoimage
  # the DHCPv6 client corral supervises (dhcpcd -6), run by the DHCPv6 integration test
  dhcpcd-base
  # bench/units_compose.py: N units against `docker-compose up -d` of the same N services (Debian's 1.29)
  docker-compose
  # the hybrid BIOS+UEFI ISO (`corral-image build --iso`: grub-mkrescue + xorriso + mtools) and the
  # UEFI firmware its test boots it with (OVMF)
  grub-pc-bin grub-efi-amd64-bin grub-common xorriso mtools ovmf
  # corral install's layout made on loop devices (integration/test_osdisk_disk.py): sfdisk, mkfs.vfat
  fdisk dosfstools
  # the installed disk as a qcow2 base and its overlays (integration/installed.py)
  qemu-utils
)

missing=()
for p in "${PACKAGES[@]}"; do
  if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != installed ]; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null; then
    sudo=(sudo)
  else
    echo "install-system-deps: missing ${missing[*]}, and not root (no sudo either)" >&2
    exit 1
  fi
fi

echo "install-system-deps: installing ${missing[*]}"
policy=/usr/sbin/policy-rc.d
backup=""
if [ -e "$policy" ]; then
  backup=$(mktemp)
  "${sudo[@]}" cp -p "$policy" "$backup"
fi
restore_policy() {
  if [ -n "$backup" ]; then
    "${sudo[@]}" cp -p "$backup" "$policy"
    rm -f "$backup"
  else
    "${sudo[@]}" rm -f "$policy"
  fi
}
trap restore_policy EXIT
printf '#!/bin/sh\n# corral install-system-deps: start no service while installing\nexit 101\n' \
  | "${sudo[@]}" tee "$policy" >/dev/null
"${sudo[@]}" chmod 755 "$policy"

# Another apt-get or dpkg (unattended-upgrades, a second make) may hold dpkg's lock: wait for it, bounded,
# rather than fail at once (apt's own wait; it covers the lists lock of `update` too).
apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Use-Pty=0
     -o DPkg::Lock::Timeout="${CORRAL_APT_LOCK_TIMEOUT:-600}")
"${apt[@]}" update -qq
"${apt[@]}" install -qq --no-install-recommends "${missing[@]}"

# On a host booted with systemd the packages also enabled their services for the next boot: disable the
# ones we just brought in (the tests start private daemons of their own).
if [ -d /run/systemd/system ]; then
  for p in "${missing[@]}"; do
    case "$p" in
      docker.io) "${sudo[@]}" systemctl disable --quiet docker.service docker.socket || true ;;
      dnsmasq) "${sudo[@]}" systemctl disable --quiet dnsmasq.service || true ;;
    esac
  done
fi

if ip -o link show docker0 >/dev/null 2>&1; then
  echo "install-system-deps: warning: docker0 exists on the host (not created by this script)" >&2
fi
