"""UDP test fixture for the socksify end-to-end tests; it knows nothing of SOCKS.

  udpclient.py assoc HOST PORT       unconnected sendto/recvfrom (twice, one socket), sendmsg/recvmsg,
                                     sendmsg with UDP_SEGMENT (GSO),
                                     then a connected socket: getpeername, send/recv, recvfrom
  udpclient.py probe HOST PORT       connect UDP sockets to HOST's addresses and close them, sending
                                     nothing (as a resolver's RFC 6724 sort does)
  udpclient.py hold HOST PORT SECS   one exchange, close the socket, print "closed", sleep SECS
  udpclient.py fail HOST PORT        sendto (expect an error), then a connected socket's send and recv
  udpclient.py unspec HOST PORT      sendto with an AF_UNSPEC address (which an IPv4 UDP socket takes
                                     as AF_INET), then a sendmmsg of a message to HOST and one whose
                                     name is too short for any family, then a sendmsg whose
                                     msg_namelen is 200 (through libc, by ctypes)
The echo server answers "echo:" + the datagram.
"""
import socket
import struct
import sys
import time

UDP_SEGMENT = 103


def family_of(host):
    return socket.getaddrinfo(host, None, socket.AF_UNSPEC, socket.SOCK_DGRAM)[0][0]


def assoc(host, port):
    addr = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_DGRAM)[0][4]
    print("resolved:", addr[0])
    s = socket.socket(family_of(host), socket.SOCK_DGRAM)
    s.settimeout(5)
    for i in range(2):
        s.sendto(b"unconnected-%d" % i, addr)
        data, src = s.recvfrom(2048)
        print("recvfrom:", data.decode(), "from", src[0], src[1])
    s.sendmsg([b"msg-", b"parts"], [], 0, addr)
    data, anc, flags, src = s.recvmsg(2048, 256)
    print("recvmsg:", data.decode(), "from", src[0], src[1], "ancillary", len(anc))
    # UDP generic segmentation offload: one buffer, three datagrams.
    s.sendmsg([b"aaaaabbbbbcc"], [(socket.SOL_UDP, UDP_SEGMENT, struct.pack("H", 5))], 0, addr)
    print("gso:", " ".join(sorted(s.recvfrom(2048)[0].decode() for _ in range(3))))
    s.close()

    c = socket.socket(family_of(host), socket.SOCK_DGRAM)
    c.settimeout(5)
    c.connect(addr)
    peer = c.getpeername()
    print("getpeername:", peer[0], peer[1])
    c.send(b"connected-send")
    print("recv:", c.recv(2048).decode())
    c.send(b"connected-recvfrom")
    data, src = c.recvfrom(2048)
    print("connected recvfrom:", data.decode(), "from", src[0], src[1])
    c.close()


def probe(host, port):
    n = 0
    for fam, typ, proto, _, sa in socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_DGRAM):
        s = socket.socket(fam, typ, proto)
        s.connect(sa)
        print("probe connected:", sa[0], "source", s.getsockname()[0])
        s.close()
        n += 1
    time.sleep(0.3)
    print("probes:", n)


def hold(host, port, secs):
    addr = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)[0][4]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    s.sendto(b"hold", addr)
    data, _ = s.recvfrom(2048)
    print("reply:", data.decode())
    s.close()
    print("closed", flush=True)
    time.sleep(secs)
    print("done")


def fail(host, port):
    addr = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)[0][4]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    try:
        s.sendto(b"fail", addr)
        print("sendto: sent?!")
    except OSError as e:
        print("sendto:", type(e).__name__, e.errno)
    s.close()
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.settimeout(3)
    c.connect(addr)
    try:
        c.send(b"fail-connected")
        print("connected send: ok")
    except OSError as e:
        print("connected send:", type(e).__name__, e.errno)
    try:
        c.recv(2048)
        print("connected recv: got a reply?!")
    except OSError as e:
        print("connected recv:", type(e).__name__, e.errno)
    c.close()


def unspec(host, port):
    import ctypes
    import os

    libc = ctypes.CDLL(None, use_errno=True)
    ip = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)[0][4][0]
    print("resolved:", ip)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    tail = struct.pack("!H", port) + socket.inet_aton(ip) + bytes(8)
    name = struct.pack("=H", socket.AF_UNSPEC) + tail
    msg = b"unspec"
    if libc.sendto(s.fileno(), msg, len(msg), 0, name, len(name)) < 0:
        print("sendto:", os.strerror(ctypes.get_errno()))
        return
    data, src = s.recvfrom(2048)
    print("recvfrom:", data.decode(), "from", src[0], src[1])

    class iovec(ctypes.Structure):
        _fields_ = [("base", ctypes.c_char_p), ("len", ctypes.c_size_t)]

    class msghdr(ctypes.Structure):
        _fields_ = [("name", ctypes.c_char_p), ("namelen", ctypes.c_uint32),
                    ("iov", ctypes.POINTER(iovec)), ("iovlen", ctypes.c_size_t),
                    ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                    ("flags", ctypes.c_int)]

    class mmsghdr(ctypes.Structure):
        _fields_ = [("hdr", msghdr), ("len", ctypes.c_uint)]

    inet = struct.pack("=H", socket.AF_INET) + tail
    iovs = [iovec(b"mmsg-ok", 7), iovec(b"short-name", 10)]
    vec = (mmsghdr * 2)()
    vec[0].hdr = msghdr(inet, len(inet), ctypes.pointer(iovs[0]), 1, None, 0, 0)
    vec[1].hdr = msghdr(b"\x02", 1, ctypes.pointer(iovs[1]), 1, None, 0, 0)
    n = libc.sendmmsg(s.fileno(), vec, 2, 0)
    print("sendmmsg:", n if n >= 0 else os.strerror(ctypes.get_errno()))
    data, src = s.recvfrom(2048)
    print("recvfrom:", data.decode(), "from", src[0], src[1])

    # sendmsg with a msg_namelen past sockaddr_storage: the kernel clamps it.
    long_name = inet + bytes(200 - len(inet))
    iov = iovec(b"long-name", 9)
    hdr = msghdr(long_name, len(long_name), ctypes.pointer(iov), 1, None, 0, 0)
    n = libc.sendmsg(s.fileno(), ctypes.byref(hdr), 0)
    print("sendmsg long name:", n if n >= 0 else os.strerror(ctypes.get_errno()))
    data, src = s.recvfrom(2048)
    print("recvfrom:", data.decode(), "from", src[0], src[1])
    s.close()


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "assoc":
        assoc(args[0], int(args[1]))
    elif mode == "probe":
        probe(args[0], int(args[1]))
    elif mode == "hold":
        hold(args[0], int(args[1]), float(args[2]))
    elif mode == "fail":
        fail(args[0], int(args[1]))
    elif mode == "unspec":
        unspec(args[0], int(args[1]))
    else:
        sys.exit("unknown mode " + mode)
    sys.stdout.flush()


main()
