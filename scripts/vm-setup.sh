#!/usr/bin/env bash
# vm-setup.sh prepares what `make e2e-sriov-vm` boots: QEMU 8 or newer
# (its igb device emulates an Intel 82576 with SR-IOV), a Debian kernel
# with the igb, igbvf and vfio-pci modules, and busybox-static for the
# guest's userland. Run it as root on a Debian-like host; it is idempotent
# and prints, on its last line, the folder of the kernel inputs.
#
#   1. qemu-system-x86_64 >= 8.0: when missing or older, installs
#      qemu-system-x86 from the <suite>-backports suite of the mirror the
#      host's apt sources already name (Debian 12 has QEMU 7.2, without igb);
#   2. busybox-static (the guest's userland) and pci.ids (the device plugin's);
#   3. the kernel: `apt-get download` of the linux-image package that
#      linux-image-amd64 depends on, unpacked once into the cache
#      ($KUBEVIRTCI_CACHE_DIR, else ~/.cache/kubevirtci)/vm/<package>_<version>/.
set -euo pipefail

log() { echo "vm-setup: $*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it installs packages)"
command -v apt-get >/dev/null || die "needs apt-get: install QEMU >= 8.0, busybox-static and a kernel with igb, igbvf and vfio-pci by hand"

cache=${KUBEVIRTCI_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kubevirtci}/vm
mkdir -p "$cache"

updated=false
apt_update() { $updated || { apt-get update -q >/dev/null; updated=true; }; }

qemu_major() {
	command -v qemu-system-x86_64 >/dev/null || { echo 0; return; }
	qemu-system-x86_64 --version | sed -n 's/^QEMU emulator version \([0-9]*\).*/\1/p'
}

# --- 1. QEMU ---------------------------------------------------------------
if [ "$(qemu_major)" -lt 8 ]; then
	. /etc/os-release
	suite=${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}-backports
	if ! grep -rqs -- "$suite" /etc/apt/sources.list /etc/apt/sources.list.d/; then
		# The mirror the host already uses, from its sources (never a fixed one).
		uri=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -n1)
		[ -n "$uri" ] || uri=$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
		[ -n "$uri" ] || die "found no Debian mirror in /etc/apt/sources.list{,.d} to add $suite from"
		log "adding $suite from $uri"
		echo "deb $uri $suite main" >/etc/apt/sources.list.d/kubevirtci-backports.list
		updated=false
	fi
	apt_update
	log "installing qemu-system-x86 from $suite"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q -t "$suite" --no-install-recommends qemu-system-x86 >/dev/null
	[ "$(qemu_major)" -ge 8 ] || die "qemu-system-x86_64 is $(qemu-system-x86_64 --version | head -n1), want 8.0 or newer (igb)"
fi

# --- 2. busybox ------------------------------------------------------------
# The guest has no libc: busybox must be the static build.
if ! { [ -x /bin/busybox ] && dpkg -s busybox-static >/dev/null 2>&1; }; then
	apt_update
	log "installing busybox-static"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends busybox-static >/dev/null
fi

# The device plugin reads PCI names from pci.ids.
if ! [ -f /usr/share/misc/pci.ids ]; then
	apt_update
	log "installing pci.ids"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends pci.ids >/dev/null
fi

# --- 3. kernel -------------------------------------------------------------
pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n1)
if [ -z "$pkg" ]; then
	apt_update
	pkg=$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*\)$/\1/p' | head -n1)
fi
[ -n "$pkg" ] || die "apt-cache depends linux-image-amd64 names no kernel package"
ver=$(apt-cache policy "$pkg" | sed -n 's/^ *Candidate: //p')
dir=$cache/${pkg}_$ver
if ! [ -f "$dir/.complete" ]; then
	log "downloading $pkg $ver"
	rm -rf "$dir" && mkdir -p "$dir"
	(cd "$dir" && apt-get download -q "$pkg=$ver" >/dev/null)
	dpkg-deb -x "$dir"/*.deb "$dir/root"
	rm -f "$dir"/*.deb
	touch "$dir/.complete"
	# Earlier kernels are no longer needed.
	find "$cache" -mindepth 1 -maxdepth 1 -name 'linux-image-*' ! -path "$dir" -exec rm -rf {} +
fi
echo "$dir/root"
