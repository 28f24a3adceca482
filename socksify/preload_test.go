package socksify

import (
	"net/netip"
	"strings"
	"testing"
)

func TestPreloadRange(t *testing.T) {
	// The library's indexes are the top of the fake range, below the
	// last address.
	if preloadBase+preloadSlots-1 != maxFakeIndex {
		t.Fatalf("preload slots end at %d, want %d", preloadBase+preloadSlots-1, maxFakeIndex)
	}
	if got := fakeIP4(preloadBase).String(); got != "198.19.192.0" {
		t.Errorf("the first preload address is %s, want 198.19.192.0", got)
	}
	// A table with ext never hands out the library's indexes.
	tab := newFakeTable(0)
	tab.max, tab.ext = preloadBase-1, func(idx uint32) (string, bool) { return "slot.test", idx == preloadBase }
	tab.next = preloadBase - 3
	for _, n := range []string{"a.test", "b.test"} {
		idx, ok := tab.assign(n)
		if !ok || idx >= preloadBase {
			t.Fatalf("assign(%s) = %d, %v; want an index below %d", n, idx, ok, preloadBase)
		}
	}
	if idx, ok := tab.assign("c.test"); ok {
		t.Errorf("assign(c.test) = %d in a full table; want no index", idx)
	}
	if name, ok := tab.name(fakeIP4(preloadBase)); !ok || name != "slot.test" {
		t.Errorf("name of the first preload address = %q, %v; want the library's", name, ok)
	}
	if name, ok := tab.name(fakeIP6(preloadBase)); !ok || name != "slot.test" {
		t.Errorf("name of the first preload IPv6 address = %q, %v; want the library's", name, ok)
	}
}

func TestValidSlotName(t *testing.T) {
	for name, want := range map[string]bool{
		"example.com":                   true,
		"a.b":                           true,
		"x-y-z.example":                 true,
		"x_y.example":                   false, // not a host name
		"-x.example":                    false,
		"x-.example":                    false,
		"x.example-":                    false,
		"xn--bcher-kva.example":         true,
		"":                              false,
		"single":                        false, // the library never writes dotless names
		"Example.com":                   false, // it writes lowercase
		"a..b":                          false,
		".a.b":                          false,
		"a.b.":                          false,
		"a b.c":                         false,
		"a/b.c":                         false,
		"10.1":                          false, // numeric for inet_aton
		"0x7f.1":                        false,
		"1.2.3.4":                       false,
		"1.2.3.4.5":                     true, // five parts: not an address
		"256.1":                         true, // … nor a part over 255 before the last
		strings.Repeat("a", 63) + ".b":  true,
		strings.Repeat("a", 64) + ".b":  false,
		strings.Repeat("a.", 126) + "b": true, // 253 bytes
		strings.Repeat("a.", 127) + "b": false,
	} {
		if got := validSlotName([]byte(name)); got != want {
			t.Errorf("validSlotName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestParseInetAton(t *testing.T) {
	for s, want := range map[string]string{
		"1.2.3.4":    "1.2.3.4",
		"10.1":       "10.0.0.1",
		"127.1":      "127.0.0.1",
		"1.2.3":      "1.2.0.3",
		"16909060":   "1.2.3.4",
		"0x7f.1":     "127.0.0.1",
		"0177.0.0.1": "127.0.0.1",
		"0x":         "0.0.0.0",
		"1.2.65535":  "1.2.255.255",
		"1.2.65536":  "",
		"1.256.0.1":  "",
		"1.2.3.256":  "",
		"08.1":       "", // 8 is not an octal digit
		"a.b":        "",
		"1..2":       "",
		"":           "",
	} {
		v, ok := parseInetAton(s)
		got := ""
		if ok {
			got = netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}).String()
		}
		if got != want {
			t.Errorf("parseInetAton(%q) = %q, want %q", s, got, want)
		}
	}
}

func TestNsswitchAllowsPreload(t *testing.T) {
	for conf, want := range map[string]bool{
		"hosts: files dns\n": true,
		"passwd: files\nhosts:          files dns # comment\n":    true,
		"hosts: files mdns4_minimal [NOTFOUND=return] dns\n":      true,
		"hosts: files myhostname resolve [!UNAVAIL=return] dns\n": true,
		"hosts: files [ SUCCESS=return ] dns myhostname\n":        true,
		"hosts: files dns [NOTFOUND=return] wins\n":               true, // after dns: never reached for its names
		"hosts:files dns\n":                               true,
		"hosts: files [NOTFOUND=return] dns\n":            false, // names not in files never reach dns
		"hosts: files myhostname [NOTFOUND=return] dns\n": false,
		"hosts: files [UNAVAIL=return] dns\n":             false,
		"hosts: files mdns4 dns\n":                        false, // full mdns may answer any domain
		"hosts: dns files\n":                              false,
		"hosts: files\n":                                  false,
		"hosts: files ldap dns\n":                         false,
		"hosts: files mymachines dns\n":                   false,
		"# hosts: files dns\n":                            false,
		"":                                                false,
		"networks: files\n":                               false,
	} {
		if got := nsswitchAllowsPreload(strings.NewReader(conf)); got != want {
			t.Errorf("nsswitchAllowsPreload(%q) = %v, want %v", conf, got, want)
		}
	}
}

func TestResolvMinDots(t *testing.T) {
	for _, tc := range []struct {
		conf, hostname string
		want           int
	}{
		{"nameserver 192.0.2.53\n", "box", 1},
		{"nameserver 192.0.2.53\noptions ndots:5\n", "box", 1}, // no search list
		{"nameserver 192.0.2.53\noptions ndots:5\n", "box.corp.example", 5},
		{"nameserver 192.0.2.53\noptions ndots:5\n", "box.", 1},
		{"search corp.example\noptions ndots:5\n", "box", 5},
		{"domain corp.example\n", "box", 1},
		{"search corp.example\noptions timeout:2 ndots:3 attempts:2\n", "box", 3},
		{"search .\noptions ndots:4\n", "box.corp.example", 1}, // an explicit empty list
		{"search corp.example\noptions ndots:99\n", "box", 15},
		{"search corp.example\noptions ndots:0\n", "box", 1},
		{"# search corp.example\noptions ndots:3\n", "box", 1},
	} {
		if got := resolvMinDots(strings.NewReader(tc.conf), tc.hostname); got != tc.want {
			t.Errorf("resolvMinDots(%q, %q) = %d, want %d", tc.conf, tc.hostname, got, tc.want)
		}
	}
}

// FuzzValidSlotName: no panic, and a valid name is one the library
// could write (no upper case, a dot, within 253 bytes).
func FuzzValidSlotName(f *testing.F) {
	for _, s := range []string{"example.com", "10.1", "a..b", "0x7f.1", strings.Repeat("a.", 127)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !validSlotName(b) {
			return
		}
		s := string(b)
		if len(b) > 253 || !strings.Contains(s, ".") || strings.ToLower(s) != s {
			t.Fatalf("validSlotName accepted %q", s)
		}
		if _, err := netip.ParseAddr(s); err == nil {
			t.Fatalf("validSlotName accepted the address %q", s)
		}
	})
}

// FuzzPreloadConfig feeds arbitrary nsswitch.conf and resolv.conf
// contents: no panic, and mindots within glibc's bounds.
func FuzzPreloadConfig(f *testing.F) {
	f.Add("hosts: files dns\n", "search a.example\noptions ndots:3\n", "box.example")
	f.Add("hosts: files [NOTFOUND=return dns\n", "options ndots:-1\n", "")
	f.Fuzz(func(t *testing.T, nss, resolv, hostname string) {
		nsswitchAllowsPreload(strings.NewReader(nss))
		if n := resolvMinDots(strings.NewReader(resolv), hostname); n < 1 || n > 15 {
			t.Fatalf("resolvMinDots = %d, want 1..15", n)
		}
	})
}
