package resolver

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestParseResolvConf(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want resolvConf
	}{
		{
			name: "empty",
			in:   "",
			want: resolvConf{servers: []string{"127.0.0.1:53", "[::1]:53"}, ndots: 1},
		},
		{
			name: "typical",
			in: "# generated\nnameserver 192.0.2.53\nnameserver 2001:db8::53 ; comment\n" +
				"search Example.TEST. corp.test\noptions ndots:3 timeout:5 attempts:4 rotate edns0\n",
			want: resolvConf{
				servers:  []string{"192.0.2.53:53", "[2001:db8::53]:53"},
				search:   []string{"example.test", "corp.test"},
				ndots:    3,
				timeout:  5 * time.Second,
				attempts: 4,
			},
		},
		{
			name: "last_search_or_domain_wins",
			in:   "search a.test b.test\ndomain c.test\n",
			want: resolvConf{servers: []string{"127.0.0.1:53", "[::1]:53"}, search: []string{"c.test"}, ndots: 1},
		},
		{
			name: "limits_and_junk",
			in: "nameserver 192.0.2.1\nnameserver bogus\nnameserver 192.0.2.2\nnameserver 192.0.2.3\nnameserver 192.0.2.4\n" +
				"search . bad..name ok.test\noptions ndots:99 timeout:0 attempts:99 ndots:x timeout:-1\nnameserver\n",
			want: resolvConf{
				servers:  []string{"192.0.2.1:53", "192.0.2.2:53", "192.0.2.3:53"},
				search:   []string{"ok.test"},
				ndots:    15,
				timeout:  time.Second,
				attempts: 5,
			},
		},
		{
			name: "huge_timeout", // fuzz crasher f0532bec71435742: the multiplication overflowed
			in:   "options timeout:9227000000 attempts:9227000000 ndots:9227000000",
			want: resolvConf{servers: []string{"127.0.0.1:53", "[::1]:53"}, ndots: 15, timeout: 30 * time.Second, attempts: 5},
		},
		{
			name: "zone",
			in:   "nameserver fe80::1%eth0\n",
			want: resolvConf{servers: []string{"[fe80::1%eth0]:53"}, ndots: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseResolvConf([]byte(tt.in))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseResolvConf(%q) =\n%+v, want\n%+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestNewUsesResolvConf(t *testing.T) {
	p := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(p, []byte("nameserver 192.0.2.53\nsearch a.test\noptions ndots:2 timeout:7 attempts:3\n"), 0o644)
	r, err := New(Config{ResolvConf: p, HostsFile: "-"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if len(r.servers) != 1 || r.servers[0].addr != "192.0.2.53:53" || r.timeout != 7*time.Second || r.attempts != 3 || r.ndots != 2 || !reflect.DeepEqual(r.search, []string{"a.test"}) {
		t.Errorf("resolver from resolv.conf: servers %v timeout %v attempts %d ndots %d search %v", r.servers, r.timeout, r.attempts, r.ndots, r.search)
	}
	// Config wins over resolv.conf.
	r2, err := New(Config{ResolvConf: p, HostsFile: "-", Servers: []string{"tls://192.0.2.9#dns.test"}, Timeout: time.Second, Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	u := r2.servers[0]
	if !u.tls || u.addr != "192.0.2.9:853" || u.serverName != "dns.test" || r2.timeout != time.Second || r2.attempts != 1 {
		t.Errorf("resolver from Config: %+v timeout %v attempts %d", u, r2.timeout, r2.attempts)
	}
	// Defaults without a file.
	r3, err := New(Config{ResolvConf: filepath.Join(t.TempDir(), "missing"), HostsFile: "-"})
	if err != nil {
		t.Fatal(err)
	}
	defer r3.Close()
	if len(r3.servers) != 2 || r3.servers[0].addr != "127.0.0.1:53" || r3.servers[1].addr != "[::1]:53" || r3.timeout != 2*time.Second || r3.attempts != 2 || r3.ndots != 1 {
		t.Errorf("defaults: servers %v timeout %v attempts %d", r3.servers, r3.timeout, r3.attempts)
	}
}

func TestParseHosts(t *testing.T) {
	in := "127.0.0.1 localhost\n::1 localhost ip6-localhost\n# 192.0.2.9 commented.test\n" +
		"192.0.2.1 Web.Test. www.test # comment\n192.0.2.1 web.test\n2001:db8::1 web.test\n" +
		"bogus name.test\n192.0.2.2\n192.0.2.3 bad..name ok.test\nfe80::1%lo link.test\n"
	got := parseHosts([]byte(in))
	want := hostsTable{
		"localhost":     {netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")},
		"ip6-localhost": {netip.MustParseAddr("::1")},
		"web.test":      {netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")},
		"www.test":      {netip.MustParseAddr("192.0.2.1")},
		"ok.test":       {netip.MustParseAddr("192.0.2.3")},
		"link.test":     {netip.MustParseAddr("fe80::1%lo")},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseHosts =\n%v, want\n%v", got, want)
	}
}

func TestHostsFileReload(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hosts")
	h := &hostsFile{path: p}
	now := time.Now()
	if err := h.load(now); err != nil {
		t.Fatalf("missing file: %v", err)
	}
	if _, ok := h.lookup("a.test", now); ok {
		t.Error("missing file lists a name")
	}
	os.WriteFile(p, []byte("192.0.2.1 a.test\n"), 0o644)
	if _, ok := h.lookup("a.test", now.Add(500*time.Millisecond)); ok {
		t.Error("file checked again within a second")
	}
	if a, ok := h.lookup("a.test", now.Add(time.Second)); !ok || len(a) != 1 {
		t.Errorf("after a second: %v, %v", a, ok)
	}
	// A change of size alone is seen.
	os.WriteFile(p, []byte("192.0.2.22 a.test\n"), 0o644)
	if a, ok := h.lookup("a.test", now.Add(2*time.Second)); !ok || a[0] != netip.MustParseAddr("192.0.2.22") {
		t.Errorf("after rewrite: %v, %v", a, ok)
	}
	os.Remove(p)
	if _, ok := h.lookup("a.test", now.Add(3*time.Second)); ok {
		t.Error("removed file still lists the name")
	}
}

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"a", "a.b", "xn--bcher-kva.test", "_srv._tcp.test", "a-b.c", "1.2.3.4.5"} {
		if err := checkName(ok); err != nil {
			t.Errorf("checkName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "a.", ".a", "a..b", "a b", "a\\.b", "a/b", "é.test"} {
		if checkName(bad) == nil {
			t.Errorf("checkName(%q) accepted", bad)
		}
	}
}

func FuzzResolvConf(f *testing.F) {
	f.Add([]byte("nameserver 192.0.2.53\nsearch a.test b.test\noptions ndots:2 timeout:3 attempts:4\n"))
	f.Add([]byte("domain x.test\nnameserver fe80::1%eth0\n# c\n; c\noptions ndots:-1 timeout:9999999999999999999\n"))
	f.Add([]byte("search " + string(make([]byte, 300)) + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := parseResolvConf(b)
		if len(c.servers) == 0 || len(c.servers) > maxNameservers+1 {
			t.Fatalf("%d servers", len(c.servers))
		}
		for _, s := range c.servers {
			if _, err := parseServer(s); err != nil {
				t.Fatalf("server %q from resolv.conf does not parse: %v", s, err)
			}
		}
		for _, d := range c.search {
			if checkName(d) != nil {
				t.Fatalf("invalid search domain %q", d)
			}
		}
		if c.ndots < 0 || c.ndots > maxNdots || c.timeout < 0 || c.timeout > maxTimeout || c.attempts < 0 || c.attempts > maxAttempts {
			t.Fatalf("options out of range: %+v", c)
		}
	})
}

func FuzzHosts(f *testing.F) {
	f.Add([]byte("127.0.0.1 localhost\n::1 localhost ip6-localhost\n192.0.2.1 a.test b.test # c\n"))
	f.Add([]byte("fe80::1%lo x\n1.2.3.4\tA.B.\n\n#\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for name, addrs := range parseHosts(b) {
			if checkName(name) != nil {
				t.Fatalf("invalid name %q", name)
			}
			if len(addrs) == 0 {
				t.Fatalf("name %q without addresses", name)
			}
			for _, a := range addrs {
				if !a.IsValid() {
					t.Fatalf("invalid address for %q", name)
				}
			}
		}
	})
}
