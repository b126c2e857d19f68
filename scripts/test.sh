#!/usr/bin/env bash
# The test command (README, and exactly what .ci/run runs): installs what
# the tests need, checks formatting and lints, runs every test (unit, codec
# vectors, XDP fixtures, network-namespace labs with real BGP peers) and
# the deterministic fuzz step (every target replays its committed corpus,
# then searches with a fixed seed for a fixed number of runs: the same
# answer on every run). Needs root; fails loudly otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\n=== %s\n' "$*"; }

[ "$(id -u)" = 0 ] || { echo "scripts/test.sh: run as root (network namespaces, XDP, bpffs)" >&2; exit 1; }

step "setup"
bash scripts/setup.sh
bash scripts/check-setup.sh
# Leftovers of dead lab processes only: a lab another live process runs on
# this machine (a developer's test, a kept demo) is not ours to remove.
bash scripts/lab-cleanup.sh

step "format"
cargo fmt --all --check
(cd ebpf/xdp && cargo +nightly fmt --check)

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
cargo test --workspace --locked

step "demo (the README's main command, on the tests' debug build)"
cargo build --locked --quiet -p steer
STEER_BIN="${CARGO_TARGET_DIR:-target}/debug/steer" cargo run --locked --quiet -p xtask -- demo

step "fuzz (every target: replay the committed corpus, then a fixed-seed search)"
cargo run --locked --quiet -p xtask -- fuzz --ci

step "leftovers"
# Every test process of this run has exited, so whatever a dead process
# left (namespaces st<pid>-*, pins steer-test-st<pid>-*) is a leak.
dead_owner() {
  local pid
  pid=$(sed -n 's/^\(steer-test-\)\{0,1\}st\([0-9]\+\)-.*/\2/p' <<<"$1")
  [ -n "$pid" ] && [ ! -d "/proc/$pid" ]
}
left=""
for name in $(ip netns list | awk '{print $1}' | grep -E '^st[0-9]+-' || true) \
            $(ls /sys/fs/bpf 2>/dev/null | grep -E '^steer-test-st[0-9]+-' || true); do
  dead_owner "$name" && left="$left $name"
done
if [ -n "$left" ]; then
  echo "tests left state behind:$left" >&2
  bash scripts/lab-cleanup.sh
  exit 1
fi
echo "all tests passed"
