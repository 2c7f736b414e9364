package sriov

import (
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// kernelNet is the netOps of the real kernel.
type kernelNet struct{}

func (kernelNet) Host() (netNamespace, error) {
	ns, err := netns.GetFromPid(os.Getpid())
	if err != nil {
		return nil, fmt.Errorf("open the host network namespace: %w", err)
	}
	return openNamespace(ns, "host")
}

func (kernelNet) Node(pid int) (netNamespace, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("no process for the node (pid %d)", pid)
	}
	ns, err := netns.GetFromPid(pid)
	if err != nil {
		return nil, fmt.Errorf("open the network namespace of node process %d: %w", pid, err)
	}
	self, err := netns.GetFromPid(os.Getpid())
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("open the host network namespace: %w", err)
	}
	defer self.Close()
	if ns.Equal(self) {
		ns.Close()
		return nil, fmt.Errorf("node process %d shares the host's network namespace: refusing to move PFs there", pid)
	}
	return openNamespace(ns, fmt.Sprintf("node process %d", pid))
}

// openNamespace opens a netlink socket inside ns. NewHandleAt locks the OS
// thread, enters ns, creates the socket and restores the thread; requests on
// the socket then act in ns whatever thread sends them.
func openNamespace(ns netns.NsHandle, what string) (*nlNamespace, error) {
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("open a netlink socket in the %s network namespace: %w", what, err)
	}
	return &nlNamespace{ns: ns, h: h, what: what}, nil
}

type nlNamespace struct {
	ns   netns.NsHandle
	h    *netlink.Handle
	what string
}

func (n *nlNamespace) ID() string { return n.ns.UniqueId() }

func (n *nlNamespace) Close() error {
	n.h.Close()
	return n.ns.Close()
}

func (n *nlNamespace) Links() ([]linkInfo, error) {
	var links []netlink.Link
	var err error
	// A dump is interrupted when links change meanwhile; retry a few times
	// (as containernetworking's netlinksafe does).
	for range 5 {
		links, err = n.h.LinkList()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list links in the %s network namespace: %w", n.what, err)
	}
	out := make([]linkInfo, 0, len(links))
	for _, l := range links {
		a := l.Attrs()
		out = append(out, linkInfo{
			Index:     a.Index,
			Name:      a.Name,
			MAC:       a.HardwareAddr.String(),
			PermMAC:   a.PermHWAddr.String(),
			MTU:       a.MTU,
			Up:        a.Flags&net.FlagUp != 0,
			Alias:     a.Alias,
			ParentDev: a.ParentDev,
			ParentBus: a.ParentDevBus,
		})
	}
	return out, nil
}

func dev(index int) netlink.Link {
	return &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: index}}
}

func (n *nlNamespace) wrap(op string, index int, err error) error {
	if err != nil {
		return fmt.Errorf("%s of link %d in the %s network namespace: %w", op, index, n.what, err)
	}
	return nil
}

func (n *nlNamespace) SetUp(index int, up bool) error {
	if up {
		return n.wrap("set up", index, n.h.LinkSetUp(dev(index)))
	}
	return n.wrap("set down", index, n.h.LinkSetDown(dev(index)))
}

func (n *nlNamespace) SetName(index int, name string) error {
	return n.wrap("rename to "+name, index, n.h.LinkSetName(dev(index), name))
}

func (n *nlNamespace) SetMTU(index, mtu int) error {
	return n.wrap(fmt.Sprintf("set MTU %d", mtu), index, n.h.LinkSetMTU(dev(index), mtu))
}

func (n *nlNamespace) SetMAC(index int, mac string) error {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		return fmt.Errorf("MAC %q: %w", mac, err)
	}
	return n.wrap("set MAC "+mac, index, n.h.LinkSetHardwareAddr(dev(index), hw))
}

func (n *nlNamespace) SetAlias(index int, alias string) error {
	return n.wrap(fmt.Sprintf("set alias %q", alias), index, n.h.LinkSetAlias(dev(index), alias))
}

func (n *nlNamespace) MoveTo(index int, dst netNamespace) error {
	d, ok := dst.(*nlNamespace)
	if !ok {
		return fmt.Errorf("move link %d: destination is not a kernel namespace", index)
	}
	return n.wrap("move to the "+d.what+" network namespace", index, n.h.LinkSetNsFd(dev(index), int(d.ns)))
}

// defaultRouteLinks returns the interface indexes of the host namespace's
// links that carry a default route (IPv4 or IPv6, multipath included, in
// any routing table), and of the links under them: the members of a bond
// or bridge that carries one, the lower device of a VLAN (or macvlan) that
// does, and so on down. Moving any of them would cut the host off.
func defaultRouteLinks() (map[int]bool, error) {
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("listing the host's routes: %w", err)
	}
	out := map[int]bool{}
	for _, r := range routes {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		if r.LinkIndex > 0 {
			out[r.LinkIndex] = true
		}
		for _, nh := range r.MultiPath {
			if nh.LinkIndex > 0 {
				out[nh.LinkIndex] = true
			}
		}
	}
	links, err := netlink.LinkList()
	if err != nil {
		return nil, fmt.Errorf("listing the host's links: %w", err)
	}
	stack := make([]linkStack, 0, len(links))
	for _, l := range links {
		a := l.Attrs()
		stack = append(stack, linkStack{index: a.Index, master: a.MasterIndex, parent: a.ParentIndex})
	}
	return withLowerLinks(out, stack), nil
}
