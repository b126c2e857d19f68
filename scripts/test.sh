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
bash scripts/lab-cleanup.sh --all

step "format"
cargo fmt --all --check
(cd ebpf/xdp && cargo +nightly fmt --check)

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
cargo test --workspace --locked

step "fuzz (every target: replay the committed corpus, then a fixed-seed search)"
cargo run --locked --quiet -p xtask -- fuzz --ci

step "leftovers"
left=$(ip netns list | awk '{print $1}' | grep -E '^st[0-9]+-' || true)
pins=$(ls -d /sys/fs/bpf/steer-test-* 2>/dev/null || true)
if [ -n "$left$pins" ]; then
  echo "tests left state behind: $left $pins" >&2
  bash scripts/lab-cleanup.sh --all
  exit 1
fi
echo "all tests passed"
