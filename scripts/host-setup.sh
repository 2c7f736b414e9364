#!/usr/bin/env bash
# host-setup.sh prepares a Debian-like host to build and run the kind images
# of this project. Run it as root, from anywhere in a checkout. It is
# idempotent: a second run changes nothing.
#
# What it does, each step only when needed:
#   1. installs the Debian packages the image build needs (docker.io,
#      debootstrap, jq, gcc and libc6-dev for flannel's cgo, libseccomp-dev
#      and pkg-config for runc's) when missing;
#   2. when the host's capability bounding set lacks capabilities that the
#      kernel knows (some sandboxes drop CAP_SYS_RESOURCE), builds the runtime
#      wrapper cmd/runc-capwrap (needs Go), installs it as
#      $RUNC_CAPWRAP_PATH (default /usr/local/bin/runc-capwrap) and registers it
#      in /etc/docker/daemon.json as docker's default runtime; a privileged
#      container then starts with the capabilities the host can give;
#   3. starts dockerd when no engine answers (systemd when it runs, otherwise
#      dockerd in the background, logging to /var/log/dockerd.log), and
#      restarts it when step 2 changed daemon.json while it ran;
#   4. checks that the docker client on PATH can talk to the engine. A client
#      newer than the engine negotiates the API version by itself; when that
#      fails, the script says which DOCKER_API_VERSION to export.
#
# A host whose bounding set is complete gets no wrapper and no daemon.json
# change.
#
# With --podman (or HOST_SETUP_PODMAN=1) it also sets up Debian's podman for
# kind's podman provider (`CRI_BIN=podman`):
#   5. installs podman and the dnsname CNI plugin (kind's nodes find each
#      other by name) when missing;
#   6. writes /etc/containers/containers.conf.d/50-kubevirtci.conf, only with
#      what this host needs: the runtime wrapper of step 2 as podman's
#      runtime, and default ulimits within the host's limits (podman's
#      defaults, 1048576 open files and processes, cannot be set without
#      CAP_SYS_RESOURCE: `error setting rlimit type 7`).
#
# Environment:
#   RUNC_CAPWRAP_PATH     where the wrapper is installed (default /usr/local/bin/runc-capwrap)
#   DOCKERD_WAIT_SECONDS  how long to wait for the engine to answer (default 60)
#   HOST_SETUP_PODMAN     1: set up podman too (as --podman)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
wrapper=${RUNC_CAPWRAP_PATH:-/usr/local/bin/runc-capwrap}
runtime_name=capwrap
daemon_json=/etc/docker/daemon.json
wait_seconds=${DOCKERD_WAIT_SECONDS:-60}

log() { echo "host-setup: $*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it installs packages and configures dockerd)"

podman=${HOST_SETUP_PODMAN:-0}
for arg in "$@"; do
	case $arg in
	--podman) podman=1 ;;
	*) die "unknown argument $arg (usage: host-setup.sh [--podman])" ;;
	esac
done

# --- 1. packages -----------------------------------------------------------
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v jq >/dev/null || missing+=(jq)
# flannel is built with cgo (its udp backend has C code), linked statically.
command -v gcc >/dev/null || missing+=(gcc)
{ command -v dpkg >/dev/null && dpkg -s libc6-dev >/dev/null 2>&1; } || missing+=(libc6-dev)
# runc (the Kubernetes 1.36 node's) is built with cgo and seccomp, linked
# statically against libseccomp.a, which cgo finds through pkg-config.
{ command -v dpkg >/dev/null && dpkg -s libseccomp-dev >/dev/null 2>&1; } || missing+=(libseccomp-dev)
command -v pkg-config >/dev/null || missing+=(pkg-config)
if [ ${#missing[@]} -gt 0 ]; then
	command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
	log "installing ${missing[*]}"
	apt-get update -q >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

engine_answers() { timeout 10 docker info >/dev/null 2>&1; }

systemd_runs() { [ -d /run/systemd/system ]; }

start_dockerd() {
	local pid=""
	if systemd_runs; then
		systemctl start docker
	else
		log "starting dockerd in the background (log: /var/log/dockerd.log)"
		nohup dockerd >>/var/log/dockerd.log 2>&1 </dev/null &
		pid=$!
	fi
	local deadline=$((SECONDS + wait_seconds))
	while ((SECONDS < deadline)); do
		engine_answers && return 0
		if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
			local rc=0
			wait "$pid" || rc=$?
			die "dockerd exited (status $rc) before it answered 'docker info'; the last lines of /var/log/dockerd.log:
$(tail -n 5 /var/log/dockerd.log)"
		fi
		sleep 0.2
	done
	die "dockerd did not answer 'docker info' within ${wait_seconds}s; see /var/log/dockerd.log"
}

stop_dockerd() {
	if systemd_runs; then
		systemctl stop docker
		return
	fi
	local pid
	pid=$(cat /var/run/docker.pid 2>/dev/null || true)
	[ -n "$pid" ] || die "dockerd runs but /var/run/docker.pid is missing; restart it by hand"
	kill "$pid"
	local deadline=$((SECONDS + wait_seconds))
	while ((SECONDS < deadline)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.2
	done
	die "dockerd (pid $pid) did not stop within ${wait_seconds}s"
}

# --- 2. runtime wrapper ----------------------------------------------------
daemon_changed=false
need_wrapper=false
cap_bnd=$(awk '/^CapBnd:/ {print $2}' /proc/self/status)
last_cap=$(cat /proc/sys/kernel/cap_last_cap)
full=$(printf '%016x' $(((1 << (last_cap + 1)) - 1)))
if [ "$((16#$cap_bnd))" != "$((16#$full))" ]; then
	log "capability bounding set $cap_bnd lacks capabilities (kernel knows $full): the runtime wrapper is needed"
	need_wrapper=true
	command -v go >/dev/null || die "Go is needed to build cmd/runc-capwrap"
	tmp=$(mktemp)
	(cd "$repo" && CGO_ENABLED=0 go build -trimpath -o "$tmp" ./cmd/runc-capwrap)
	if ! cmp -s "$tmp" "$wrapper" 2>/dev/null; then
		install -D -m 0755 "$tmp" "$wrapper"
		log "installed $wrapper"
	fi
	rm -f "$tmp"

	mkdir -p "$(dirname "$daemon_json")"
	current='{}'
	[ -s "$daemon_json" ] && current=$(cat "$daemon_json")
	wanted=$(jq --arg name "$runtime_name" --arg path "$wrapper" \
		'.runtimes[$name] = {path: $path} | ."default-runtime" = $name' <<<"$current") ||
		die "$daemon_json is not valid JSON; fix or remove it"
	if [ "$(jq -S . <<<"$current")" != "$(jq -S . <<<"$wanted")" ]; then
		printf '%s\n' "$wanted" >"$daemon_json"
		daemon_changed=true
		log "registered $wrapper as docker's default runtime '$runtime_name' in $daemon_json"
	fi
fi

# --- 3. engine ---------------------------------------------------------------
if engine_answers; then
	if $daemon_changed; then
		log "restarting dockerd to load $daemon_json"
		if systemd_runs; then systemctl restart docker; else stop_dockerd; fi
		engine_answers || start_dockerd
	fi
else
	start_dockerd
fi

# --- 4. client and engine ----------------------------------------------------
if ! out=$(docker version 2>&1); then
	server_api=$(curl -s --unix-socket /var/run/docker.sock http://localhost/version | jq -r .ApiVersion 2>/dev/null || true)
	die "the docker client on PATH ($(command -v docker)) cannot talk to the engine${server_api:+ (engine API $server_api; try: export DOCKER_API_VERSION=$server_api)}:
$out"
fi
log "docker engine ready: client $(docker version -f '{{.Client.Version}} (API {{.Client.APIVersion}})'), engine $(docker version -f '{{.Server.Version}} (API {{.Server.APIVersion}})'), default runtime $(docker info -f '{{.DefaultRuntime}}')"

# --- 5. podman ----------------------------------------------------------------
[ "$podman" = 1 ] || exit 0
missing=()
command -v podman >/dev/null || missing+=(podman)
[ -x /usr/lib/cni/dnsname ] || missing+=(golang-github-containernetworking-plugin-dnsname)
if [ ${#missing[@]} -gt 0 ]; then
	command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
	log "installing ${missing[*]}"
	apt-get update -q >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- 6. podman's configuration ------------------------------------------------
conf=/etc/containers/containers.conf.d/50-kubevirtci.conf
body=""
# podman 4 gives containers 1048576 open files and processes unless told
# otherwise; a host with lower hard limits and no CAP_SYS_RESOURCE cannot.
# Its conmon runs with at most 32768 processes.
nofile=$(ulimit -Hn)
nproc=$(ulimit -Hu)
[ "$nproc" = unlimited ] && nproc=1048576
[ "$nproc" -gt 32768 ] && nproc=32768
if [ "$nofile" != unlimited ] && [ "$nofile" -lt 1048576 ]; then
	body+=$'[containers]\n'"default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]"$'\n'
fi
if $need_wrapper; then
	# conmon may run the runtime with a PATH without runc's folder: the
	# real runc is named.
	runc=$(command -v runc) || die "runc is not installed (podman needs it for the runtime wrapper)"
	shim=/usr/local/bin/runc-capwrap-podman
	printf '#!/bin/sh\nexec %s --capwrap-runtime=%s "$@"\n' "$wrapper" "$runc" >"$shim.tmp"
	chmod 0755 "$shim.tmp"
	mv "$shim.tmp" "$shim"
	body+=$'[engine]\nruntime = "capwrap"\n[engine.runtimes]\n'"capwrap = [\"$shim\"]"$'\n'
fi
if [ -n "$body" ]; then
	mkdir -p "$(dirname "$conf")"
	if [ "$(cat "$conf" 2>/dev/null)" != "${body%$'\n'}" ]; then
		printf '%s' "$body" >"$conf"
		log "wrote $conf"
	fi
fi
timeout 30 podman info >/dev/null || die "podman does not answer 'podman info'"
log "podman ready: $(podman version -f '{{.Client.Version}}'), network backend $(podman info -f '{{.Host.NetworkBackend}}')"
