#!/usr/bin/env bash
# Capture real BGP messages between BIRD and GoBGP for the codec's
# cross-check tests, then write them as hex into ../ (one message a line).
#
# Two network namespaces joined by a veth pair; BIRD in one, gobgpd in the
# other; three sessions (eBGP 4-octet with IPv4+IPv6, eBGP 2-octet, iBGP
# ADD-PATH). tcpdump records everything on port 179; extract.py splits the
# TCP streams into messages. Needs root, bird, gobgpd/gobgp, tcpdump.
#
#   sudo agent/src/bgp/testdata/capture/run.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=$(cd "$here/.." && pwd)
work=$(mktemp -d)
a="cx-$$-bird"
b="cx-$$-gobgp"
pids=()

cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  ip netns del "$a" 2>/dev/null || true
  ip netns del "$b" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$a"
ip netns add "$b"
ip link add va netns "$a" type veth peer name vb netns "$b"
for addr in 10.77.0.1 10.77.0.3 10.77.0.5; do ip -n "$a" addr add "$addr/24" dev va; done
for addr in 10.77.0.2 10.77.0.4 10.77.0.6; do ip -n "$b" addr add "$addr/24" dev vb; done
ip -n "$a" addr add 2001:db8:77::1/64 dev va nodad
ip -n "$b" addr add 2001:db8:77::2/64 dev vb nodad
for ns in "$a" "$b"; do
  ip -n "$ns" link set lo up
done
ip -n "$a" link set va up
ip -n "$b" link set vb up

ip netns exec "$a" tcpdump -i va -U -s 0 -w "$work/bgp.pcap" tcp port 179 2>"$work/tcpdump.log" &
pids+=($!)
sleep 1

ip netns exec "$b" gobgpd -f "$here/gobgpd.toml" -t toml --api-hosts 127.0.0.1:50051 \
  >"$work/gobgpd.log" 2>&1 &
pids+=($!)
sleep 1
gobgp() { ip netns exec "$b" gobgp "$@"; }
gobgp global rib add -a ipv4 10.250.0.0/16 nexthop 10.77.0.2 origin igp med 10 \
  community 65002:1 large-community 4200000002:1:1
gobgp global rib add -a ipv4 203.0.113.0/24 nexthop 10.77.0.2 origin incomplete \
  community no-export aigp metric 7
gobgp global rib add -a ipv4 10.99.0.0/24 identifier 5 nexthop 10.77.0.2
gobgp global rib add -a ipv4 10.99.0.0/24 identifier 6 nexthop 10.77.0.2 local-pref 300
gobgp global rib add -a ipv6 2001:db8:250::/48 nexthop 2001:db8:77::2 origin igp \
  large-community 4200000002:6:6
gobgp global rib add -a ipv6 2001:db8:99::/48 nexthop 2001:db8:77::2

ip netns exec "$a" bird -f -c "$here/bird.conf" -s "$work/bird.ctl" -P "$work/bird.pid" \
  >"$work/bird.log" 2>&1 &
pids+=($!)
birdc() { ip netns exec "$a" birdc -s "$work/bird.ctl" "$@"; }

for _ in $(seq 60); do
  if [ "$(birdc show protocols 2>/dev/null | grep -c Established)" = 3 ]; then break; fi
  sleep 0.5
done
if ! birdc show protocols | tee /dev/stderr | grep -q "p2 .*Established"; then
  echo "sessions did not come up; bird.log:" >&2
  tail -20 "$work/bird.log" >&2
  tail -20 "$work/gobgpd.log" >&2
  exit 1
fi
sleep 3
# A route refresh each way, a withdraw each way, then shutdowns with a
# shutdown communication (RFC 9003).
birdc reload in p1 >/dev/null
gobgp neighbor 10.77.0.3 softresetin
sleep 1
gobgp global rib del -a ipv4 203.0.113.0/24
gobgp global rib del -a ipv6 2001:db8:99::/48
birdc disable s6 >/dev/null
sleep 2
birdc disable p1 '"steer codec capture"' >/dev/null
gobgp neighbor 10.77.0.3 disable --reason "bye from gobgp"
sleep 2

python3 "$here/extract.py" "$work/bgp.pcap" "$out"
