//go:build linux

package isolate

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/socks6/socks6/client"
)

// TestMain lets the test binary be the helper of TestStartKeepsMainThread.
func TestMain(m *testing.M) {
	if os.Getenv("ISOLATE_MAIN_THREAD_HELPER") == "1" {
		mainThreadHelper()
		return
	}
	os.Exit(m.Run())
}

// mainThreadHelper calls Start from the main goroutine, as a small
// program does first thing, and prints what the process's main thread
// has afterwards: its effective capabilities and network namespace.
func mainThreadHelper() {
	cfg := Config{Dialer: &client.Dialer{ProxyAddress: "127.0.0.1:1"}}
	p, err := Start(context.Background(), cfg, "/bin/true", nil, nil)
	if err != nil {
		fmt.Println("start:", err)
		os.Exit(1)
	}
	p.Wait()
	fmt.Println(capEff("/proc/self/status"))
	ns, _ := os.Readlink("/proc/self/ns/net")
	fmt.Println("net", ns)
}

func capEff(status string) string {
	b, _ := os.ReadFile(status)
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "CapEff:") {
			return sc.Text()
		}
	}
	return "CapEff: none"
}

// TestStartKeepsMainThread: the thread that makes the namespace and drops
// capabilities for the program must not be the main thread, which Go
// never ends (the process's /proc entry and ptrace checks use its
// credentials, so a root program could take over its own supervisor).
// A program that calls Start from its main goroutine got it there.
func TestStartKeepsMainThread(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the isolate mode needs root (a network namespace and a TUN device); CI runs this as root")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skipf("no TUN device: %v", err)
	}
	for range 3 { // it went wrong every time before; a few runs for scheduling
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "ISOLATE_MAIN_THREAD_HELPER=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helper: %v\n%s", err, out)
		}
		wantNS, _ := os.Readlink("/proc/self/ns/net")
		want := capEff("/proc/self/status") + "\nnet " + wantNS + "\n"
		if string(out) != want {
			t.Fatalf("after Start the helper's main thread has\n%s\nwant what this process has:\n%s", out, want)
		}
	}
}
