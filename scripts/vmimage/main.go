// Command vmimage writes the worker image (lib/vmimage) into a
// directory: vmlinuz, vmlinux, initrd.img, manifest and, with -disk, the
// AMI's UEFI disk disk.img. scripts/vmimage.sh runs it with a static
// pkgrun built from this checkout.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pkgbulk/pkgbulk/lib/vmimage"
)

func main() {
	fl := flag.NewFlagSet("vmimage", flag.ContinueOnError)
	out := fl.String("o", "", "output directory (required)")
	pkgrun := fl.String("pkgrun", "", "static pkgrun binary (required)")
	tree := fl.String("tree", "", "pkgsrc tree to include at "+vmimage.TreePath)
	kit := fl.String("kit", "", "bootstrap kit (pkgrun kit) to include in "+vmimage.KitDir+": the worker builds with it")
	kernel := fl.String("kernel", "", "vmlinuz (default: the newest /boot/vmlinuz-*-cloud-amd64)")
	disk := fl.Bool("disk", false, "also write disk.img, a raw GPT disk that UEFI boots (an AMI's snapshot)")
	cmdline := fl.String("cmdline", vmimage.DiskCmdline, "the disk's kernel command line")
	fl.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: vmimage -o DIR -pkgrun FILE [-tree DIR] [-kit FILE] [-kernel FILE] [-disk [-cmdline LINE]]\nExit status: 0 written, 1 failed, 2 bad usage.")
		fl.PrintDefaults()
	}
	if err := fl.Parse(os.Args[1:]); err != nil {
		if err == flag.ErrHelp {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if *out == "" || *pkgrun == "" || fl.NArg() > 0 {
		fl.Usage()
		os.Exit(2)
	}
	p, err := vmimage.NewPlan(vmimage.Spec{Kernel: *kernel, Pkgrun: *pkgrun, Tree: *tree, Kit: *kit})
	if err == nil {
		var img vmimage.Image
		img, err = p.Build(*out)
		if err == nil {
			var f *os.File
			f, err = os.Create(filepath.Join(*out, "manifest"))
			if err == nil {
				err = p.WriteManifest(f)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			fmt.Println(img.Kernel)
			fmt.Println(img.Initrd)
		}
		if err == nil && *disk {
			d := filepath.Join(*out, "disk.img")
			err = vmimage.WriteDisk(context.Background(), d, p.Kernel, img.Initrd, *cmdline)
			if err == nil {
				fmt.Println(d)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vmimage:", err)
		os.Exit(1)
	}
}
