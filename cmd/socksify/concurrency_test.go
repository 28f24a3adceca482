package main_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestConcurrentConnects runs 20 curls at once under one socksify: their
// connects overlap, so in-band handshakes that the notification loop
// started inline are handed to goroutines when other notifications
// arrive. Every fetch must succeed, through the gateway.
func TestConcurrentConnects(t *testing.T) {
	t.Parallel()
	needSocksify(t)
	curl := needTool(t, "curl", "curl")
	bash := needTool(t, "bash", "bash")
	l := newLab(t)
	const n = 20
	var script strings.Builder
	for i := range n {
		fmt.Fprintf(&script, "%s -sS --max-time 10 %s & ", curl, l.url("example.test", l.httpPort, fmt.Sprintf("/c%d", i)))
	}
	script.WriteString("wait")
	t0 := time.Now()
	p := l.socksify(bash, "-c", script.String())
	expectExit(t, p, 0)
	out := p.stdout.String()
	for i := range n {
		expectContains(t, "concurrent curl", out, wantBody(l.target("example.test", l.httpPort), fmt.Sprintf("/c%d", i)))
	}
	if !waitSessions(l, l.target("example.test", l.httpPort), t0, n) {
		t.Errorf("the gateway logged %d sessions, want %d", since(l.gw.sessions(l.target("example.test", l.httpPort)), t0), n)
	}
}
