#!/usr/bin/env bash
# The test command (README, and exactly what .ci/run runs): installs what
# the tests need, checks formatting and lints, runs every test (unit, codec
# vectors, XDP fixtures, network-namespace labs with real BGP peers) and a
# bounded fuzz run of the BGP decoder. Needs root; fails loudly otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\n=== %s\n' "$*"; }

[ "$(id -u)" = 0 ] || { echo "scripts/test.sh: run as root (network namespaces, XDP, bpffs)" >&2; exit 1; }

step "setup"
bash scripts/setup.sh
bash scripts/check-setup.sh
bash scripts/lab-cleanup.sh --all

step "format"
cargo fmt --all --check
(cd ebpf/xdp && cargo +nightly fmt --check)

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
cargo test --workspace --locked

step "fuzz (BGP message decode, 60 s)"
mkdir -p fuzz/corpus/decode
cargo +nightly fuzz run decode fuzz/corpus/decode fuzz/seeds/decode -- -max_total_time=60

step "leftovers"
left=$(ip netns list | awk '{print $1}' | grep -E '^st[0-9]+-' || true)
pins=$(ls -d /sys/fs/bpf/steer-test-* 2>/dev/null || true)
if [ -n "$left$pins" ]; then
  echo "tests left state behind: $left $pins" >&2
  bash scripts/lab-cleanup.sh --all
  exit 1
fi
echo "all tests passed"
