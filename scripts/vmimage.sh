#!/bin/sh
# Usage: sh scripts/vmimage.sh [--disk] OUTDIR
#
# Builds the worker image into OUTDIR: vmlinuz (the newest Debian
# cloud kernel in /boot), vmlinux (the uncompressed kernel inside it,
# which qemu boots directly through its PVH entry: needs lz4 for Debian's
# kernel), initrd.img (busybox, a static pkgrun, the host's
# build tools with their libraries, examples/tree at /usr/pkgsrc, the
# virtio/fw_cfg/overlay/ENA modules and an /init that starts `pkgrun
# worker`) and manifest (what is in it). Nothing secret goes in: a qemu
# machine gets the server's URL on its kernel command line and its token
# through fw_cfg (see lib/provider/qemu); an EC2 instance reads them from
# its user data (lib/provider/ec2).
#
#   --disk   also write disk.img: a raw GPT disk whose EFI system
#            partition boots kernel and initramfs with systemd-boot under
#            UEFI, the snapshot of an EC2 AMI (docs/elastic-builders.md
#            says how to import it). Needs dosfstools, mtools, fdisk and
#            systemd-boot-efi; no root, no loop device.
#
# Needs linux-image-cloud-amd64, busybox-static and the packages of
# lib/vmimage's DefaultPackages (setup.sh --image installs them). Exit
# status: 0 built, 1 failed, 2 bad usage.
set -eu
usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "$0" >&2; exit 2; }
disk=
case ${1:-} in
-h | --help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
--disk) disk=-disk; shift ;;
esac
[ $# -eq 1 ] || usage
out=$1
cd "$(dirname "$0")/.."
mkdir -p "$out"
CGO_ENABLED=0 go build -o "$out/pkgrun" ./cmd/pkgrun
go run ./scripts/vmimage -o "$out" -pkgrun "$out/pkgrun" -tree examples/tree $disk >/dev/null
rm -f "$out/pkgrun"
echo "vmimage: wrote $out (vmlinux or vmlinuz, initrd.img, ${disk:+disk.img, }manifest)" >&2
