#!/usr/bin/env bash
# Installs what nodevirt needs on a fresh Debian 12 machine and starts libvirt
# without systemd. Idempotent: every step checks before it acts, so `make demo`
# and `make test` can call it on every run.
set -euo pipefail

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: must run as root to install packages and start libvirtd" >&2
    exit 1
  fi
}

PKGS=(kmod libvirt-dev libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
      qemu-system-x86 qemu-utils ovmf libxml2-utils pkg-config git gcc
      iproute2 procps util-linux
      # virtiofs filesystems: libvirt starts virtiofsd, which Debian 12
      # ships in qemu-system-common (/usr/lib/qemu/virtiofsd); later
      # releases in the virtiofsd package (/usr/libexec/virtiofsd)
      qemu-system-common
      # vTPM (devices.tpm): libvirt runs swtpm for <backend type=emulator>
      # and swtpm_setup (swtpm-tools) to create a TPM's state the first time
      swtpm swtpm-tools
      # storage: reflink clone test (XFS), xz for imports, curl for the import benchmark
      xfsprogs xz-utils curl
      # e2e fidelity guests (e2e/guest_test.go): a static busybox, a
      # BIOS-bootable ISO and a FAT EFI disk (the kernel is unpacked below)
      busybox-static isolinux syslinux-common xorriso mtools
      # host configuration e2e (e2e/host_test.go): a systemd booted by
      # systemd-nspawn from a Debian tree debootstrap builds (cached in /var/tmp)
      systemd-container debootstrap
      # the status page's browser tests (internal/web, e2e/service_test.go)
      chromium
      # the Ansible example's e2e test (e2e/ansible_test.go)
      ansible-core
      # signed-commit tests (source/verify_test.go, e2e/verify_test.go)
      gnupg openssh-client)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  need_root
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Only the package install needs the network; the daemon part is skipped when
# the caller asks for the build dependencies alone (make build).
[ "${1:-}" = "--packages-only" ] && exit 0

# The e2e test guests boot Debian's kernel (it has the i6300esb watchdog
# module). It is unpacked into a cache, not installed: installing it would
# pull initramfs-tools and udev onto the host.
GUEST_KERNEL_DIR=/var/cache/nodevirt/guest-kernel
if ! ls "$GUEST_KERNEL_DIR"/boot/vmlinuz-* >/dev/null 2>&1; then
  need_root
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -1)
  if [ -z "$pkg" ]; then apt-get update -qq; pkg=$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -1); fi
  tmp=$(mktemp -d) && chmod 755 "$tmp"
  echo "setup: unpacking $pkg for the e2e test guests into $GUEST_KERNEL_DIR"
  (cd "$tmp" && apt-get -o APT::Sandbox::User=root download -qq "$pkg" >/dev/null)
  mkdir -p "$GUEST_KERNEL_DIR.tmp" && dpkg-deb -x "$tmp"/*.deb "$GUEST_KERNEL_DIR.tmp"
  # modules.dep is made by depmod at install time, which unpacking skips.
  release=$(basename "$(ls "$GUEST_KERNEL_DIR.tmp"/boot/vmlinuz-* | head -1)" | sed 's/^vmlinuz-//')
  depmod -b "$GUEST_KERNEL_DIR.tmp" "$release"
  rm -rf "$GUEST_KERNEL_DIR" && mv "$GUEST_KERNEL_DIR.tmp" "$GUEST_KERNEL_DIR"
  rm -rf "$tmp"
fi


if ! getent group libvirt-qemu >/dev/null; then need_root; groupadd --system libvirt-qemu; fi
if ! getent passwd libvirt-qemu >/dev/null; then
  need_root
  useradd --system --gid libvirt-qemu --home-dir /var/lib/libvirt --shell /usr/sbin/nologin libvirt-qemu
fi
# QEMU runs as libvirt-qemu. Without systemd-udev nobody gives /dev/kvm to the
# kvm group, and a QEMU that cannot open it makes libvirt re-probe capabilities
# on every define (tens of seconds) and fall back to TCG.
restart_libvirtd=false
if [ -c /dev/kvm ]; then
  getent group kvm >/dev/null || { need_root; groupadd --system kvm; }
  if ! id -nG libvirt-qemu | tr ' ' '\n' | grep -qx kvm; then
    need_root; usermod -a -G kvm libvirt-qemu; restart_libvirtd=true
  fi
  if [ "$(stat -c %G:%a /dev/kvm)" != "kvm:660" ]; then
    need_root; chgrp kvm /dev/kvm; chmod 0660 /dev/kvm; restart_libvirtd=true
  fi
fi
mkdir -p /var/log/libvirt /var/lib/libvirt/qemu /run/libvirt
# libvirt runs swtpm_setup as tss, which signs each new TPM's certificates
# with the local CA in /var/lib/swtpm-localca: a swtpm_setup once run there as
# root leaves files tss cannot lock, and every vTPM then fails to start.
if [ -d /var/lib/swtpm-localca ] && id tss >/dev/null 2>&1 &&
   [ -n "$(find /var/lib/swtpm-localca ! -user tss -print -quit)" ]; then
  need_root; chown -R tss /var/lib/swtpm-localca
fi

running() { pgrep -x "$1" >/dev/null 2>&1; }
if ! running virtlogd; then virtlogd -d; fi
if $restart_libvirtd && running libvirtd; then
  echo "setup: restarting libvirtd so QEMU sees /dev/kvm"
  pkill -x libvirtd || true
  for _ in $(seq 1 50); do running libvirtd || break; sleep 0.1; done
  rm -rf /var/cache/libvirt/qemu/capabilities
fi
if ! running libvirtd; then
  rm -f /run/libvirtd.pid
  libvirtd -d
fi
# libvirtd answers on its socket once it has probed QEMU; wait for that.
for _ in $(seq 1 100); do
  if virsh -c qemu:///system version >/dev/null 2>&1; then break; fi
  sleep 0.2
done
virsh -c qemu:///system version >/dev/null 2>&1 || { echo "setup: libvirtd does not answer on qemu:///system" >&2; exit 1; }
if [ ! -c /dev/kvm ]; then
  echo "setup: WARNING: /dev/kvm is missing; VMs will run under TCG emulation (slow)" >&2
elif ! virsh -c qemu:///system domcapabilities --virttype kvm >/dev/null 2>&1; then
  echo "setup: WARNING: libvirt cannot use /dev/kvm; VMs will run under TCG emulation (slow)" >&2
fi
echo "setup: libvirtd ready ($(virsh -c qemu:///system version 2>/dev/null | sed -n 's/.*hypervisor: //p' | head -1))"
