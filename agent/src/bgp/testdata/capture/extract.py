#!/usr/bin/env python3
"""Split the BGP sessions of a pcap into messages, one hex line each.

Usage: extract.py CAPTURE.pcap OUTDIR

Reads a classic pcap (Ethernet, IPv4, TCP port 179), reassembles each
direction of each TCP connection by sequence number, cuts the byte stream
into BGP messages by the header's length field and writes
OUTDIR/<speaker>-<session>.hex. BIRD's addresses name the session
(10.77.0.1 p1, 10.77.0.3 p2, 10.77.0.5 p3); the speaker is whoever sent.
"""
import struct
import sys
from collections import defaultdict

BIRD = {"10.77.0.1": "p1", "10.77.0.3": "p2", "10.77.0.5": "p3"}
GOBGP = {"10.77.0.2": "p1", "10.77.0.4": "p2", "10.77.0.6": "p3"}
NOTES = {
    "p1": "eBGP, 4-octet AS, IPv4+IPv6 unicast, graceful restart (BIRD AS 65001, GoBGP AS 4200000002)",
    "p2": "eBGP without 4-octet AS on BIRD's side (enable as4 off): AS_TRANS, AS4_PATH",
    "p3": "iBGP AS 4200000002, ADD-PATH send+receive for IPv4 and IPv6 unicast",
}


def packets(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    if linktype != 1:
        sys.exit(f"linktype {linktype}: only Ethernet captures are handled")
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        yield data[off + 16:off + 16 + incl]
        off += 16 + incl


def segments(path):
    for frame in packets(path):
        if len(frame) < 14 or struct.unpack("!H", frame[12:14])[0] != 0x0800:
            continue
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        if ip[9] != 6:
            continue
        src = ".".join(str(b) for b in ip[12:16])
        dst = ".".join(str(b) for b in ip[16:20])
        tcp = ip[ihl:total]
        sport, dport, seq = struct.unpack("!HHI", tcp[:8])
        flags = tcp[13]
        doff = (tcp[12] >> 4) * 4
        yield (src, sport, dst, dport), seq, flags, tcp[doff:]


def streams(path):
    isn = {}
    parts = defaultdict(dict)
    for key, seq, flags, payload in segments(path):
        if flags & 0x02:
            isn[key] = seq + 1
        if payload:
            parts[key].setdefault(seq, payload)
    for key, chunks in parts.items():
        start = isn.get(key, min(chunks))
        buf = bytearray()
        for seq in sorted(chunks, key=lambda s: (s - start) & 0xFFFFFFFF):
            rel = (seq - start) & 0xFFFFFFFF
            chunk = chunks[seq]
            if rel + len(chunk) <= len(buf):
                continue
            buf += chunk[len(buf) - rel:] if rel <= len(buf) else b""
        yield key, bytes(buf)


def messages(stream):
    off = 0
    while off + 19 <= len(stream):
        length = struct.unpack("!H", stream[off + 16:off + 18])[0]
        if length < 19 or off + length > len(stream):
            break
        yield stream[off:off + length]
        off += length


def main():
    pcap, outdir = sys.argv[1], sys.argv[2]
    files = defaultdict(list)
    for (src, _, dst, _), stream in sorted(streams(pcap)):
        if src in BIRD:
            name = f"bird-{BIRD[src]}"
        elif src in GOBGP:
            name = f"gobgp-{GOBGP[src]}"
        else:
            continue
        files[name].extend(messages(stream))
    for name, msgs in sorted(files.items()):
        session = name.split("-")[1]
        speaker = "BIRD 2.0.12" if name.startswith("bird") else "GoBGP 3.10.0"
        with open(f"{outdir}/{name}.hex", "w") as f:
            f.write(f"# Sent by {speaker} on session {session}: {NOTES[session]}.\n")
            f.write("# Captured by capture/run.sh; one BGP message per line, in wire order.\n")
            for m in msgs:
                f.write(m.hex() + "\n")
        print(f"{name}.hex: {len(msgs)} messages")


if __name__ == "__main__":
    main()
