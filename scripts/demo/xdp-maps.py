#!/usr/bin/env python3
"""Decodes the XDP maps an agent pinned under PIN_DIR, straight from bpffs
with bpftool (not through the agent): the IPv4 LPM trie with each entry's
next-hop set, and the per-CPU counters summed.

usage: xdp-maps.py PIN_DIR [lpm|counters]...   (layouts: ebpf/common/src/lib.rs)
"""
import ipaddress
import json
import os
import subprocess
import sys

ACTIONS = {1: "pass (kernel routes decide)", 2: "forward"}
REASONS = [
    "forwarded", "pass_no_route", "pass_entry", "pass_no_neigh", "pass_frag_needed",
    "pass_fib_failed", "pass_ttl_expired", "pass_ipv4_options", "pass_ipv4_fragment",
    "pass_ipv6_ext_header", "pass_not_ip", "pass_not_unicast", "pass_truncated",
    "pass_no_nexthop_set", "pass_csum_partial",
]


def dump(pin_dir, name):
    out = subprocess.run(
        ["bpftool", "-j", "map", "dump", "pinned", os.path.join(pin_dir, name)],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)


def raw(hexes):
    return bytes(int(h, 16) for h in hexes)


def u32(b, off=0):
    return int.from_bytes(b[off:off + 4], "little")


def next_hop_sets(pin_dir):
    sets = {}
    for e in dump(pin_dir, "STEER_NHSETS"):
        v = raw(e["value"])
        count, hops = u32(v), []
        for i in range(count):
            off = 4 + i * 20
            family, addr = u32(v, off), v[off + 4:off + 20]
            hops.append(str(ipaddress.ip_address(addr[:4] if family == 2 else addr)))
        sets[u32(raw(e["key"]))] = hops
    return sets


def lpm(pin_dir):
    sets = next_hop_sets(pin_dir)
    rows = []
    for e in dump(pin_dir, "STEER_LPM4"):
        k, v = raw(e["key"]), raw(e["value"])
        net = ipaddress.ip_network((bytes(k[4:8]), u32(k)))
        action, nh_set = u32(v), u32(v, 4)
        what = ACTIONS.get(action, f"action {action}")
        if action == 2:
            what += f" via next-hop set {nh_set} = {', '.join(sets.get(nh_set, ['?']))}"
        rows.append((net.prefixlen, int(net.network_address), str(net), what))
    rows.sort(reverse=True)
    print("STEER_LPM4 (longest prefix first):")
    for _, _, net, what in rows:
        print(f"  {net:<18} {what}")


def counters(pin_dir):
    print("STEER_COUNTERS (summed over CPUs, non-zero):")
    for e in dump(pin_dir, "STEER_COUNTERS"):
        idx = u32(raw(e["key"]))
        pkts = sum(u32(raw(c["value"])) | (u32(raw(c["value"]), 4) << 32) for c in e["values"])
        if pkts:
            name = REASONS[idx] if idx < len(REASONS) else f"reason {idx}"
            print(f"  {name:<18} {pkts} packets")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    views = sys.argv[2:] or ["lpm", "counters"]
    for view in views:
        {"lpm": lpm, "counters": counters}[view](sys.argv[1])
