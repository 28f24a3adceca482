# Probe for bench/micro/README.md: N sequential pipelined SOCKS5 CONNECTs
# through 127.0.0.1:11080 to a loopback listener that accepts and closes.
import socket, sys, struct, threading
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); srv.bind(("127.0.0.1", 0)); srv.listen(512)
port = srv.getsockname()[1]
def acc():
    while True:
        c, _ = srv.accept(); c.close()
threading.Thread(target=acc, daemon=True).start()
n = int(sys.argv[1])
req = b"\x05\x01\x00" + b"\x05\x01\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack("!H", port)
for i in range(n):
    s = socket.create_connection(("127.0.0.1", 11080))
    s.sendall(req)
    b = b""
    while len(b) < 12: 
        x = s.recv(12 - len(b))
        if not x: break
        b += x
    assert b[3] == 0, b
    s.close()
print("ok", n)
