package main

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/net/proxy"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/internal/socks6test"
)

// TestMetrics runs socks6d with [metrics], makes a relayed session, a
// refused one and a failed login, and reads them back from /metrics with
// the Prometheus text parser.
func TestMetrics(t *testing.T) {
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	setPassword(t, users, "alice", "a-pass")
	cfg := filepath.Join(dir, "socks6d.toml")
	writeFile(t, cfg, "listen = [\"127.0.0.1:0\"]\nusers_file = \"users\"\nlog_format = \"json\"\n[timeouts]\nidle = \"1s\"\n[guard]\nallow_loopback = true\n[metrics]\nlisten = [\"127.0.0.1:0\"]\n")
	d := start(t, "-config", cfg)
	rec, _ := d.waitRecord(0, "listening", func(r record) bool { return r["metrics"] == true })
	gw, echo := d.addr(), echoServer(t)

	c, err := dialVia(t, gw, &proxy.Auth{User: "alice", Password: "a-pass"}, echo)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c, "12345")
	// Left idle, the session ends at the 1 s idle timeout: still a
	// session whose reply was "succeeded".
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("the idle session was not ended")
	}
	c.Close()
	// UDP inside the control connection: one association, counted as
	// "udp" with its bytes.
	d6 := &client.Dialer{ProxyAddress: gw, Username: "alice", Password: "a-pass"}
	pc, err := d6.ListenPacket(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	uecho := socks6test.UDPEchoServer(t)
	if _, err := pc.WriteTo([]byte("0123456789"), uecho); err != nil {
		t.Fatal(err)
	}
	pc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := pc.ReadFrom(make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	pc.Close()
	if _, err := dialVia(t, gw, &proxy.Auth{User: "alice", Password: "a-pass"}, closedPortOf(t)); err == nil {
		t.Fatal("CONNECT to a closed port succeeded")
	}
	if _, err := dialVia(t, gw, &proxy.Auth{User: "alice", Password: "wrong"}, echo); err == nil {
		t.Fatal("a wrong password was accepted")
	}

	var fams map[string]*dto
	ok := socks6test.WaitFor(10*time.Second, func() bool {
		fams = scrape(t, "http://"+rec.str("addr")+"/metrics")
		return value(fams, "socks6d_sessions_total", "command=handshake") >= 1 &&
			value(fams, "socks6d_sessions_total", "command=connect", "reply=succeeded") == 1 &&
			value(fams, "socks6d_sessions_total", "command=udp", "reply=succeeded") == 1
	})
	if !ok {
		t.Fatalf("metrics never counted the sessions: %v", fams["socks6d_sessions_total"])
	}
	for _, tc := range []struct {
		name   string
		labels []string
		min    float64
	}{
		{"socks6d_sessions_total", []string{"command=connect", "reply=connection refused"}, 1},
		{"socks6d_relayed_bytes_total", []string{"direction=up"}, 15},
		{"socks6d_relayed_bytes_total", []string{"direction=down"}, 15},
		{"socks6d_session_duration_seconds_count", []string{"command=connect"}, 2},
		{"socks6d_build_info", nil, 1},
		{"go_goroutines", nil, 1},
	} {
		if v := value(fams, tc.name, tc.labels...); v < tc.min {
			t.Errorf("%s%v = %v, want at least %v", tc.name, tc.labels, v, tc.min)
		}
	}
	if _, ok := fams["socks6d_sessions_active"]; !ok {
		t.Error("no socks6d_sessions_active")
	}
	body := rawScrape(t, "http://"+rec.str("addr")+"/metrics")
	if strings.Contains(body, "alice") || strings.Contains(body, "127.0.0.1") {
		t.Error("a user name or an address appears in the metrics")
	}
}

type dto = struct {
	samples model.Vector
}

// scrape fetches and parses url's Prometheus text.
func scrape(t *testing.T, url string) map[string]*dto {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(rawScrape(t, url)))
	if err != nil {
		t.Fatalf("parse metrics: %v", err)
	}
	out := map[string]*dto{}
	for name, f := range fams {
		vec, err := expfmt.ExtractSamples(&expfmt.DecodeOptions{Timestamp: model.Now()}, f)
		if err != nil {
			t.Fatal(err)
		}
		d := &dto{samples: vec}
		out[name] = d
		for _, s := range vec { // histograms: _count, _sum, _bucket
			n := string(s.Metric[model.MetricNameLabel])
			if n != name {
				if out[n] == nil {
					out[n] = &dto{}
				}
				out[n].samples = append(out[n].samples, s)
			}
		}
	}
	return out
}

func rawScrape(t *testing.T, url string) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read metrics: %v", err)
	}
	return string(b)
}

// value sums the samples of name whose labels include every k=v given.
func value(fams map[string]*dto, name string, labels ...string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
	sum := 0.0
	for _, s := range f.samples {
		if string(s.Metric[model.MetricNameLabel]) != name {
			continue
		}
		match := true
		for _, kv := range labels {
			k, v, _ := strings.Cut(kv, "=")
			match = match && string(s.Metric[model.LabelName(k)]) == v
		}
		if match {
			sum += float64(s.Value)
		}
	}
	return sum
}

// closedPortOf returns a loopback address where nothing listens.
func closedPortOf(t *testing.T) string {
	t.Helper()
	ln := socks6test.Listen(t)
	a := ln.Addr().String()
	ln.Close()
	return a
}
