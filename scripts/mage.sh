#!/usr/bin/env bash
# Runs the mage targets (the Makefile's MAGE). The magefiles are compiled
# once into _out/bin/mage-targets with the mage pinned in go.mod, under a
# lock, and recompiled when they change: two `go tool mage` runs started at
# the same moment in one checkout (two clusters brought up side by side)
# would otherwise race on the file mage generates in magefiles/. The targets
# themselves then run in parallel.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/_out/bin/mage-targets
mkdir -p "$root/_out/bin"

stale() {
    [ ! -x "$bin" ] || [ -n "$(find "$root/magefiles" "$root/internal/toolbuild" "$root/go.mod" "$root/go.sum" -type f -newer "$bin" -print -quit)" ]
}

if stale; then
    (
        flock 9
        if stale; then
            cd "$root"
            go tool mage -compile "$bin.tmp"
            mv -f "$bin.tmp" "$bin"
        fi
    ) 9>"$root/_out/.mage.lock"
fi
cd "$root"
exec "$bin" "$@"
