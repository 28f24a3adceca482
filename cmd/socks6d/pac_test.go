package main

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestPAC runs socks6d with a [pac] section: the file is served at
// /proxy.pac and /wpad.dat, and a reload changes what it says.
// (server/pac's tests evaluate such files with pacparser.)
func TestPAC(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "socks6d.toml")
	base := "listen = [\"127.0.0.1:0\"]\nlog_format = \"json\"\n[pac]\nlisten = [\"127.0.0.1:0\"]\n"
	writeFile(t, cfg, base+"proxy = [\"192.0.2.1:1080\"]\ndomains = [\"lan.example\"]\n")
	d := start(t, "-config", cfg)
	rec, _ := d.waitRecord(0, "listening", func(r record) bool { return r["pac"] == true })
	get := func(path string) (string, string) {
		t.Helper()
		res, err := http.Get("http://" + rec.str("addr") + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.Header.Get("Content-Type"), string(b)
	}
	for _, path := range []string{"/proxy.pac", "/wpad.dat"} {
		ct, body := get(path)
		if ct != "application/x-ns-proxy-autoconfig" || !strings.Contains(body, `"SOCKS5 192.0.2.1:1080; SOCKS 192.0.2.1:1080"`) ||
			!strings.Contains(body, `dnsDomainIs(host, ".lan.example")`) {
			t.Errorf("%s: %q\n%s", path, ct, body)
		}
	}
	writeFile(t, cfg, base+"proxy = [\"192.0.2.9:1080\"]\n")
	d.signal(syscall.SIGHUP)
	d.waitRecord(0, "pac reloaded", nil)
	if _, body := get("/proxy.pac"); !strings.Contains(body, "192.0.2.9:1080") || strings.Contains(body, "lan.example") {
		t.Errorf("after reload:\n%s", body)
	}
	// pac.listen is not reloadable: a change is a warning, and the
	// running address keeps serving.
	writeFile(t, cfg, strings.Replace(base, "[pac]\nlisten = [\"127.0.0.1:0\"]", "[pac]\nlisten = [\"127.0.0.1:1\"]", 1)+"proxy = [\"192.0.2.9:1080\"]\n")
	d.signal(syscall.SIGHUP)
	d.waitRecord(0, "pac.listen is not reloadable; restart to apply", nil)
	if _, body := get("/proxy.pac"); !strings.Contains(body, "192.0.2.9:1080") {
		t.Errorf("after a pac.listen change:\n%s", body)
	}
}

// TestPACBadConfig: a [pac] section that cannot make a file stops the
// start with file, line and reason.
func TestPACBadConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "socks6d.toml")
	writeFile(t, cfg, "listen = [\"0.0.0.0:1080\"]\n\n[pac]\nlisten = [\"127.0.0.1:0\"]\n")
	if code, out := runOnce(t, "", "-config", cfg); code != 2 || !strings.Contains(out, cfg+":3: pac: proxy is empty") {
		t.Errorf("exit %d, %q; want 2 and %s:3: pac: proxy is empty", code, out, cfg)
	}
}
