package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/socks6/socks6/internal/socks6test"
)

// TestUDPWhereOnlyTCPPasses: a client network that refuses every UDP
// packet (a routing rule, ipproto udp prohibit) and passes TCP. A
// datagram sent directly fails; socks6 udp through a socks6d across that
// network gets its echo, because the datagrams travel inside the TCP
// connection. Two namespaces joined by a veth pair: the client's
// (192.0.2.2) and the gateway's (192.0.2.1, with socks6d and a UDP echo).
func TestUDPWhereOnlyTCPPasses(t *testing.T) {
	cli := socks6test.NewNetNS(t) // skips unless root
	gwns := socks6test.NewNetNS(t)
	socks6test.Veth(t, cli, "v0", gwns, "v1")
	cli.IP(t, "addr", "add", "192.0.2.2/24", "dev", "v0")
	gwns.IP(t, "addr", "add", "192.0.2.1/24", "dev", "v1")
	cli.IP(t, "rule", "add", "ipproto", "udp", "prohibit")

	var echo net.PacketConn
	var err error
	if derr := gwns.Do(func() { echo, err = net.ListenPacket("udp4", "192.0.2.1:0") }); derr != nil || err != nil {
		t.Fatalf("echo: %v %v", derr, err)
	}
	t.Cleanup(func() { echo.Close() })
	go func() {
		b := make([]byte, 2048)
		for {
			n, from, err := echo.ReadFrom(b)
			if err != nil {
				return
			}
			echo.WriteTo(b[:n], from)
		}
	}()
	target := echo.LocalAddr().String()

	// UDP straight from the client's network is refused.
	var sendErr error
	if err := cli.Do(func() {
		c, err := net.Dial("udp4", target)
		if err != nil {
			sendErr = err
			return
		}
		defer c.Close()
		_, sendErr = c.Write([]byte("direct"))
	}); err != nil {
		t.Fatal(err)
	}
	if sendErr == nil {
		t.Fatal("a direct UDP datagram left the client's namespace: the rule does not block UDP")
	}
	t.Logf("direct UDP: %v", sendErr)

	// socks6d in the gateway's namespace.
	dir := t.TempDir()
	gwBin := filepath.Join(dir, "socks6d")
	if out, err := exec.Command("go", "build", "-o", gwBin, "../socks6d").CombinedOutput(); err != nil {
		t.Fatalf("building socks6d: %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "socks6d.toml")
	conf := "listen = [\"192.0.2.1:1080\"]\nlog_level = \"warn\"\n[guard]\nallow_self = true\n"
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	gwLog := gwns.Start(t, gwBin, "-config", cfg)
	if !socks6test.WaitFor(10*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c, err := cli.DialContext(ctx, "tcp", "192.0.2.1:1080")
		if err == nil {
			c.Close()
		}
		return err == nil
	}) {
		t.Fatalf("socks6d did not accept connections; its log:\n%s", gwLog.String())
	}

	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", cli.Name, binPath,
		"-proxy", "192.0.2.1:1080", "udp", "-v", "-replies", "2", "-wait", "10s", target)
	cmd.Stdin = strings.NewReader("through\nthe stream\n")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if err != nil || stdout.String() != "through\nthe stream\n" {
		t.Fatalf("socks6 udp: %v, stdout %q; stderr:\n%s\nsocks6d:\n%s", err, stdout.String(), stderr.String(), gwLog.String())
	}
	if !strings.Contains(stderr.String(), fmt.Sprintf("from %s", target)) {
		t.Errorf("socks6 -v did not name the source %s:\n%s", target, stderr.String())
	}
}
