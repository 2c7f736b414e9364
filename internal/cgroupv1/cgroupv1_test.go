//go:build linux

package cgroupv1

import (
	"fmt"
	"testing"
)

// What a hybrid cgroup v1 host shows after a kind 0.11.1 cluster went:
// hugetlb, perf_event and net_cls,net_prio bound to hierarchies that the
// host does not mount, holding the cgroups the node's kubelet made.
const cgroupsAfter = `#subsys_name	hierarchy	num_cgroups	enabled
cpuset	3	73	1
cpu	1	103	1
cpuacct	2	73	1
blkio	7	73	1
memory	4	1607	1
devices	5	98	1
freezer	6	73	1
net_cls	10	31	1
perf_event	11	40	1
net_prio	10	31	1
hugetlb	9	36	1
pids	8	103	1
rdma	0	1	0
`

const mountinfo = `25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
35 25 0:30 / /sys/fs/cgroup rw shared:9 - tmpfs tmpfs rw,mode=755
37 35 0:32 / /sys/fs/cgroup/cpu rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,cpu
38 35 0:33 / /sys/fs/cgroup/cpuacct rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,cpuacct
39 35 0:34 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,cpuset
40 35 0:35 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory
41 35 0:36 / /sys/fs/cgroup/devices rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,devices
42 35 0:37 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,freezer
43 35 0:38 / /sys/fs/cgroup/blkio rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,blkio
44 35 0:39 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:18 - cgroup cgroup rw,pids
45 35 0:40 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:19 - cgroup cgroup rw,name=systemd
46 35 0:41 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:20 - cgroup2 cgroup2 rw
`

func TestFindHiddenHierarchies(t *testing.T) {
	hs, err := parse(cgroupsAfter, mountinfo)
	if err != nil {
		t.Fatal(err)
	}
	want := "[hugetlb (36 cgroups) net_cls,net_prio (31 cgroups) perf_event (40 cgroups)]"
	if got := fmt.Sprint(hs); got != want {
		t.Errorf("found %s, want %s", got, want)
	}
}

func TestNothingHiddenOnACleanHost(t *testing.T) {
	clean := `#subsys_name	hierarchy	num_cgroups	enabled
cpu	1	103	1
memory	4	1607	1
net_cls	0	101	1
hugetlb	0	101	1
`
	hs, err := parse(clean, mountinfo)
	if err != nil || len(hs) != 0 {
		t.Errorf("found %v (%v), want none", hs, err)
	}
}
