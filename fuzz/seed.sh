#!/usr/bin/env bash
# Seeds fuzz/corpus/<target>/ (git-ignored) for every target: the committed
# hand-written seeds (fuzz/seeds/<target>/), the golden cases' log lines
# (tests/cases/*/input.log.gz), the example config and the golden cases'
# configs, and the Suricata captures when /work/shared/testdata is there
# (REJECTWATCH_SHARED_CAPTURES names another directory of */input.pcap).
# Also writes the structured seeds of the join, emulate and pcap targets
# from a few hand-built exchanges (see gen_seeds below). Idempotent: files
# are named by content.
set -euo pipefail
cd "$(dirname "$0")"
root=..
corpus=corpus
captures=${REJECTWATCH_SHARED_CAPTURES:-/work/shared/testdata/suricata-verify}
targets=(http_head join emulate pcap_decode pcap_file accesslog logreader config api useragent endpoint enrich ua_table snapshot)
for t in "${targets[@]}"; do mkdir -p "$corpus/$t"; done
for t in "${targets[@]}"; do
  if [ -d "seeds/$t" ]; then cp -n seeds/"$t"/* "$corpus/$t/" 2>/dev/null || true; fi
done

python3 - "$root" "$corpus" "$captures" <<'PY'
import glob, gzip, hashlib, os, re, struct, sys

root, corpus, captures = sys.argv[1:4]

def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(corpus, target, name), "wb") as f:
        f.write(data)

# Access logs: lines to the line parsers, heads rebuilt from them to the
# HTTP parsers, agents and targets to the enrichers, small whole files
# (a line prefixed by the format byte) to the reader.
clf = re.compile(r'"(\S+) (\S+)(?: (HTTP/\d\.\d))?"')
ua = re.compile(r'"([^"]*)"\s*$')
for case in sorted(glob.glob(os.path.join(root, "tests/cases/*/input.log.gz"))):
    lines = gzip.open(case, "rt", errors="replace").read().splitlines()
    for line in lines[:40]:
        put("accesslog", line)
        put("enrich", ("\x02" if line.lstrip().startswith("{") else "\x01") + line)
        m = clf.search(line)
        if m:
            method, target, version = m.group(1), m.group(2), m.group(3) or "HTTP/1.1"
            put("endpoint", target)
            head = f"{method} {target} {version}\r\nHost: api.example\r\nUser-Agent: x\r\n\r\n"
            put("http_head", head)
            put("enrich", "\x00" + head)
        u = ua.search(line)
        if u and u.group(1) not in ("", "-"):
            put("useragent", u.group(1))
    put("logreader", b"\x00" + "\n".join(lines[:20]).encode() + b"\n")
    put("logreader", b"\x00" + gzip.compress("\n".join(lines[:20]).encode() + b"\n"))
for cfg in sorted(glob.glob(os.path.join(root, "tests/cases/*/config.toml"))) + [os.path.join(root, "rejectwatch.example.toml")]:
    put("config", open(cfg, "rb").read())
put("ua_table", open(os.path.join(root, "rejectwatch/data/user-agents.toml"), "rb").read())

# Captures: whole files to the file reader (first byte even: one file),
# and each frame, behind its link type's pick byte, to the frame decoder.
LINKTYPES = [0, 1, 12, 14, 104, 108, 113, 101, 228, 229, 276, 147]
def frames(data):
    if len(data) < 24 or data[:4] not in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        return
    link = struct.unpack("<I", data[20:24])[0]
    off = 24
    while off + 16 <= len(data):
        incl = struct.unpack("<I", data[off + 8:off + 12])[0]
        yield link, data[off + 16:off + 16 + incl]
        off += 16 + incl
def pcap(link, frames):
    out = struct.pack("<IHHiIII", 0xa1b2c3d4, 2, 4, 0, 0, 65535, link)
    for i, f in enumerate(frames):
        out += struct.pack("<IIII", 1700000000 + i, 0, len(f), len(f)) + f
    return out
def add_capture(data, limit=64):
    put("pcap_file", b"\x00" + data)
    for i, (link, f) in enumerate(frames(data)):
        if i >= limit:
            break
        if link in LINKTYPES:
            put("pcap_decode", bytes([LINKTYPES.index(link)]) + f)
for p in sorted(glob.glob(os.path.join(captures, "*/input.pcap"))):
    data = open(p, "rb").read()
    if len(data) <= 1 << 20:
        add_capture(data)

# Hand-built frames: one exchange on each framing the reader takes.
def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b)//2}H", b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
def ipv4_tcp(src, dst, sport, dport, seq, ack, flags, payload):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0, bytes(src), bytes(dst))
    return ip[:10] + struct.pack("!H", csum(ip)) + ip[12:] + tcp
cli, srv = [10, 0, 0, 1], [10, 0, 0, 2]
req = b"GET /api/v1/orders/7 HTTP/1.1\r\nHost: api.example\r\nUser-Agent: curl/8.5.0\r\n\r\n"
resp = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"
ips = [
    ipv4_tcp(cli, srv, 40000, 80, 1000, 0, 0x02, b""),
    ipv4_tcp(cli, srv, 40000, 80, 1001, 5001, 0x18, req[:7]),
    ipv4_tcp(cli, srv, 40000, 80, 1008, 5001, 0x18, req[7:]),
    ipv4_tcp(srv, cli, 80, 40000, 5001, 1001 + len(req), 0x18, resp[:6]),
    ipv4_tcp(srv, cli, 80, 40000, 5007, 1001 + len(req), 0x18, resp[6:]),
]
eth = lambda ip: b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip
vlan = lambda ip: b"\x02" * 6 + b"\x04" * 6 + b"\x81\x00\x00\x07\x08\x00" + ip
pppoe = lambda ip: b"\x02" * 6 + b"\x04" * 6 + b"\x88\x64" + struct.pack("!BBHHH", 0x11, 0, 1, len(ip) + 2, 0x21) + ip
def vxlan(ip):
    inner = eth(ip)
    udp = struct.pack("!HHHH", 50000, 4789, 8 + 8 + len(inner), 0) + b"\x08\0\0\0\0\0\x2a\0" + inner
    outer = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2]))
    return eth(outer + udp)
framings = {
    1: [eth, vlan, pppoe, vxlan],
    0: [lambda ip: struct.pack("<I", 2) + ip],
    108: [lambda ip: struct.pack(">I", 2) + ip],
    101: [lambda ip: ip],
    228: [lambda ip: ip],
    104: [lambda ip: b"\x0f\x00\x08\x00" + ip],
    113: [lambda ip: struct.pack("!HHH", 0, 1, 6) + b"\x02" * 6 + b"\0\0" + b"\x08\x00" + ip],
    276: [lambda ip: b"\x08\x00\0\0" + struct.pack("!IHBB", 2, 1, 0, 6) + b"\x02" * 6 + b"\0\0" + ip],
}
for link, fs in framings.items():
    for f in fs:
        add_capture(pcap(link, [f(ip) for ip in ips]))
# pcapng: section header, interface (Ethernet), enhanced packets.
def block(t, body):
    body += b"\0" * (-len(body) % 4)
    return struct.pack("<II", t, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))
ng = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)) + block(1, struct.pack("<HHI", 1, 0, 65535))
for i, ip in enumerate(ips):
    f = eth(ip)
    t = (1700000000 + i) * 1000000
    ng += block(6, struct.pack("<IIIII", 0, t >> 32, t & 0xffffffff, len(f), len(f)) + f)
put("pcap_file", b"\x00" + ng)

# The join's and the rules' byte layouts (fuzz/src/lib.rs): the same
# exchange as records and as segments, whole, split, and pipelined.
def rec(kind, flow, seq, data, ack=None):
    op = kind | flow << 2 | (0x10 if ack is not None else 0)
    out = bytes([op]) + struct.pack("!H", seq)
    if ack is not None:
        out += struct.pack("!H", ack)
    return out + (bytes([len(data)]) if len(data) < 255 else b"\xff" + struct.pack("!H", len(data))) + data
def seg(side, flow, seq, ack, data, flags=None):
    op = side | flow << 1 | (0x08 if flags is not None else 0)
    out = bytes([op]) + (bytes([flags]) if flags is not None else b"") + struct.pack("!HH", seq, ack)
    return out + (bytes([len(data)]) if len(data) < 255 else b"\xff" + struct.pack("!H", len(data))) + data
req2 = b"POST /login HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nx=1"
resp2 = b"HTTP/1.1 401 Unauthorized\r\n\r\n"
for flow in range(4):
    put("join", b"\x3f" + rec(0, flow, 0, req, 0) + rec(2, flow, 0, resp, len(req)))
    put("join", b"\x3f" + rec(0, flow, 0, req[:7], 0) + rec(1, flow, 7, req[7:], 0)
        + rec(2, flow, 0, resp[:6], 7) + rec(3, flow, 6, resp[6:], len(req)))
    put("join", b"\x3f" + rec(0, flow, 0, req + req2, 0) + rec(2, flow, 0, resp + resp2, len(req) + len(req2)))
    put("emulate", b"\x25\x3f" + seg(0, flow, 0, 0, b"", 0x02) + seg(0, flow, 1, 1, req)
        + seg(1, flow, 1, 1 + len(req), resp))
    put("emulate", b"\x24\x3f" + seg(0, flow, 1, 1, req[:7]) + seg(0, flow, 8, 1, req[7:])
        + seg(1, flow, 1, 8, resp[:6]) + seg(1, flow, 7, 1 + len(req), resp[6:]))
PY
for t in "${targets[@]}"; do printf '%s: %s\n' "$t" "$(find "$corpus/$t" -type f | wc -l)"; done
