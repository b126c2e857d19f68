#!/usr/bin/env bash
# The seed scenario of Steer in network namespaces, in one command:
#
#   bash scripts/demo.sh            install what is missing, build, start the lab,
#                                   walk through it, tear it down
#   bash scripts/demo.sh --keep     the same, but leave the lab up to poke around
#   bash scripts/demo.sh show       walk through a kept lab again
#   bash scripts/demo.sh down       tear a kept (or crashed) lab down
#
# Options: --keep, --no-build (skip scripts/setup.sh and cargo; use the
# existing target/release/steer). Environment: STEER_BIN (a steer binary to
# use; implies --no-build), STEER_DEMO_TIMEOUT (seconds to wait for BGP, 60).
#
# The lab (namespaces sd-*, bridged LAN 10.1.0.0/24 in sd-lan):
#   sd-rs1 10.1.0.4, sd-rs2 10.1.0.5    steer server x2 (AS 65515)
#   sd-sdwan 10.1.0.10                  BIRD, AS 65010, announces 10.250.0.0/16 (10.250.0.1 on lo)
#   sd-firewall 10.1.0.20               FRR,  AS 65020, announces 0.0.0.0/0    (203.0.113.1 on lo)
#   sd-host1 10.1.0.31, sd-host2 .32    steer agent (table 200, XDP on vm1/vm2)
#   sd-vm1 10.1.1.10, sd-vm2 10.1.2.10  the VMs, behind their host's vmN interface
# Nothing is added to the root namespace: every daemon and command runs
# inside the lab's namespaces (entered with nsenter, which keeps the root
# /sys so the agents' bpffs pins stay visible), state lives in
# /run/steer-demo and pins in /sys/fs/bpf/steer-demo; `down` removes them all.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TEMPLATES=$ROOT/scripts/demo
STATE=/run/steer-demo
PINS=/sys/fs/bpf/steer-demo
P=sd-
NODES=(lan rs1 rs2 sdwan firewall host1 host2 vm1 vm2)
TIMEOUT=${STEER_DEMO_TIMEOUT:-60}

export PATH="$HOME/.cargo/bin:$PATH"
if [ -n "${SUDO_USER:-}" ] && ! command -v cargo >/dev/null 2>&1; then
  PATH="$(getent passwd "$SUDO_USER" | cut -d: -f6)/.cargo/bin:$PATH"
fi

# ---------------------------------------------------------------- output

if [ -t 1 ]; then B=$'\e[1m'; D=$'\e[2m'; G=$'\e[32m'; R=$'\e[31m'; N=$'\e[0m'; else B='' D='' G='' R='' N=''; fi
section() { printf '\n%s== %s ==%s\n' "$B" "$*" "$N"; }
say() { printf '%s\n' "$*"; }
note() { printf '%s%s%s\n' "$D" "$*" "$N"; }
ok() { printf '%s✔ %s%s\n' "$G" "$*" "$N"; }
# Prints a command as the reader would type it (the lab's own paths and
# namespaces), then its output, indented.
show() {
  local shown=$1; shift
  printf '%s$ %s%s\n' "$B" "$shown" "$N"
  if ! "$@" 2>&1 | sed 's/^/    /'; then
    check_daemons
    die "\`$shown\` failed"
  fi
}
die() {
  printf '\n%sdemo FAILED: %s%s\n' "$R" "$*" "$N" >&2
  exit 1
}

usage() {
  local rc=${1:-0}
  sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&$((rc == 0 ? 1 : 2))
  exit "$rc"
}

# ---------------------------------------------------------------- helpers

# Runs a command inside lab node $1 (sd-$1). nsenter fails if the namespace
# does not exist, so nothing ever runs in the root namespace by mistake.
in_ns() {
  local node=$1; shift
  nsenter --net="/run/netns/$P$node" -- "$@"
}
ipn() { local node=$1; shift; ip -n "$P$node" "$@"; }

steer_bin() {
  if [ -n "${STEER_BIN:-}" ]; then echo "$STEER_BIN"; return; fi
  echo "${CARGO_TARGET_DIR:-$ROOT/target}/release/steer"
}

# `steer show ...` against the control socket of daemon $1 (rs1, host1, ...).
steer_show() {
  local who=$1; shift
  "$STEER" show "$@" --socket "$STATE/$who/steer.sock"
}
birdc_() { birdc -s "$STATE/sdwan/bird.ctl" "$@"; }
vtysh_() { vtysh --vty_socket "$STATE/firewall" "$@"; }

json() { python3 -c "import json,sys; v=json.load(sys.stdin); print($1)"; }

# wait_until SECONDS WHAT CMD...: polls CMD every 0.2 s; dies if a daemon died.
wait_until() {
  local secs=$1 what=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      die "$what: not within ${secs} s"
    fi
    check_daemons
    sleep 0.2
  done
}

# Starts a daemon in a node, detached from the terminal (so Ctrl-C reaches
# only this script, which then tears down), logging to $STATE/<name>.log.
start() {
  local name=$1 node=$2; shift 2
  setsid nsenter --net="/run/netns/$P$node" -- "$@" \
    </dev/null >"$STATE/$name.log" 2>&1 &
  echo "$! $name" >>"$STATE/pids"
}

# The daemons' own logs (their stdout/stderr is in $STATE/<name>.log).
daemon_logs() {
  case $1 in
    bird) echo "$STATE/sdwan/bird.log" ;;
    zebra|bgpd) echo "$STATE/firewall/$1.log" ;;
  esac
  echo "$STATE/$1.log"
}

# Is pid $1 running (and not a zombie waiting to be reaped)?
alive() { [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

check_daemons() {
  [ -f "$STATE/pids" ] || return 0
  local pid name f
  while read -r pid name; do
    alive "$pid" && continue
    for f in $(daemon_logs "$name"); do
      [ -s "$f" ] && printf -- '--- %s\n%s\n' "$f" "$(tail -n 10 "$f")" >&2
    done
    die "$name (pid $pid) is no longer running; its log is above"
  done <"$STATE/pids"
}

render() {
  local template=$1 out=$2; shift 2
  local args=() kv
  for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
  sed "${args[@]}" "$TEMPLATES/$template" >"$out"
}

# ---------------------------------------------------------------- teardown

lab_exists() {
  [ -d "$STATE" ] || [ -d "$PINS" ] && return 0
  local n
  for n in "${NODES[@]}"; do [ -e "/run/netns/$P$n" ] && return 0; done
  return 1
}

# Stops the given pids: TERM, up to 5 s, then KILL.
stop_pids() {
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null || true
  local _ p alive
  for _ in $(seq 50); do
    alive=0
    for p in "$@"; do alive "$p" && alive=1; done
    [ $alive = 0 ] && return 0
    sleep 0.1
  done
  kill -KILL "$@" 2>/dev/null || true
}

lab_down() {
  local pids=() pid name n frr_pids=()
  # 1. The daemons this demo started, by the pids it recorded (agents first:
  #    with flush_on_exit they remove their routes, rules and XDP).
  if [ -f "$STATE/pids" ]; then
    while read -r pid name; do
      case $name in zebra|bgpd) frr_pids+=("$name.$pid") ;; esac
      alive "$pid" && pids+=("$pid")
    done < <(sort -k2 "$STATE/pids")
  fi
  stop_pids "${pids[@]}"
  # 2. Anything else still running inside the lab's namespaces (tcpdump,
  #    ping, daemons of a run whose state dir is gone).
  for n in "${NODES[@]}"; do
    [ -e "/run/netns/$P$n" ] || continue
    mapfile -t pids < <(ip netns pids "$P$n" 2>/dev/null)
    stop_pids "${pids[@]}"
  done
  # 3. Namespaces (their interfaces, routes, rules and XDP go with them).
  for n in "${NODES[@]}"; do
    if [ -e "/run/netns/$P$n" ]; then ip netns del "$P$n" 2>/dev/null || true; fi
  done
  # 4. bpffs pins, FRR's per-daemon crash-log dirs, our state.
  rm -rf "$PINS"
  for n in "${frr_pids[@]}"; do rm -rf "/var/tmp/frr/$n"; done
  if [ -f "$STATE/created-var-tmp-frr" ] && [ -d /var/tmp/frr ]; then
    rmdir /var/tmp/frr 2>/dev/null || true
  fi
  if [ -f "$STATE/created-run-netns" ] && [ -d /run/netns ] && [ -z "$(ls -A /run/netns)" ]; then
    umount /run/netns 2>/dev/null || true
    rmdir /run/netns 2>/dev/null || true
  fi
  # (maps.debug and progs.debug are the kernel's own iterators on every bpffs.)
  if [ -f "$STATE/mounted-bpffs" ] && ! find /sys/fs/bpf -mindepth 1 -maxdepth 1 \
      ! -name maps.debug ! -name progs.debug | grep -q .; then
    umount /sys/fs/bpf 2>/dev/null || true
  fi
  rm -rf "$STATE"
}

# ---------------------------------------------------------------- lab

veth() { # veth NODE_A IF_A NODE_B IF_B
  ipn "$1" link add "$2" type veth peer name "$4" netns "$P$3"
}
# Address (or none), GRO on (a frame XDP redirects into a veth is dropped
# unless the receiving end has NAPI), up.
ifup() { # ifup NODE IF [ADDR]
  [ -z "${3:-}" ] || ipn "$1" addr add "$3" dev "$2"
  in_ns "$1" ethtool -K "$2" gro on >/dev/null
  ipn "$1" link set "$2" up
}
attach() { # attach NODE ADDR: eth0 in NODE, port NODE on the LAN bridge
  veth "$1" eth0 lan "$1"
  ipn lan link set "$1" master br0
  ifup lan "$1"
  ifup "$1" eth0 "$2"
}

build_lab() {
  local n
  for n in "${NODES[@]}"; do
    ip netns add "$P$n"
    ipn "$n" link set lo up
  done
  ipn lan link add br0 type bridge stp_state 0 forward_delay 0
  ipn lan link set br0 up
  attach rs1 10.1.0.4/24
  attach rs2 10.1.0.5/24
  attach sdwan 10.1.0.10/24
  attach firewall 10.1.0.20/24
  ipn sdwan addr add 10.250.0.1/16 dev lo       # "on-prem"
  ipn firewall addr add 203.0.113.1/24 dev lo   # "the internet"
  for n in 1 2; do
    attach "host$n" "10.1.0.3$n/24"
    in_ns "host$n" sysctl -qw net.ipv4.ip_forward=1
    veth "host$n" "vm$n" "vm$n" eth0
    ifup "host$n" "vm$n" "10.1.$n.1/24"
    ifup "vm$n" eth0 "10.1.$n.10/24"
    ipn "vm$n" route add default via "10.1.$n.1"
    # The guest computes its own checksums, so XDP can forward TCP/UDP too.
    in_ns "vm$n" ethtool -K eth0 tx off >/dev/null
  done
}

start_daemons() {
  local n
  for n in 1 2; do
    mkdir -p "$STATE/rs$n"
    render rs.toml "$STATE/rs$n/steer.toml" NAME="rs$n" ADDR="10.1.0.$((n + 3))"
    "$STEER" check server --config "$STATE/rs$n/steer.toml" >/dev/null
    start "rs$n" "rs$n" "$STEER" server --config "$STATE/rs$n/steer.toml" \
      --socket "$STATE/rs$n/steer.sock"
  done

  mkdir -p "$STATE/sdwan"
  render sdwan-bird.conf "$STATE/sdwan/bird.conf" DIR="$STATE/sdwan"
  bird -p -c "$STATE/sdwan/bird.conf"
  # Started as `bird-sdwan` (a symlink): scripts/setup.sh stops every
  # process named exactly `bird`, and a kept lab should survive a test run.
  ln -sf "$(command -v bird)" "$STATE/sdwan/bird-sdwan"
  start bird sdwan "$STATE/sdwan/bird-sdwan" -f -c "$STATE/sdwan/bird.conf" \
    -s "$STATE/sdwan/bird.ctl" -P "$STATE/sdwan/bird.pid"

  local d=$STATE/firewall
  mkdir -p "$d"
  chgrp frrvty "$d" && chmod 0770 "$d"
  render firewall-zebra.conf "$d/zebra.conf" DIR="$d"
  render firewall-bgpd.conf "$d/bgpd.conf" DIR="$d"
  local frr=(-u root -g frrvty --vty_socket "$d" -z "$d/zserv.api")
  start zebra firewall /usr/lib/frr/zebra "${frr[@]}" -i "$d/zebra.pid" -f "$d/zebra.conf"
  wait_until 20 "FRR zebra in sd-firewall: no zserv socket" test -S "$d/zserv.api"
  start bgpd firewall /usr/lib/frr/bgpd "${frr[@]}" -i "$d/bgpd.pid" -f "$d/bgpd.conf"

  mkdir -p "$PINS"
  for n in 1 2; do
    mkdir -p "$STATE/host$n"
    render agent.toml "$STATE/host$n/steer.toml" N="$n" PIN_DIR="$PINS/host$n"
    "$STEER" check agent --config "$STATE/host$n/steer.toml" >/dev/null
    start "agent$n" "host$n" "$STEER" agent --config "$STATE/host$n/steer.toml" \
      --socket "$STATE/host$n/steer.sock"
  done
}

# ---------------------------------------------------------------- readiness

all_established() { # all_established DAEMON COUNT
  steer_show "$1" peers --json |
    json "int(len(v) == $2 and all(p['status']['state'] == 'Established' for p in v))" |
    grep -qx 1
}
bird_established() { birdc_ show protocols "$1" | grep -q Established; }
frr_established() {
  vtysh_ -c "show bgp neighbors $1 json" | grep -q '"bgpState":"Established"'
}
has_route() { # has_route NODE [ip route args...] PATTERN
  local node=$1 pattern=${*: -1}
  set -- "${@:2:$#-2}"
  ipn "$node" route show "$@" | grep -q -- "$pattern"
}

wait_ready() {
  local n
  say "waiting for the BGP sessions (up to ${TIMEOUT} s) ..."
  wait_until "$TIMEOUT" "BIRD (sdwan) session to rs1 Established" bird_established rs1
  wait_until "$TIMEOUT" "BIRD (sdwan) session to rs2 Established" bird_established rs2
  wait_until "$TIMEOUT" "FRR (firewall) session to rs1 Established" frr_established 10.1.0.4
  wait_until "$TIMEOUT" "FRR (firewall) session to rs2 Established" frr_established 10.1.0.5
  for n in 1 2; do
    wait_until "$TIMEOUT" "agent on host$n: both route-server sessions Established" all_established "host$n" 2
  done
  for n in 1 2; do
    wait_until "$TIMEOUT" "rs$n: 2 appliances + 2 hosts Established" all_established "rs$n" 4
  done
  ok "all 8 sessions (2 appliances + 2 hosts, each to both route servers) Established after $((SECONDS - T_LAB)) s"
  say "waiting for the routes ..."
  for n in 1 2; do
    wait_until 30 "host$n table 200: 10.250.0.0/16 (from the SD-WAN)" has_route "host$n" table 200 "^10.250.0.0/16"
    wait_until 30 "host$n table 200: default (from the firewall)" has_route "host$n" table 200 "^default"
    wait_until 30 "sdwan kernel: 10.1.$n.0/24 (host$n's VMs)" has_route sdwan "^10.1.$n.0/24 via 10.1.0.3$n"
    wait_until 30 "firewall kernel: 10.1.$n.0/24 (host$n's VMs)" has_route firewall "^10.1.$n.0/24 .*via 10.1.0.3$n"
  done
  ok "routes in place"
}

# ---------------------------------------------------------------- walkthrough

forwarded() { # XDP packets forwarded on host $1 (all CPUs)
  steer_show "$1" fib --json | json "v['xdp_counters']['forwarded'][0]"
}

S="scripts/demo.sh"

walk_sessions() {
  section "1. BGP sessions"
  note "Two route servers (steer server rs1, rs2: AS 65515). Each has an eBGP session to"
  note "both appliances (SD-WAN: BIRD, firewall: FRR) and an iBGP + ADD-PATH session to"
  note "the agent on each host (dynamic neighbours from [hosts] ranges)."
  local n
  for n in 1 2; do
    show "steer show peers --socket $STATE/rs$n/steer.sock" steer_show "rs$n" peers
  done
  note "The same sessions seen from the appliances themselves:"
  show "birdc -s $STATE/sdwan/bird.ctl show protocols    # SD-WAN (BIRD)" \
    sh -c "birdc -s '$STATE/sdwan/bird.ctl' show protocols | grep -E '^(Name|rs)'"
  show "vtysh --vty_socket $STATE/firewall -c 'show bgp summary'    # firewall (FRR)" \
    sh -c "vtysh --vty_socket '$STATE/firewall' -c 'show bgp ipv4 unicast summary' | sed -n '/^Neighbor/,/^$/p'"
}

walk_routes() {
  section "2. Routes learned from each appliance, and what was advertised to it"
  note "rs1 shown; rs2 holds the same. The route servers program nothing themselves."
  show "steer show routes --peer sdwan" steer_show rs1 routes --peer sdwan
  show "steer show routes --peer firewall" steer_show rs1 routes --peer firewall
  note "(R: FRR passes on the VM prefixes it learned from the route servers, as BGP does;"
  note "the route server refuses them because its own AS 65515 is already in the path.)"
  note "Advertised to the appliances: the VNet space (next hop: the route server) and each"
  note "host's VM prefix (next hop: that host), so replies come straight back to the host:"
  show "steer show routes --peer sdwan --advertised" steer_show rs1 routes --peer sdwan --advertised
  show "steer show routes --peer firewall --advertised" steer_show rs1 routes --peer firewall --advertised
  note "What the appliances installed from that (their own kernel tables):"
  show "ip netns exec ${P}sdwan ip route show proto bird" ipn sdwan route show proto bird
  show "ip netns exec ${P}firewall ip route show proto bgp" ipn firewall route show proto bgp
}

walk_hosts() {
  section "3. Each host's effective routes"
  note "Only the VM interface's traffic uses table 200 (ip rules); the host's own traffic"
  note "keeps its main table, so the learned default route never captures the hypervisor."
  local n
  for n in 1 2; do
    say ""
    say "${B}-- host$n (VM interface vm$n, VM 10.1.$n.10) --${N}"
    show "ip netns exec ${P}host$n ip rule" ipn "host$n" rule
    show "ip netns exec ${P}host$n ip route show table 200" ipn "host$n" route show table 200
    show "steer show fib --socket $STATE/host$n/steer.sock" steer_show "host$n" fib
  done
  say ""
  note "The XDP program's own maps, read straight from bpffs (not through the agent)."
  note "Raw: key = prefix length (u32, little endian) + address; value = action (1 pass,"
  note "2 forward) + next-hop set id:"
  show "bpftool map dump pinned $PINS/host1/STEER_LPM4" \
    bpftool map dump pinned "$PINS/host1/STEER_LPM4"
  show "scripts/demo/xdp-maps.py $PINS/host1 lpm    # decoded, with STEER_NHSETS" \
    python3 "$TEMPLATES/xdp-maps.py" "$PINS/host1" lpm
}

# capture NODE FILE: tcpdump on the node's LAN interface, in the background
# (nsenter execs timeout, so $! is the pid that forwards our SIGTERM to tcpdump).
capture() {
  nsenter --net="/run/netns/$P$1" -- timeout 10 \
    tcpdump -l -n -e -t -i eth0 'icmp[icmptype] == icmp-echo' >"$2" 2>"$2.err" &
  CAPTURES+=($!)
  wait_until 5 "tcpdump in $P$1 did not start" grep -q "listening on" "$2.err"
}

proof() { # proof VM_N TARGET EXPECT_NODE LABEL
  local n=$1 dst=$2 want=$3 label=$4 d=$STATE/proof/vm$1-$2
  mkdir -p "$d"
  CAPTURES=()
  capture sdwan "$d/sdwan"
  capture firewall "$d/firewall"
  local before after
  before=$(forwarded "host$n")
  local rc=0 out
  out=$(in_ns "vm$n" ping -c 5 -i 0.2 -W 1 "$dst" 2>&1) || rc=$?
  printf '%s$ %s%s\n' "$B" "ip netns exec ${P}vm$n ping -c 5 $dst    # $label" "$N"
  tail -n 2 <<<"$out" | sed 's/^/    /'
  sleep 0.3
  kill -TERM "${CAPTURES[@]}" 2>/dev/null || true
  wait "${CAPTURES[@]}" 2>/dev/null || true
  after=$(forwarded "host$n")
  local mac seen_want seen_other other
  mac=$(ipn "host$n" -br link show eth0 | awk '{print $3}')
  other=sdwan; [ "$want" = sdwan ] && other=firewall
  seen_want=$(grep -c "10.1.$n.10 > $dst" "$d/$want" || true)
  seen_other=$(grep -c "10.1.$n.10 > $dst" "$d/$other" || true)
  say "    captured on $want's eth0 (tcpdump -e: source MAC > destination MAC):"
  grep "10.1.$n.10 > $dst" "$d/$want" | head -n 2 |
    sed -E 's/, ethertype IPv4 \(0x0800\), length [0-9]+//; s/^/      /'
  say "    echo requests from 10.1.$n.10 seen: $want $seen_want, $other $seen_other;" \
    "source MAC $mac = host$n's eth0 (straight from the host)"
  say "    XDP forwarded on host$n: $before -> $after (+$((after - before)))"
  [ $rc = 0 ] || die "vm$n cannot reach $dst ($label)"
  [ "$seen_want" -ge 5 ] || die "vm$n -> $dst: only $seen_want echo requests arrived at $want"
  [ "$seen_other" = 0 ] || die "vm$n -> $dst: $seen_other echo requests went to $other"
  [ $((after - before)) -ge 5 ] || die "vm$n -> $dst: XDP forwarded only $((after - before)) packets"
  ok "vm$n -> $dst reached the $label appliance, replies came back, XDP forwarded it"
}

walk_traffic() {
  section "4. Live proof: VM traffic goes straight to the right appliance"
  note "tcpdump runs on both appliances while a VM pings; the XDP counters come from"
  note "'steer show fib' before and after."
  local n
  for n in 1 2; do
    in_ns "vm$n" ping -c 1 -W 1 -q 10.250.0.1 >/dev/null 2>&1 || true   # warm-up (ARP)
    in_ns "vm$n" ping -c 1 -W 1 -q 203.0.113.1 >/dev/null 2>&1 || true
  done
  for n in 1 2; do
    say ""
    proof "$n" 10.250.0.1 sdwan "SD-WAN (on-prem)"
    say ""
    proof "$n" 203.0.113.1 firewall "firewall (internet)"
  done
  say ""
  note "VM to VM across hosts: host1 sends it straight to host2 (10.1.2.0/24 via 10.1.0.32,"
  note "host2's VM prefix, learned through the route servers), never via an appliance:"
  show "ip netns exec ${P}vm1 ping -c 3 10.1.2.10" \
    sh -c "nsenter --net=/run/netns/${P}vm1 -- ping -c 3 -i 0.2 -W 1 10.1.2.10 | tail -n 2"
  in_ns vm1 ping -c 1 -W 1 -q 10.1.2.10 >/dev/null 2>&1 || die "vm1 cannot reach vm2"
  say ""
  note "XDP counters after the pings (pass_* = handed to the kernel, e.g. ARP and broadcasts):"
  for n in 1 2; do
    show "steer show fib --socket $STATE/host$n/steer.sock    # host$n, counters only" \
      sh -c "'$STEER' show fib --socket '$STATE/host$n/steer.sock' | sed -n '/^XDP COUNTER/,\$p'"
  done
  show "scripts/demo/xdp-maps.py $PINS/host1 counters    # the same, from bpffs" \
    python3 "$TEMPLATES/xdp-maps.py" "$PINS/host1" counters
}

walk() {
  walk_sessions
  walk_routes
  walk_hosts
  walk_traffic
}

poke_help() {
  cat <<EOF
The lab is up. Poke around (as root; namespaces: ip netns list | grep ^$P):

  # kernel state of a host (the VM's traffic uses table 200 through the ip rules)
  ip netns exec ${P}host1 ip route show table 200
  ip netns exec ${P}host1 ip rule
  ip netns exec ${P}host1 ip -d link show vm1        # the XDP program on the VM interface

  # the XDP maps, pinned on bpffs ($PINS/host1 and host2)
  bpftool map dump pinned $PINS/host1/STEER_LPM4
  bpftool map dump pinned $PINS/host1/STEER_COUNTERS
  $TEMPLATES/xdp-maps.py $PINS/host1       # the same, decoded

  # steer show: route servers rs1/rs2, agents host1/host2 (one socket each)
  $STEER show peers --socket $STATE/rs1/steer.sock
  $STEER show routes --socket $STATE/rs1/steer.sock 10.250.0.1
  $STEER show routes --socket $STATE/rs2/steer.sock --peer sdwan --advertised
  $STEER show fib --socket $STATE/host1/steer.sock

  # traffic, and the appliances' own view
  ip netns exec ${P}vm1 ping 10.250.0.1               # on-prem, via the SD-WAN appliance
  ip netns exec ${P}vm2 ping 203.0.113.1              # internet, via the firewall
  ip netns exec ${P}sdwan tcpdump -n -i eth0 icmp     # watch it arrive
  birdc -s $STATE/sdwan/bird.ctl show route
  vtysh --vty_socket $STATE/firewall -c 'show bgp ipv4 unicast'

  # daemon logs: $STATE/*.log; configs: $STATE/*/

  bash $S show    # this walkthrough again
  bash $S down    # tear it all down (daemons, namespaces, pins, $STATE)
EOF
}

# ---------------------------------------------------------------- main

need_root() {
  [ "$(id -u)" = 0 ] || die "run as root (sudo bash $S $*)"
}

need_lab() {
  [ -f "$STATE/pids" ] || die "no demo lab is running (start one with: bash $S --keep)"
  check_daemons
}

KEEP=0 BUILD=1 CMD=run
for arg in "$@"; do
  case $arg in
    --keep) KEEP=1 ;;
    --no-build) BUILD=0 ;;
    run|up) CMD=run ;;
    down|show) CMD=$arg ;;
    -h|--help|help) usage 0 ;;
    *) echo "unknown argument: $arg" >&2; usage 2 ;;
  esac
done
need_root "$@"
[ -n "${STEER_BIN:-}" ] && BUILD=0
STEER=$(steer_bin)

case $CMD in
  down)
    if lab_exists; then lab_down; echo "demo lab torn down"; else echo "no demo lab to tear down"; fi
    exit 0
    ;;
  show)
    need_lab
    walk
    exit 0
    ;;
esac

T0=$SECONDS
DONE=0
on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  if [ $rc != 0 ] && [ -d "$STATE" ]; then
    printf '\n%slast lines of the daemon logs:%s\n' "$D" "$N" >&2
    local f
    for f in "$STATE"/*.log "$STATE"/sdwan/*.log "$STATE"/firewall/*.log; do
      [ -s "$f" ] || continue
      printf -- '--- %s\n' "$f" >&2
      tail -n 5 "$f" >&2
    done
  fi
  if [ $rc != 0 ] || [ $KEEP = 0 ]; then
    if lab_exists; then
      [ $DONE = 1 ] || printf '\ntearing the lab down ...\n' >&2
      lab_down
    fi
  fi
  exit $rc
}

section "0. Install and build"
# Whether bpffs was mounted before scripts/setup.sh: teardown unmounts it if not.
BPFFS_BEFORE=$(stat -f -c %T /sys/fs/bpf 2>/dev/null || true)
if [ $BUILD = 1 ]; then
  bash "$ROOT/scripts/setup.sh"
  say "cargo build --release -p steer"
  (cd "$ROOT" && cargo build --release -p steer) || die "cargo build --release -p steer"
fi
[ -x "$STEER" ] || die "$STEER is missing (run without --no-build)"
for tool in ip nsenter setsid ethtool tcpdump bpftool bird birdc vtysh /usr/lib/frr/zebra /usr/lib/frr/bgpd python3 ping; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is missing (scripts/setup.sh installs it)"
done
say "steer: $STEER ($("$STEER" --version))"

if lab_exists; then
  say "removing what a previous demo run left behind"
  lab_down
fi
trap on_exit EXIT
trap 'printf "\ninterrupted\n" >&2; exit 130' INT TERM

T_LAB=$SECONDS
mkdir -p "$STATE"
chmod 0755 "$STATE"
[ -d /run/netns ] || touch "$STATE/created-run-netns"
[ -d /var/tmp/frr ] || touch "$STATE/created-var-tmp-frr"
if [ "$(stat -f -c %T /sys/fs/bpf 2>/dev/null)" != bpf_fs ]; then
  mount -t bpf bpf /sys/fs/bpf || die "mount -t bpf bpf /sys/fs/bpf"
fi
[ "$BPFFS_BEFORE" = bpf_fs ] || touch "$STATE/mounted-bpffs"

section "Starting the lab"
cat <<EOF
  namespace     runs                    address      role
  ${P}sdwan      BIRD 2, AS 65010        10.1.0.10    SD-WAN NVA: announces on-prem 10.250.0.0/16 (10.250.0.1 on lo)
  ${P}firewall   FRR 8 bgpd, AS 65020    10.1.0.20    firewall NVA: announces 0.0.0.0/0 (203.0.113.1 on lo = "internet")
  ${P}rs1        steer server, AS 65515  10.1.0.4     route server
  ${P}rs2        steer server, AS 65515  10.1.0.5     route server (HA pair)
  ${P}host1      steer agent             10.1.0.31    hypervisor; VM interface vm1 10.1.1.1/24
  ${P}host2      steer agent             10.1.0.32    hypervisor; VM interface vm2 10.1.2.1/24
  ${P}vm1        -                       10.1.1.10    VM behind host1 (default via 10.1.1.1)
  ${P}vm2        -                       10.1.2.10    VM behind host2 (default via 10.1.2.1)
  ${P}lan        bridge br0              -            the VNet LAN 10.1.0.0/24 joining the six boxes above
EOF
build_lab
start_daemons
wait_ready

walk

if [ $KEEP = 1 ]; then
  section "5. The lab stays up (--keep)"
  poke_help
else
  section "5. Teardown"
  DONE=1
  lab_down
  left=$(ip netns list | awk '{print $1}' | grep "^$P" || true)
  if [ -n "$left" ] || [ -e "$PINS" ] || [ -e "$STATE" ]; then
    die "leftovers after teardown: $left $(ls -d "$PINS" "$STATE" 2>/dev/null)"
  fi
  ok "daemons stopped, namespaces ${P}* deleted, $PINS and $STATE removed"
fi
say ""
say "demo done in $((SECONDS - T0)) s ($((T_LAB - T0)) s install and build, $((SECONDS - T_LAB)) s lab)"
