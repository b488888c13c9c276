package vmimage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// SystemdBoot is the UEFI boot loader a disk image starts (Debian's
// systemd-boot-efi).
const SystemdBoot = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"

// DiskCmdline is the kernel command line of a disk image: the console on
// the first serial port (EC2's serial console and its console output),
// and a reboot rather than a hung machine when /init fails.
const DiskCmdline = "console=ttyS0,115200 panic=-1 quiet"

// espType is the GPT partition type of an EFI system partition.
const espType = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"

// Fixed identifiers: the same kernel and initramfs give the same disk.
const (
	diskGUID = "5B3C4A1E-7D2F-4C6B-9E0A-706B6762756C"
	espGUID  = "5B3C4A1E-7D2F-4C6B-9E0A-706B67627501"
	fatID    = "706b6762"
)

// DiskTools are the programs WriteDisk runs (Debian packages
// dosfstools, mtools, fdisk) and the boot loader it copies.
var DiskTools = []string{"mkfs.vfat", "mmd", "mcopy", "sfdisk"}

// CheckDiskTools says which of DiskTools and SystemdBoot are missing.
func CheckDiskTools() error {
	var missing []string
	for _, t := range DiskTools {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	if _, err := os.Stat(SystemdBoot); err != nil {
		missing = append(missing, SystemdBoot)
	}
	if len(missing) > 0 {
		return fmt.Errorf("vmimage: disk image: missing %s (apt-get install dosfstools mtools fdisk systemd-boot-efi)", strings.Join(missing, ", "))
	}
	return nil
}

// WriteDisk writes to out a raw disk image that UEFI firmware boots (an
// EC2 AMI in boot mode uefi, or qemu with OVMF): a GPT with one EFI
// system partition (FAT32) that holds systemd-boot at the removable-media
// path EFI/BOOT/BOOTX64.EFI and one loader entry booting kernel (a
// bzImage: the EFI stub; not the PVH vmlinux) with initrd and cmdline
// ("" for DiskCmdline). No root and no loop device: mkfs.vfat and mtools
// work on the partition's own file, sfdisk writes the partition table,
// and the partition is copied in at its offset. out is replaced only
// when all went well.
func WriteDisk(ctx context.Context, out, kernel, initrd, cmdline string) error {
	if err := CheckDiskTools(); err != nil {
		return err
	}
	if cmdline == "" {
		cmdline = DiskCmdline
	}
	if strings.ContainsAny(cmdline, "\n\r") {
		return errors.New("vmimage: disk image: the kernel command line has a line break")
	}
	var need int64
	for _, f := range []string{kernel, initrd, SystemdBoot} {
		fi, err := os.Stat(f)
		if err != nil {
			return fmt.Errorf("vmimage: disk image: %w", err)
		}
		need += fi.Size()
	}
	const mib = 1 << 20
	// FAT32 overhead (two FATs of 4 bytes a cluster) and room to spare,
	// at least the 64 MiB below which mkfs.vfat would not make FAT32.
	espSize := (need + need/16 + 8*mib + mib - 1) / mib * mib
	if espSize < 64*mib {
		espSize = 64 * mib
	}
	tmp, err := os.MkdirTemp(filepath.Dir(out), ".disk-")
	if err != nil {
		return fmt.Errorf("vmimage: disk image: %w", err)
	}
	defer os.RemoveAll(tmp)
	run := func(name string, args ...string) error {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1", "TZ=UTC")
		b, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("vmimage: disk image: %s %s: %w\n%s", name, strings.Join(args, " "), err, b)
		}
		return nil
	}
	esp := filepath.Join(tmp, "esp.img")
	if err := run("mkfs.vfat", "-F", "32", "-n", "PKGBULK", "-i", fatID, "-C", esp, fmt.Sprint(espSize/1024)); err != nil {
		return err
	}
	files := map[string][]byte{
		"loader.conf": []byte("default pkgbulk.conf\ntimeout 0\neditor no\n"),
		"pkgbulk.conf": []byte("title pkgbulk worker\nlinux /vmlinuz\ninitrd /initrd.img\noptions " +
			cmdline + "\n"),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(tmp, name), b, 0o644); err != nil {
			return fmt.Errorf("vmimage: disk image: %w", err)
		}
	}
	if err := run("mmd", "-i", esp, "::/EFI", "::/EFI/BOOT", "::/loader", "::/loader/entries"); err != nil {
		return err
	}
	for _, c := range [][2]string{
		{SystemdBoot, "::/EFI/BOOT/BOOTX64.EFI"},
		{filepath.Join(tmp, "loader.conf"), "::/loader/loader.conf"},
		{filepath.Join(tmp, "pkgbulk.conf"), "::/loader/entries/pkgbulk.conf"},
		{kernel, "::/vmlinuz"},
		{initrd, "::/initrd.img"},
	} {
		if err := run("mcopy", "-i", esp, c[0], c[1]); err != nil {
			return err
		}
	}
	// The partition starts at 1 MiB; the backup GPT takes the last 33
	// sectors of the disk.
	disk := filepath.Join(tmp, "disk.img")
	f, err := os.Create(disk)
	if err != nil {
		return fmt.Errorf("vmimage: disk image: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(mib + espSize + mib); err != nil {
		return fmt.Errorf("vmimage: disk image: %w", err)
	}
	script := fmt.Sprintf("label: gpt\nlabel-id: %s\nunit: sectors\nfirst-lba: 2048\n"+
		"start=2048, size=%d, type=%s, uuid=%s, name=\"EFI system partition\"\n", diskGUID, espSize/512, espType, espGUID)
	cmd := exec.CommandContext(ctx, "sfdisk", "--no-reread", "--no-tell-kernel", "--quiet", disk)
	cmd.Stdin = strings.NewReader(script)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("vmimage: disk image: sfdisk: %w\n%s", err, b)
	}
	ef, err := os.Open(esp)
	if err != nil {
		return fmt.Errorf("vmimage: disk image: %w", err)
	}
	defer ef.Close()
	n, err := io.Copy(io.NewOffsetWriter(f, mib), ef)
	if err == nil && n != espSize {
		err = fmt.Errorf("copied %d bytes of the %d-byte partition", n, espSize)
	}
	if err == nil {
		err = f.Close()
	}
	if err == nil {
		err = os.Rename(disk, out)
	}
	if err != nil {
		return fmt.Errorf("vmimage: disk image %s: %w", out, err)
	}
	return nil
}
