"""Python test fixture for the socksify end-to-end tests; it knows nothing of SOCKS.

  pyclient.py http HOST PORT      getaddrinfo, connect, getpeername, disconnect (connect with
                                  AF_UNSPEC) and getpeername again, then urllib GET
  pyclient.py udp HOST PORT MSG   sendto/recvfrom on an unconnected UDP socket
  pyclient.py refused HOST PORT   connect to a closed port; print the exception
  pyclient.py errno FAMILY HOST PORT
                                  getaddrinfo in FAMILY (4 or 6), connect; print the errno
  pyclient.py sockname FAMILY HOST PORT
                                  connect in FAMILY; print getsockname's family and whether a
                                  new socket binds to its address
"""
import socket
import sys
import urllib.request


def http(host, port):
    infos = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)
    addr = infos[0][4]
    print("python getaddrinfo:", addr[0])
    s = socket.create_connection(addr, timeout=10)
    print("python getpeername:", s.getpeername())
    import ctypes
    import errno

    libc = ctypes.CDLL(None, use_errno=True)
    unspec = bytes(16)  # sa_family 0: disconnect
    libc.connect(s.fileno(), unspec, len(unspec))
    try:
        print("python getpeername after disconnect:", s.getpeername())
    except OSError as e:
        print("python getpeername after disconnect:", errno.errorcode.get(e.errno, e.errno))
    s.close()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open("http://%s:%d/py" % (host, port), timeout=10) as r:
        print("python urllib:", r.read().decode().strip())


def udp(host, port, msg):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    s.sendto(msg.encode(), (host, port))
    data, src = s.recvfrom(2048)
    print("python udp:", data, "from", src)
    print("python udp resolved:", socket.gethostbyname(host))


def sockname(family, host, port):
    fam = socket.AF_INET if family == "4" else socket.AF_INET6
    addr = socket.getaddrinfo(host, port, fam, socket.SOCK_STREAM)[0][4]
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(addr)
    local = s.getsockname()
    print("python sockname family:", "AF_INET6" if len(local) == 4 else "AF_INET")
    print("python sockname address:", local[0])
    b = socket.socket(fam, socket.SOCK_STREAM)
    try:
        b.bind((local[0], 0))
        print("python sockname bind: ok")
    except OSError as e:
        print("python sockname bind:", e)
    b.close()
    s.close()


def refused(host, port):
    try:
        socket.create_connection((host, port), timeout=10)
    except Exception as e:
        print("python refused:", type(e).__name__, e)
        return
    print("python refused: connected?!")


def errno(family, host, port):
    fam = socket.AF_INET if family == "4" else socket.AF_INET6
    addr = socket.getaddrinfo(host, port, fam, socket.SOCK_STREAM)[0][4]
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(10)
    try:
        s.connect(addr)
    except OSError as e:
        print("python errno: %s %s %s" % (family, host, e.errno))
        return
    print("python errno: %s %s connected?!" % (family, host))


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "http":
        http(args[0], int(args[1]))
    elif mode == "udp":
        udp(args[0], int(args[1]), args[2])
    elif mode == "refused":
        refused(args[0], int(args[1]))
    elif mode == "errno":
        errno(args[0], args[1], int(args[2]))
    elif mode == "sockname":
        sockname(args[0], args[1], int(args[2]))
    else:
        sys.exit("unknown mode " + mode)


main()
