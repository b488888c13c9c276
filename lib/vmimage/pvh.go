package vmimage

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
)

// xenElfnotePhys32Entry is the ELF note (owner "Xen") that holds a
// kernel's PVH entry point: qemu boots such an uncompressed vmlinux
// directly, without the firmware and without decompressing the kernel
// (under TCG that takes seconds off each boot).
const xenElfnotePhys32Entry = 18

// compressors are the formats a bzImage's payload may have: its magic
// and the command that decompresses it from stdin.
var compressors = []struct {
	magic []byte
	cmd   []string
}{
	{[]byte{0x02, 0x21, 0x4c, 0x18}, []string{"lz4", "-dc"}},
	{[]byte{0x28, 0xb5, 0x2f, 0xfd}, []string{"zstd", "-dcq"}},
	{[]byte{0xfd, '7', 'z', 'X', 'Z', 0x00}, []string{"xz", "-dcq"}},
	{[]byte{0x1f, 0x8b, 0x08}, []string{"gzip", "-dcq"}},
}

// ExtractPVH writes the uncompressed kernel (vmlinux) inside the bzImage
// kernel to out, if it has a PVH entry. It finds the compressed payload
// by its magic and decompresses it with the format's command (lz4, zstd,
// xz or gzip; the decompressor may complain about the bytes after the
// payload: the result counts only if it is a whole ELF file with a PVH
// note).
func ExtractPVH(kernel, out string) error {
	b, err := os.ReadFile(kernel)
	if err != nil {
		return err
	}
	var tried []string
	for _, c := range compressors {
		for off := 0; ; {
			i := bytes.Index(b[off:], c.magic)
			if i < 0 {
				break
			}
			off += i
			if _, err := exec.LookPath(c.cmd[0]); err != nil {
				tried = append(tried, c.cmd[0]+" (not installed)")
				break
			}
			cmd := exec.Command(c.cmd[0], c.cmd[1:]...)
			cmd.Stdin = bytes.NewReader(b[off:])
			vmlinux, _ := cmd.Output()
			if HasPVH(vmlinux) {
				return os.WriteFile(out, vmlinux, 0o644)
			}
			tried = append(tried, fmt.Sprintf("%s at %d", c.cmd[0], off))
			off++
		}
	}
	return fmt.Errorf("vmimage: no uncompressed kernel with a PVH entry in %s (tried %v)", kernel, tried)
}

// HasPVH reports whether b is an ELF kernel with a PVH entry note.
func HasPVH(b []byte) bool {
	if len(b) < 4 || string(b[:4]) != elf.ELFMAG {
		return false
	}
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		data := make([]byte, p.Filesz)
		if _, err := p.ReadAt(data, 0); err != nil {
			return false
		}
		if notePVH(data, f.ByteOrder) {
			return true
		}
	}
	return false
}

// notePVH walks the notes of one PT_NOTE segment.
func notePVH(data []byte, bo binary.ByteOrder) bool {
	align := func(n uint32) uint32 { return (n + 3) &^ 3 }
	for len(data) >= 12 {
		nsz, dsz, typ := bo.Uint32(data), bo.Uint32(data[4:]), bo.Uint32(data[8:])
		data = data[12:]
		if uint64(align(nsz))+uint64(align(dsz)) > uint64(len(data)) {
			return false
		}
		name := string(bytes.TrimRight(data[:nsz], "\x00"))
		if name == "Xen" && typ == xenElfnotePhys32Entry {
			return true
		}
		data = data[align(nsz)+align(dsz):]
	}
	return false
}

// BootKernel writes to out the kernel qemu should boot: the uncompressed
// PVH kernel inside kernel when it has one, else a copy of kernel.
func BootKernel(kernel, out string) error {
	if err := ExtractPVH(kernel, out); err == nil {
		return nil
	}
	return copyFile(kernel, out)
}

// InDir is the image scripts/vmimage.sh wrote into dir: vmlinux (PVH)
// when it is there, else vmlinuz, and initrd.img.
func InDir(dir string) Image {
	img := Image{Kernel: filepath.Join(dir, "vmlinux"), Initrd: filepath.Join(dir, "initrd.img")}
	if _, err := os.Stat(img.Kernel); errors.Is(err, fs.ErrNotExist) {
		img.Kernel = filepath.Join(dir, "vmlinuz")
	}
	return img
}
