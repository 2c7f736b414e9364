// Command sriov-sim simulates SR-IOV hardware in a fake sysfs tree, for the
// end-to-end suite and for trying the provider without SR-IOV NICs.
//
//	sriov-sim -root /tmp/fake-sys -pfs kvt0p0,kvt0p1=0000:81:00.0 [-total-vfs 8]
//
// It writes the tree describing the named network links (which must exist
// on the host, e.g. veth pairs) as SR-IOV PFs, prints "ready" on standard
// output, and then plays the kernel's part of sysfs (VFs appear when
// sriov_numvfs is written, drivers bind and unbind) until it gets SIGINT or
// SIGTERM. Point SRIOV_SYSFS_ROOT at the root. With -cleanup it removes the
// tree when it stops.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/kubevirt/kubevirtci-go/internal/sriov/sriovsim"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "sriov-sim:", err)
		os.Exit(1)
	}
}

func run() error {
	root := flag.String("root", "", "directory for the fake sysfs tree (empty or absent); use it as SRIOV_SYSFS_ROOT")
	pfList := flag.String("pfs", "", "comma-separated network links to describe as PFs, each NAME or NAME=PCI-ADDRESS")
	total := flag.Int("total-vfs", sriovsim.DefaultTotalVFs, fmt.Sprintf("sriov_totalvfs of every PF (1..%d)", sriovsim.MaxVFs))
	noAutoprobe := flag.Bool("no-autoprobe", false, "leave out sriov_drivers_autoprobe (VFs then always bind to their default driver first)")
	noVFIO := flag.Bool("no-vfio", false, "leave out bus/pci/drivers/vfio-pci, as if the module were not loaded")
	noIOMMU := flag.Bool("no-iommu", false, "leave out kernel/iommu_groups, as if the IOMMU were off")
	cleanup := flag.Bool("cleanup", false, "remove the tree on exit")
	flag.Parse()
	if *root == "" || *pfList == "" {
		flag.Usage()
		return fmt.Errorf("-root and -pfs are required")
	}
	var pfs []sriovsim.PF
	for _, item := range strings.Split(*pfList, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, pci, _ := strings.Cut(item, "=")
		if _, err := net.InterfaceByName(name); err != nil {
			fmt.Fprintf(os.Stderr, "sriov-sim: warning: link %s is not in this network namespace (%v); discovery will not see it\n", name, err)
		}
		pfs = append(pfs, sriovsim.PF{Name: name, PCI: pci, TotalVFs: *total, NoAutoprobe: *noAutoprobe})
	}
	sim, err := sriovsim.New(*root, pfs, sriovsim.Options{NoVFIO: *noVFIO, NoIOMMU: *noIOMMU})
	if err != nil {
		return err
	}
	if *cleanup {
		defer os.RemoveAll(sim.Root)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stopSim, err := sim.Start(ctx)
	if err != nil {
		return err
	}
	for _, p := range sim.PFs() {
		fmt.Printf("PF %s %s total_vfs=%d\n", p.Name, p.PCI, p.TotalVFs)
	}
	fmt.Printf("ready %s\n", sim.Root)
	<-ctx.Done()
	err = stopSim()
	for _, e := range sim.Errors() {
		fmt.Fprintln(os.Stderr, "sriov-sim: refused:", e)
	}
	return err
}
