package server_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/socks6/socks6/internal/socks6test"
)

// pysocksScript connects through the gateway with Python's PySocks, an
// independent SOCKS5 client, over TCP (remote DNS) and over UDP ASSOCIATE,
// and prints what came back.
const pysocksScript = `
import socket, socks, sys
gw_host, gw_port, tcp_port, udp_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
s = socks.socksocket(socket.AF_INET, socket.SOCK_STREAM)
s.set_proxy(socks.SOCKS5, gw_host, gw_port, rdns=True)
s.settimeout(5)
s.connect(("localhost", tcp_port))
s.sendall(b"hello over tcp")
s.shutdown(socket.SHUT_WR)
data = b""
while True:
    b = s.recv(4096)
    if not b:
        break
    data += b
print("tcp:" + data.decode())
s.close()
u = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
u.set_proxy(socks.SOCKS5, gw_host, gw_port)
u.settimeout(5)
u.sendto(b"hello over udp", ("127.0.0.1", udp_port))
data, addr = u.recvfrom(4096)
print("udp:" + data.decode() + " from " + addr[0] + ":" + str(addr[1]))
u.close()
`

func TestPySocks(t *testing.T) {
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import socks").Run(); err != nil {
		t.Skipf("PySocks not available (Debian package python3-socks): %v", err)
	}
	_, gw := loopbackGateway(t)
	echo := socks6test.EchoServer(t)
	uecho := socks6test.UDPEchoServer(t)
	gwHost, gwPort, _ := strings.Cut(gw, ":")
	_, tcpPort, _ := strings.Cut(echo, ":")
	cmd := exec.CommandContext(t.Context(), py, "-c", pysocksScript, gwHost, gwPort, tcpPort,
		strings.TrimPrefix(uecho.String(), "127.0.0.1:"))
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pysocks client: %v\n%s", err, out)
	}
	got := string(out)
	if !strings.Contains(got, "tcp:hello over tcp\n") {
		t.Errorf("TCP through PySocks: got %q", got)
	}
	if want := "udp:hello over udp from " + uecho.String(); !strings.Contains(got, want) {
		t.Errorf("UDP through PySocks: got %q, want %q", got, want)
	}
}
