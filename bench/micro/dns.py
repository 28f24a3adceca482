# Probe for bench/micro/README.md: a minimal DNS responder on
# 127.0.0.1:5353 (or the port given as the first argument) that answers
# every A query with 127.0.0.1 (TTL 5) and every other type with no data.
import socket, struct, sys

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 5353))
while True:
    q, a = s.recvfrom(512)
    if len(q) < 12:
        continue
    i = 12
    while i < len(q) and q[i]:
        i += q[i] + 1
    if i + 5 > len(q):
        continue
    qt = struct.unpack("!H", q[i + 1:i + 3])[0]
    end = i + 5
    hdr = q[:2] + b"\x85\x80" + q[4:6] + (b"\x00\x01" if qt == 1 else b"\x00\x00") + b"\x00\x00\x00\x00"
    r = hdr + q[12:end]
    if qt == 1:
        r += b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x05\x00\x04\x7f\x00\x00\x01"
    s.sendto(r, a)
