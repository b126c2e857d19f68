#!/usr/bin/env bash
# CI check of scripts/setup.sh's fresh-machine branch (issue 7): the steps
# that run only right after the packages are installed run here every time
# (STEER_SETUP_ASSUME_FRESH=1), once where /proc/1/ns is unreadable as in
# some containers (it must still succeed), and once where a step fails (it
# must exit non-zero and say what failed, never end silently).
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { printf 'check-setup: %s\n' "$*" >&2; exit 1; }
stubs=$(mktemp -d /tmp/steer-check-setup.XXXXXX)
trap 'rm -rf "$stubs"' EXIT
real_readlink=$(command -v readlink)

# 1. /proc/1/ns/net unreadable (a container whose PID 1 we may not inspect).
mkdir -p "$stubs/pid1"
cat >"$stubs/pid1/readlink" <<STUB
#!/bin/sh
case "\$*" in */proc/1/ns/*) echo "readlink: \$*: Permission denied" >&2; exit 1 ;; esac
exec $real_readlink "\$@"
STUB
chmod +x "$stubs/pid1/readlink"
out=$(PATH="$stubs/pid1:$PATH" STEER_SETUP_ASSUME_FRESH=1 bash scripts/setup.sh 2>&1) \
  || fail "setup.sh failed on a fresh-machine run with /proc/1/ns unreadable:"$'\n'"$out"
grep -q '^\[setup\] stopped [0-9]* packaged daemon(s) in this network namespace$' <<<"$out" \
  || fail "the fresh-machine branch (stopping packaged daemons) did not run:"$'\n'"$out"
grep -q '^\[setup\] ready$' <<<"$out" || fail "setup.sh did not finish:"$'\n'"$out"

# 2. A step that fails says so: our own namespace unreadable.
mkdir -p "$stubs/broken"
cat >"$stubs/broken/readlink" <<STUB
#!/bin/sh
case "\$*" in */ns/net) exit 1 ;; esac
exec $real_readlink "\$@"
STUB
chmod +x "$stubs/broken/readlink"
if out=$(PATH="$stubs/broken:$PATH" STEER_SETUP_ASSUME_FRESH=1 bash scripts/setup.sh 2>&1); then
  fail "setup.sh succeeded although a step failed:"$'\n'"$out"
fi
grep -q "^\[setup\] FAILED: cannot read this shell's network namespace" <<<"$out" \
  || fail "setup.sh failed without saying what failed:"$'\n'"$out"
echo "check-setup: fresh-machine branch ok, failures are named"
