package main

import (
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"
)

func TestHTTPSink(t *testing.T) {
	const bulk = 3<<20 + 17
	h, err := startHTTPSink(bulk)
	if err != nil {
		t.Fatal(err)
	}
	defer h.close()
	base := "http://127.0.0.1:" + strconv.Itoa(int(h.port))
	cl := &http.Client{Timeout: 10 * time.Second}
	get := func(path string) (int, int64, bool) {
		t.Helper()
		resp, err := cl.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, n, resp.Close
	}
	for i := 0; i < 3; i++ {
		if code, n, closed := get("/"); code != 200 || n != 0 || !closed {
			t.Fatalf("GET /: %d, %d bytes, close %v", code, n, closed)
		}
	}
	if n, first, last := h.accepts(); n != 3 || last.Before(first) {
		t.Fatalf("accepts %d (first %v, last %v), want 3: a new connection per request", n, first, last)
	}
	h.reset()
	if code, n, _ := get("/bulk"); code != 200 || n != bulk {
		t.Fatalf("GET /bulk: %d, %d bytes, want %d", code, n, bulk)
	}
	if n, _, _ := h.accepts(); n != 1 {
		t.Fatalf("accepts after reset %d, want 1", n)
	}
}

func TestPassiveOpensCounts(t *testing.T) {
	h, err := startHTTPSink(0)
	if err != nil {
		t.Fatal(err)
	}
	defer h.close()
	p0 := passiveOpens()
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(int(h.port)) + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if d := passiveOpens() - p0; d < 1 {
		t.Fatalf("PassiveOpens grew by %d after one accepted connection", d)
	}
}

func TestSfyArgv(t *testing.T) {
	j := sfyJob{Curl: "/usr/bin/curl", Socksify: "/x/socksify", Proxychains: "/usr/bin/proxychains4", ProxychainsConf: "/x/pc.conf"}
	p := &target{Addr: "127.0.0.1:1080"}
	for c, want := range map[string]string{
		"direct":       "/usr/bin/curl -q -s URL",
		"curl-socks5h": "/usr/bin/curl -q --socks5-hostname 127.0.0.1:1080 -s URL",
		"socksify":     "/x/socksify -proxy 127.0.0.1:1080 -- /usr/bin/curl -q -s URL",
		"proxychains4": "/usr/bin/proxychains4 -q -f /x/pc.conf /usr/bin/curl -q -s URL",
	} {
		argv, err := j.argv(c, p, "-s", "URL")
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		for i, a := range argv {
			if i > 0 {
				got += " "
			}
			got += a
		}
		if got != want {
			t.Errorf("%s: %q, want %q", c, got, want)
		}
	}
	if _, err := j.argv("other", p); err == nil {
		t.Error("unknown client accepted")
	}
}
