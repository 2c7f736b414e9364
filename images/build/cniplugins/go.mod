// Module cniplugins builds github.com/containernetworking/plugins v1.1.1 for the kind images; see images/versions.go.
module kubevirtci.local/images/build/cniplugins

go 1.17

require github.com/containernetworking/plugins v1.1.1

require (
	github.com/alexflint/go-filemutex v1.1.0 // indirect
	github.com/containernetworking/cni v1.0.1 // indirect
	github.com/coreos/go-iptables v0.6.0 // indirect
	github.com/coreos/go-systemd/v22 v22.3.2 // indirect
	github.com/d2g/dhcp4 v0.0.0-20170904100407-a1d1b6c41b1c // indirect
	github.com/d2g/dhcp4client v1.0.0 // indirect
	github.com/godbus/dbus/v5 v5.0.4 // indirect
	github.com/mattn/go-shellwords v1.0.12 // indirect
	github.com/networkplumbing/go-nft v0.2.0 // indirect
	github.com/safchain/ethtool v0.0.0-20210803160452-9aa261dae9b1 // indirect
	github.com/vishvananda/netlink v1.1.1-0.20210330154013-f5de75959ad5 // indirect
	github.com/vishvananda/netns v0.0.0-20210104183010-2eb08e3e575f // indirect
	golang.org/x/sys v0.0.0-20210809222454-d867a43fc93e // indirect
)
