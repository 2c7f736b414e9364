//go:build linux && sriovvm

package sriov

// The real SR-IOV network device plugin and sriov-cni, built from source
// (v3.4.0 and v2.7.0 of kind-1.22-sriov, v3.9.0 and v2.9.0 of kind-sriov),
// on the VFs the provider made, in the VM of `make e2e-sriov-vm`.
// SRIOV_VM_COMPONENTS names their binaries in the VM: one
// "<device plugin>,<sriov-cni>" pair per set, separated by spaces.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"

	"github.com/kubevirt/kubevirtci-go/internal/components"
)

// componentPair is a device plugin and a sriov-cni binary in the VM.
type componentPair struct{ dp, cni string }

// name is the pair's subtest: "<device plugin file>+<sriov-cni file>".
func (c componentPair) name() string { return filepath.Base(c.dp) + "+" + filepath.Base(c.cni) }

// vmComponents reads SRIOV_VM_COMPONENTS.
func vmComponents(t *testing.T) []componentPair {
	t.Helper()
	const env = "SRIOV_VM_COMPONENTS"
	var out []componentPair
	for _, f := range strings.Fields(os.Getenv(env)) {
		dp, cni, ok := strings.Cut(f, ",")
		if !ok {
			t.Fatalf("%s: %q is not <device plugin>,<sriov-cni>", env, f)
		}
		for _, p := range []string{dp, cni} {
			if _, err := os.Stat(p); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, componentPair{dp, cni})
	}
	if len(out) == 0 {
		t.Fatalf("%s is not set: it names the device plugin and sriov-cni binaries in the VM (\"<device plugin>,<sriov-cni> ...\")", env)
	}
	return out
}

// kubeletStandIn is the kubelet's device plugin Registration service on
// <dir>/kubelet.sock.
type kubeletStandIn struct {
	pluginapi.UnimplementedRegistrationServer
	dir  string
	regs chan *pluginapi.RegisterRequest
	srv  *grpc.Server
}

func startKubelet(t *testing.T, dir string) *kubeletStandIn {
	t.Helper()
	l, err := net.Listen("unix", filepath.Join(dir, "kubelet.sock"))
	must(t, err)
	k := &kubeletStandIn{dir: dir, regs: make(chan *pluginapi.RegisterRequest, 4), srv: grpc.NewServer()}
	pluginapi.RegisterRegistrationServer(k.srv, k)
	go k.srv.Serve(l)
	t.Cleanup(k.srv.Stop)
	return k
}

func (k *kubeletStandIn) Register(_ context.Context, r *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	k.regs <- r
	return &pluginapi.Empty{}, nil
}

// plugin is a device plugin process started in a node's namespace.
type plugin struct {
	cmd *exec.Cmd
	mu  sync.Mutex
	out bytes.Buffer
}

func (p *plugin) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}
func (p *plugin) log() string { p.mu.Lock(); defer p.mu.Unlock(); return p.out.String() }

// inNode runs a command in a node's network namespace with a mount
// namespace of its own, in which /sys is a sysfs mounted there (so that
// /sys/class/net and physfn/net show the node's links, as in a kind node
// with hostNetwork) and, when dpDir is set, dpDir is the kubelet's device
// plugin folder.
func inNode(pid int, dpDir string, argv ...string) *exec.Cmd {
	script := "mount -t sysfs none /sys"
	if dpDir != "" {
		script += " && mkdir -p " + pluginapi.DevicePluginPath + " && mount --bind " + dpDir + " " + pluginapi.DevicePluginPath
	}
	script += ` && exec "$@"`
	args := append([]string{"-t", fmt.Sprint(pid), "-n", "unshare", "-m", "sh", "-c", script, "sh"}, argv...)
	cmd := exec.Command("nsenter", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// TestVMDevicePlugin: each node's device plugin, fed the exact config.json
// the provider renders, registers with the kubelet and lists exactly that
// node's VFs as healthy kubevirt.io/sriov_net devices; Allocate gives the
// VF's /dev/vfio/<group> and PCIDEVICE_KUBEVIRT_IO_SRIOV_NET. Then sriov-cni
// configures the allocated VF (MAC, VLAN) as multus would for a KubeVirt VM.
// Each device plugin and sriov-cni pair of SRIOV_VM_COMPONENTS runs as a
// subtest of its own, on the same VFs.
func TestVMDevicePlugin(t *testing.T) {
	pairs := vmComponents(t)
	const vfs = 3
	e := newVMEnv(t, 2, Options{PFCountPerNode: 2, VFCount: vfs})
	as, err := e.manager().Up(context.Background(), e.nodes, e.workers)
	must(t, err)
	t.Cleanup(func() {
		if err := e.manager().Return(context.Background(), e.nodes); err != nil {
			t.Errorf("return: %v", err)
		}
		e.checkHome(t)
	})
	e.checkLent(t, as, vfs)

	params := components.DefaultParams()
	params.VFDriver = VFDriver
	for _, a := range as {
		for _, pf := range a.PFs {
			params.PFNames = append(params.PFNames, pf.Name)
		}
	}
	cfg, err := components.DevicePluginConfig(params)
	must(t, err)
	cfgFile := filepath.Join(t.TempDir(), "config.json")
	must(t, os.WriteFile(cfgFile, cfg, 0o644))

	for _, c := range pairs {
		t.Run(c.name(), func(t *testing.T) {
			for _, a := range as {
				t.Run(a.Node, func(t *testing.T) { checkComponents(t, c, e, a, params, cfgFile) })
			}
		})
	}
}

// checkComponents runs the pair's device plugin in a's node, as the kubelet
// would, allocates a VF through it and configures it with the pair's
// sriov-cni.
func checkComponents(t *testing.T, c componentPair, e *vmEnv, a Assignment, params components.Params, cfgFile string) {
	dp, cni := c.dp, c.cni
	pid, err := e.nodes.PID(context.Background(), a.Node)
	must(t, err)
	var want []string
	for _, pf := range a.PFs {
		for vf := range vfsOf(t, pf.PCI) {
			want = append(want, vf)
		}
	}
	sort.Strings(want)

	dir := t.TempDir()
	k := startKubelet(t, dir)
	p := &plugin{}
	p.cmd = inNode(pid, dir, dp, "--config-file="+cfgFile, "--resource-prefix="+params.ResourcePrefix, "-v=10", "-logtostderr")
	p.cmd.Stdout, p.cmd.Stderr = p, p
	must(t, p.cmd.Start())
	t.Cleanup(func() { p.cmd.Process.Signal(syscall.SIGTERM); p.cmd.Wait() })

	var reg *pluginapi.RegisterRequest
	select {
	case reg = <-k.regs:
	case <-time.After(60 * time.Second):
		t.Fatalf("the device plugin did not register within 60s; its log:\n%s", p.log())
	}
	if reg.ResourceName != params.Resource() || reg.Version != pluginapi.Version {
		t.Errorf("registered %q version %s, want %s %s", reg.ResourceName, reg.Version, params.Resource(), pluginapi.Version)
	}
	conn, err := grpc.NewClient("unix://"+filepath.Join(dir, reg.Endpoint), grpc.WithTransportCredentials(insecure.NewCredentials()))
	must(t, err)
	defer conn.Close()
	client := pluginapi.NewDevicePluginClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stream, err := client.ListAndWatch(ctx, &pluginapi.Empty{})
	must(t, err)
	resp, err := stream.Recv()
	must(t, err)
	var got []string
	for _, d := range resp.Devices {
		if d.Health != pluginapi.Healthy {
			t.Errorf("device %s is %s", d.ID, d.Health)
		}
		got = append(got, d.ID)
	}
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("ListAndWatch lists %v, want exactly this node's %d VFs %v\nplugin log:\n%s", got, len(want), want, p.log())
	}
	t.Logf("%s: ListAndWatch lists %d healthy %s devices: %v", a.Node, len(got), params.Resource(), got)

	id := got[0]
	ar, err := client.Allocate(ctx, &pluginapi.AllocateRequest{ContainerRequests: []*pluginapi.ContainerAllocateRequest{{DevicesIds: []string{id}}}})
	must(t, err)
	if len(ar.ContainerResponses) != 1 {
		t.Fatalf("Allocate: %d container responses", len(ar.ContainerResponses))
	}
	cr := ar.ContainerResponses[0]
	group, err := linkBase(filepath.Join(pciDir(id), "iommu_group"))
	must(t, err)
	var paths []string
	for _, d := range cr.Devices {
		paths = append(paths, d.HostPath)
	}
	if !strings.Contains(" "+strings.Join(paths, " ")+" ", " /dev/vfio/"+group+" ") {
		t.Errorf("Allocate(%s) gives devices %v, want /dev/vfio/%s among them", id, paths, group)
	}
	if env := cr.Envs["PCIDEVICE_KUBEVIRT_IO_SRIOV_NET"]; env != id {
		t.Errorf("Allocate(%s): PCIDEVICE_KUBEVIRT_IO_SRIOV_NET=%q, want %s (envs %v)", id, env, id, cr.Envs)
	}
	t.Logf("Allocate(%s): devices %v, envs %v", id, paths, cr.Envs)

	checkSRIOVCNI(t, cni, e, pid, a, id)
}

// checkSRIOVCNI runs sriov-cni ADD then DEL for a vfio-pci VF, as multus
// does for a KubeVirt VM's SR-IOV interface: ADD sets the VF's MAC and VLAN
// on the PF, DEL puts them back.
func checkSRIOVCNI(t *testing.T, cni string, e *vmEnv, nodePID int, a Assignment, vf string) {
	t.Helper()
	pf, index := vfParent(t, a, vf)
	pod := exec.Command("unshare", "--net", "sleep", "600")
	pod.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	must(t, pod.Start())
	defer func() { pod.Process.Kill(); pod.Wait() }()
	const mac, vlan = "02:00:00:00:00:42", 100
	conf := fmt.Sprintf(`{"cniVersion":"0.3.1","name":"sriov-net","type":"sriov","deviceID":%q,"vlan":%d,"mac":%q}`, vf, vlan, mac)
	before := vfInfo(t, nodePID, pf, index)
	run := func(cmd string) ([]byte, error) {
		c := inNode(nodePID, "", cni)
		c.Env = append(os.Environ(), "CNI_COMMAND="+cmd, "CNI_CONTAINERID=vmtest", "CNI_IFNAME=net1", "CNI_PATH=/",
			fmt.Sprintf("CNI_NETNS=/proc/%d/ns/net", pod.Process.Pid))
		c.Stdin = strings.NewReader(conf)
		return c.CombinedOutput()
	}
	for _, cmd := range []string{"ADD", "DEL"} {
		out, err := run(cmd)
		// DEL as the runtime sends it: again after a failure, a few
		// times. What a user relies on is that the pod's teardown ends and
		// leaves the VF as it was (checked below), whatever the attempts.
		for attempt := 2; cmd == "DEL" && err != nil && attempt <= delAttempts; attempt++ {
			t.Logf("%s: DEL %s failed (%v: %s); the runtime sends DEL again (attempt %d of %d)",
				filepath.Base(cni), vf, err, strings.Join(strings.Fields(string(out)), " "), attempt, delAttempts)
			out, err = run(cmd)
		}
		if err != nil {
			t.Fatalf("sriov-cni %s %s: %v\n%s", cmd, vf, err, out)
		}
		info := vfInfo(t, nodePID, pf, index)
		switch cmd {
		case "ADD":
			var res struct {
				Interfaces []struct{ Name, Sandbox string }
			}
			if err := json.Unmarshal(out, &res); err != nil || len(res.Interfaces) == 0 || res.Interfaces[0].Name != "net1" {
				t.Errorf("sriov-cni ADD result %s: want net1 (%v)", out, err)
			}
			if info.Mac.String() != mac || info.Vlan != vlan {
				t.Errorf("after ADD, VF %d of %s has MAC %s VLAN %d; want %s %d", index, pf, info.Mac, info.Vlan, mac, vlan)
			}
			t.Logf("sriov-cni ADD %s: %s; VF %d of %s: MAC %s VLAN %d", vf, strings.TrimSpace(string(out)), index, pf, info.Mac, info.Vlan)
		case "DEL":
			if info.Mac.String() != before.Mac.String() || info.Vlan != before.Vlan {
				t.Errorf("after DEL, VF %d of %s has MAC %s VLAN %d; want %s %d as before", index, pf, info.Mac, info.Vlan, before.Mac, before.Vlan)
			}
		}
	}
}

// delAttempts is how many times the test sends DEL, as a container
// runtime sends it again until it succeeds. sriov-cni v2.9.0's first DEL of
// a VF bound to a userspace driver (vfio-pci, KubeVirt's) fails: it does not
// keep DPDKMode in its cache (the field is `json:"-"`), so DEL takes the VF
// for a kernel one and looks for the pod's interface, which a vfio-pci VF
// never had (upstream: k8snetworkplumbingwg/sriov-cni pull request 346). It
// fails after it restored the VF's MAC and VLAN and removed its cache, so
// the second DEL succeeds; the pod's teardown ends with the VF as it was.
const delAttempts = 3

// vfParent finds the PF of a VF among an assignment's PFs, and its index.
func vfParent(t *testing.T, a Assignment, vf string) (string, int) {
	t.Helper()
	for _, pf := range a.PFs {
		matches, _ := filepath.Glob(filepath.Join(pciDir(pf.PCI), "virtfn*"))
		for _, m := range matches {
			if addr, _ := linkBase(m); addr == vf {
				var i int
				fmt.Sscanf(filepath.Base(m), "virtfn%d", &i)
				return pf.Name, i
			}
		}
	}
	t.Fatalf("VF %s belongs to none of %v", vf, a.PFs)
	return "", 0
}

// vfInfo reads a VF's MAC and VLAN from its PF's link in the node.
func vfInfo(t *testing.T, nodePID int, pf string, index int) netlink.VfInfo {
	t.Helper()
	ns, err := netns.GetFromPid(nodePID)
	must(t, err)
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	must(t, err)
	defer h.Close()
	l, err := h.LinkByName(pf)
	must(t, err)
	for _, v := range l.Attrs().Vfs {
		if v.ID == index {
			return v
		}
	}
	t.Fatalf("PF %s lists no VF %d", pf, index)
	return netlink.VfInfo{}
}
