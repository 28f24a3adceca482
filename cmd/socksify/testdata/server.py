"""TCP server fixture for the socksify end-to-end tests (-listen); it knows nothing of SOCKS.

  server.py accept HOST PORT N [LINGER]     blocking accept(), N connections
  server.py selectors HOST PORT N [LINGER]  a non-blocking listener in a selectors (epoll) loop

After listen() it prints "listening: ADDR PORT" (getsockname). For each
connection it prints "accepted: ADDR PORT peer ADDR PORT local ADDR PORT"
(accept's address, getpeername, getsockname), reads a line and answers
"hello LINE". After N connections it closes the listening socket, prints
"closed", sleeps LINGER seconds (default 0) and prints "done".
"""
import faulthandler
import selectors
import signal
import socket
import sys
import time

# The tests send SIGUSR1 to a fixture that seems stuck: print where it is.
faulthandler.register(signal.SIGUSR1)


def fmt(a):
    return "%s %d" % (a[0], a[1])


def serve(conn, addr):
    print("accepted:", fmt(addr), "peer", fmt(conn.getpeername()), "local", fmt(conn.getsockname()), flush=True)
    conn.settimeout(10)
    f = conn.makefile("rb")
    line = f.readline().decode().strip()
    conn.sendall(("hello %s\n" % line).encode())
    f.close()
    conn.close()


def listener(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(16)
    print("listening:", fmt(s.getsockname()), flush=True)
    return s


def main():
    mode, host, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    linger = float(sys.argv[5]) if len(sys.argv) > 5 else 0
    s = listener(host, port)
    if mode == "accept":
        for _ in range(n):
            serve(*s.accept())
    elif mode == "selectors":
        s.setblocking(False)
        sel = selectors.DefaultSelector()
        sel.register(s, selectors.EVENT_READ)
        got = 0
        while got < n:
            for _key, _ev in sel.select(timeout=20):
                try:
                    conn, addr = s.accept()
                except BlockingIOError:
                    continue
                conn.setblocking(True)
                serve(conn, addr)
                got += 1
        sel.close()
    else:
        sys.exit("unknown mode " + mode)
    s.close()
    print("closed", flush=True)
    time.sleep(linger)
    print("done", flush=True)


main()
