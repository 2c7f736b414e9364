package kindcfg

// KubeletCgroupV1Patch is a kind kubeadmConfigPatches entry that lets the
// kubelet of Kubernetes 1.35 and later start on a cgroup v1 host: since
// 1.35 the kubelet refuses cgroup v1 unless its KubeletConfiguration sets
// failCgroupV1 to false. kind merges it into the KubeletConfiguration
// document of every node's kubeadm config (kind v0.33.0 renders kubeadm
// v1beta4 for Kubernetes >= 1.36, v1beta3 from 1.23; the kubelet's
// configuration is kubelet.config.k8s.io/v1beta1 in both); kubeadm init
// uploads it into the kubelet-config ConfigMap, from which the joining
// nodes take theirs.
//
// Add it only on a cgroup v1 host (on cgroup v2 nothing is needed) and only
// for a node whose kubelet knows the field (1.31 and later).
func KubeletCgroupV1Patch() string {
	return "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nfailCgroupV1: false\n"
}
