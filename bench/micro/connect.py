# Probe for bench/micro/README.md: N sequential pipelined SOCKS5 CONNECTs
# through 127.0.0.1:11080 to a loopback listener that accepts and closes;
# with a TAG, each CONNECT names a fresh host cN-TAG.test (ATYP 3) instead
# of 127.0.0.1, so the gateway resolves every one.
import socket, sys, struct, threading

srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0))
srv.listen(512)
port = srv.getsockname()[1]


def acc():
    while True:
        c, _ = srv.accept()
        c.close()


threading.Thread(target=acc, daemon=True).start()
n = int(sys.argv[1])
tag = sys.argv[2] if len(sys.argv) > 2 else None
for i in range(n):
    if tag:
        name = ("c%d-%s.test" % (i, tag)).encode()
        dst = b"\x03" + bytes([len(name)]) + name
    else:
        dst = b"\x01" + socket.inet_aton("127.0.0.1")
    req = b"\x05\x01\x00" + b"\x05\x01\x00" + dst + struct.pack("!H", port)
    s = socket.create_connection(("127.0.0.1", 11080))
    s.sendall(req)
    b = b""
    while len(b) < 12:
        x = s.recv(12 - len(b))
        if not x:
            break
        b += x
    assert len(b) >= 4 and b[3] == 0, b
    s.close()
print("ok", n)
