#!/usr/bin/env bash
# Idempotent installer for everything Steer's build, tests, demo and benchmarks
# need on a Debian 12 machine: the lab's BGP peers and tools, the nightly's
# rust-src, bpf-linker built against the nightly's own LLVM, and a bpffs mount.
# Safe to run again; each step checks before it acts and says what failed.
set -euo pipefail

log() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] FAILED: %s\n' "$*" >&2; exit 1; }
# Any command that fails without its own `|| die` still says where and what.
trap 'rc=$?; printf "[setup] FAILED (exit %s) at scripts/setup.sh:%s: %s\n" "$rc" "$LINENO" "$BASH_COMMAND" >&2' ERR

[ "$(id -u)" = 0 ] || die "run as root (apt, bpffs mount and network namespaces need it)"

export PATH="$HOME/.cargo/bin:$PATH"

PKGS=(bird2 frr gobgpd exabgp openbgpd iperf3 bpftool iproute2 ethtool tcpdump iputils-ping python3 procps psmisc util-linux)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || die "apt-get update"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]}"
fi

# The packaged daemons must not keep running in this script's own network
# namespace (the lab starts its own inside network namespaces). Only when this
# run just installed them (or STEER_SETUP_ASSUME_FRESH=1 asks to act as on a
# fresh machine, which scripts/check-setup.sh does in CI), and only processes
# in our namespace: lab daemons in other namespaces (a running test or a kept
# demo) are left alone. Our own namespace, not PID 1's: /proc/1/ns is
# unreadable in some containers.
if [ ${#missing[@]} -gt 0 ] || [ "${STEER_SETUP_ASSUME_FRESH:-0}" = 1 ]; then
  ourns=$(readlink /proc/$$/ns/net) || die "cannot read this shell's network namespace (/proc/$$/ns/net)"
  stopped=0
  for name in bird gobgpd zebra bgpd watchfrr bfdd openbgpd; do
    for pid in $(pgrep -x "$name" 2>/dev/null || true); do
      if [ "$(readlink "/proc/$pid/ns/net" 2>/dev/null || true)" = "$ourns" ]; then
        kill "$pid" 2>/dev/null && stopped=$((stopped + 1)) || true
      fi
    done
  done
  if command -v systemctl >/dev/null 2>&1 && systemctl is-system-running >/dev/null 2>&1; then
    for svc in bird frr gobgpd exabgp openbgpd; do
      systemctl disable --now "$svc" >/dev/null 2>&1 || true
    done
  fi
  log "stopped $stopped packaged daemon(s) in this network namespace"
fi

rustup toolchain list 2>/dev/null | grep -q '^nightly' \
  || die "the eBPF program and the fuzzer need the machine's preinstalled nightly toolchain (rustup toolchain list shows none)"

rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src' || {
  log "adding rust-src to the nightly toolchain"
  rustup component add rust-src --toolchain nightly || die "rustup component add rust-src --toolchain nightly"
}
for c in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c" || die "rustup component add $c"
done

if ! command -v bpf-linker >/dev/null 2>&1; then
  NL=$(rustc +nightly --print sysroot)/lib
  LLVM=$(basename "$(ls "$NL"/libLLVM.so.*-nightly | head -1)")
  MAJOR=$(rustc +nightly -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
  [ -n "$LLVM" ] && [ -n "$MAJOR" ] || die "cannot find the nightly's libLLVM under $NL"
  log "building bpf-linker against $LLVM (llvm-$MAJOR); this takes a few minutes"
  RUSTFLAGS="-L $NL -C link-arg=-l:$LLVM -C link-arg=-Wl,-rpath,$NL" \
    cargo install bpf-linker --locked --no-default-features \
      --features "llvm-$MAJOR,no-llvm-linking" >&2 \
    || die "cargo install bpf-linker (llvm-$MAJOR, linked to $LLVM)"
fi

# `ip route` shows Steer's routes as `proto steer` (211; FRR names 186-197).
if [ -d /etc/iproute2 ] && ! grep -qs '^211[[:space:]]\+steer' /etc/iproute2/rt_protos.d/steer.conf; then
  mkdir -p /etc/iproute2/rt_protos.d
  printf '# Steer (https://example.invalid/steer): routes learned by steer agent\n211\tsteer\n' \
    > /etc/iproute2/rt_protos.d/steer.conf
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz"
  cargo install cargo-fuzz --locked >&2 || die "cargo install cargo-fuzz"
fi

if [ "$(stat -f -c %T /sys/fs/bpf 2>/dev/null)" != "bpf_fs" ]; then
  log "mounting bpffs on /sys/fs/bpf"
  mkdir -p /sys/fs/bpf
  mount -t bpf bpf /sys/fs/bpf || die "mount -t bpf bpf /sys/fs/bpf"
fi

log "ready"
