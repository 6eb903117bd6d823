#!/usr/bin/env python3
"""Fills fuzz/corpus/<target>/ with seed inputs (the corpus directories are not committed).

capture_reader, pipeline: a few small captures (< 20 KB) from ../fixtures and, when present,
../../shared/corpus, chosen for variety of format and link type.
decode: frames from those captures, each prefixed with its link type as a big-endian u16.
http1, tls, dns: TCP/UDP payloads from the fixtures, sorted by what they look like.
app_stream: each TCP connection's payloads in capture order, in that target's record format.

Only the Python standard library; run from anywhere: python3 fuzz/make-seeds.py
"""
import hashlib
import os
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "fixtures")
SHARED = os.path.join(HERE, "..", "..", "shared", "corpus")
CORPUS = os.path.join(HERE, "corpus")

FIXTURE_CAPTURES = [
    "constructed-tcp-health.pcap",
    "constructed-tcp-health.pcapng.gz",
    "reliability-dns.pcap",
    "loopback-tcp-health.pcap",
    "reliability-retry.pcap",
    "security-tls.pcap",
    "security-plaintext.pcap",
]
SHARED_CAPTURES = [
    "ndpi__443-chrome.pcap",                   # Ethernet, TLS ClientHello
    "zeek__pcapng-multi-interface.pcapng",     # pcapng, two interfaces
    "zeek__linux_dlt_sll2.pcap",               # LINUX_SLL2
    "suricata-verify__fuzz.pcap",              # bogus record lengths
    "tcpdump__tcp-handshake-nano.pcap",        # nanosecond pcap
    "tcpdump__slow-ossp.pcap",                 # big-endian pcap
    "tcpdump__nflog.pcap",                     # NFLOG
    "ndpi__http2.pcapng",                      # pcapng, LINUX_SLL
    "ndpi__pgsql2.pcapng",                     # pcapng, NULL
    "suricata-verify__UnknownMessage.pcap",    # RAW (101)
    "suricata-verify__frag-ip-tcp.pcap",       # IPV6 (229), fragments
    "zeek__smtp__mime-header-size-limit.pcap.gz",  # gzip
    "zeek__trunc__ip4-trunc.pcap",             # truncated IPv4
]
MAX_SEED = 20 * 1024


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def pcap_records(blob):
    """(link type, frame) of a classic pcap; pcapng and gzip are skipped here."""
    if len(blob) < 24:
        return
    magic = blob[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        return
    link = struct.unpack(e + "I", blob[20:24])[0] & 0xFFFF
    off = 24
    while off + 16 <= len(blob):
        _, _, incl, _ = struct.unpack(e + "IIII", blob[off:off + 16])
        off += 16
        if off + incl > len(blob):
            return
        yield link, blob[off:off + incl]
        off += incl


def l4_payload(link, frame):
    """(proto, sport, dport, payload) for Ethernet/NULL/RAW/SLL frames with IPv4/IPv6 TCP/UDP."""
    if link == 1:
        if len(frame) < 14:
            return None
        et = struct.unpack(">H", frame[12:14])[0]
        ip = frame[14:]
    elif link == 0:
        ip = frame[4:]
        et = None
    elif link in (101, 228, 229, 12, 14):
        ip = frame
        et = None
    elif link == 113:
        et = struct.unpack(">H", frame[14:16])[0] if len(frame) >= 16 else 0
        ip = frame[16:]
    else:
        return None
    if not ip:
        return None
    v = ip[0] >> 4
    if v == 4 and (et in (None, 0x0800)):
        ihl = (ip[0] & 15) * 4
        proto = ip[9] if len(ip) > 9 else None
        total = struct.unpack(">H", ip[2:4])[0] if len(ip) >= 4 else 0
        l4 = ip[ihl:total] if total else ip[ihl:]
    elif v == 6 and (et in (None, 0x86DD)):
        if len(ip) < 40:
            return None
        proto = ip[6]
        plen = struct.unpack(">H", ip[4:6])[0]
        l4 = ip[40:40 + plen]
    else:
        return None
    if proto == 6 and len(l4) >= 20:
        doff = (l4[12] >> 4) * 4
        sp, dp = struct.unpack(">HH", l4[:4])
        return "tcp", sp, dp, l4[doff:]
    if proto == 17 and len(l4) >= 8:
        sp, dp = struct.unpack(">HH", l4[:4])
        return "udp", sp, dp, l4[8:]
    return None


HTTP_STARTS = (b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ", b"OPTIONS ", b"PATCH ", b"HTTP/")


def main():
    seen = set()
    counts = {}

    def seed(target, data):
        if not data or len(data) > MAX_SEED:
            return
        h = hashlib.sha1(target.encode() + data).hexdigest()[:16]
        if h in seen:
            return
        seen.add(h)
        counts[target] = counts.get(target, 0) + 1
        put(target, h, data)

    captures = [os.path.join(FIXTURES, f) for f in FIXTURE_CAPTURES]
    if os.path.isdir(SHARED):
        captures += [os.path.join(SHARED, f) for f in SHARED_CAPTURES]
    else:
        print(f"note: {SHARED} not found, fixture captures only", file=sys.stderr)
    for path in captures:
        if not os.path.isfile(path) or os.path.getsize(path) >= MAX_SEED:
            continue
        for target in ("capture_reader", "pipeline"):
            d = os.path.join(CORPUS, target)
            os.makedirs(d, exist_ok=True)
            shutil.copyfile(path, os.path.join(d, os.path.basename(path)))
            counts[target] = counts.get(target, 0) + 1

    # decode / http1 / tls / dns / app_stream seeds from every capture readable as classic pcap.
    per_file_frames = 40
    for path in captures:
        if not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            blob = f.read()
        n = 0
        streams = {}
        for link, frame in pcap_records(blob):
            if n < per_file_frames:
                seed("decode", struct.pack(">H", link) + frame)
                n += 1
            got = l4_payload(link, frame)
            if not got:
                continue
            proto, sp, dp, payload = got
            if not payload:
                continue
            if proto == "tcp":
                # The lower port is taken for the server's.
                key = (min(sp, dp), max(sp, dp))
                recs = streams.setdefault(key, [])
                for i in range(0, len(payload), 255):
                    piece = payload[i:i + 255]
                    recs.append(bytes([1 if sp > dp else 0, len(piece), 0]) + piece)
            if proto == "tcp" and payload.startswith(HTTP_STARTS):
                seed("http1", payload)
            elif proto == "tcp" and len(payload) >= 5 and payload[0] in (20, 21, 22, 23) and payload[1] == 3:
                seed("tls", payload)
            elif proto == "udp" and 53 in (sp, dp):
                seed("dns", payload)
            elif proto == "tcp" and 53 in (sp, dp) and len(payload) > 2:
                seed("dns", payload[2:])

        for (server_port, _), recs in streams.items():
            out = struct.pack(">H", server_port)
            for r in recs:
                if len(out) + len(r) > MAX_SEED:
                    break
                out += r
            seed("app_stream", out)

    # A few hand-written seeds for paths the captures may not reach.
    seed("http1", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    seed("http1", b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n")
    seed("http1", b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc")
    seed("http1", b"POST /charge HTTP/1.1\r\nIdempotency-Key: k\r\nUpgrade: h2c\r\n\r\n")
    seed("tls", b"\x15\x03\x03\x00\x02\x02\x46\x15\x03\x03\x00\x02\x02\x78")
    seed("tls", b"\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10")
    for port, talk in (
        (6379, [(1, b"*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n"), (0, b"+OK\r\n")]),
        (21, [(0, b"220 ftp\r\n"), (1, b"USER a\r\n"), (0, b"331 pw\r\n"), (1, b"PASS b\r\n")]),
        (25, [(0, b"220 mx\r\n"), (1, b"EHLO a\r\n"), (0, b"250 AUTH PLAIN\r\n"),
              (1, b"AUTH PLAIN AGEAYg==\r\n")]),
        (5432, [(1, b"\x00\x00\x00\x08\x04\xd2\x16\x2f"), (0, b"N"),
                (1, b"\x00\x00\x00\x11\x00\x03\x00\x00user\x00a\x00\x00"),
                (0, b"R\x00\x00\x00\x08\x00\x00\x00\x03"), (1, b"p\x00\x00\x00\x06b\x00")]),
        (8080, [(1, b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n"),
                (0, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 204 No\r\n\r\n")]),
    ):
        seed("app_stream", struct.pack(">H", port)
             + b"".join(bytes([c, len(m), 1]) + m for c, m in talk))
    seed("decode", b"\x00\x01" + b"\xff" * 12 + b"\x08\x06" + b"\x00" * 28)
    for target in sorted(counts):
        print(f"{target}: {counts[target]} seeds")


if __name__ == "__main__":
    main()
