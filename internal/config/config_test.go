package config

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/socks6/socks6/proto"
	"github.com/socks6/socks6/server"
	"github.com/socks6/socks6/server/auth/htpasswd"
)

// writeConfig writes text to a config file in a new temporary directory
// and returns its path.
func writeConfig(t testing.TB, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "socks6d.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeUsers writes a users file next to the config at cfgPath.
func writeUsers(t testing.TB, cfgPath, text string) string {
	t.Helper()
	path := filepath.Join(filepath.Dir(cfgPath), "users.htpasswd")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestDefault(t *testing.T) {
	c := Default()
	if !slices.Equal(c.Listen, []string{"127.0.0.1:1080"}) {
		t.Errorf("Listen = %q, want [127.0.0.1:1080]", c.Listen)
	}
	st, err := c.Settings()
	if err != nil {
		t.Fatalf("Settings() error = %v", err)
	}
	if st.Auth != nil {
		t.Errorf("Auth = %#v, want nil (no authentication)", st.Auth)
	}
	if st.Guard.AllowLoopback || st.Guard.AllowLinkLocal || st.Guard.AllowSelf {
		t.Errorf("Guard = %+v, want everything refused", st.Guard)
	}
	rules, ok := st.Policy.(*server.Rules)
	if !ok || rules.Default != server.Allow || len(rules.Rules) != 0 {
		t.Errorf("Policy = %#v, want *server.Rules allowing all", st.Policy)
	}
	want := Timeouts{Handshake: 10 * time.Second, Dial: 10 * time.Second, Bind: 10 * time.Second,
		Idle: 5 * time.Minute, Shutdown: 30 * time.Second}
	if c.Timeouts != want {
		t.Errorf("Timeouts = %+v, want %+v", c.Timeouts, want)
	}
	if c.LogFormat != FormatText || c.LogLevel != slog.LevelInfo {
		t.Errorf("log = %q %v, want text info", c.LogFormat, c.LogLevel)
	}
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name  string
		text  string
		check func(t *testing.T, c *Config)
	}{
		{
			name: "empty_file_is_default",
			text: "# nothing\n",
			check: func(t *testing.T, c *Config) {
				d := Default()
				d.src = c.src
				if !reflect.DeepEqual(c, d) {
					t.Errorf("got %+v, want %+v", c, d)
				}
			},
		},
		{
			name: "top_level",
			text: `listen = ["127.0.0.1:0", "[::1]:1081"]
log_format = "json"
log_level = "debug"
`,
			check: func(t *testing.T, c *Config) {
				if !slices.Equal(c.Listen, []string{"127.0.0.1:0", "[::1]:1081"}) {
					t.Errorf("Listen = %q", c.Listen)
				}
				if c.LogFormat != FormatJSON || c.LogLevel != slog.LevelDebug {
					t.Errorf("log = %q %v", c.LogFormat, c.LogLevel)
				}
			},
		},
		{
			name: "tables",
			text: `[timeouts]
handshake = "1s"
dial = "2s"
bind = "3s"
idle = "0"
shutdown = "0s"
[limits]
sessions = 5
per_user = 2
per_client = 3
handshakes = -1
[guard]
allow_loopback = true
allow_link_local = true
allow_self = true
`,
			check: func(t *testing.T, c *Config) {
				want := Timeouts{Handshake: time.Second, Dial: 2 * time.Second, Bind: 3 * time.Second}
				if c.Timeouts != want {
					t.Errorf("Timeouts = %+v, want %+v", c.Timeouts, want)
				}
				if got := c.Timeouts.ServerIdle(); got >= 0 {
					t.Errorf("ServerIdle() = %v, want negative (no idle timeout)", got)
				}
				if want := (server.Limits{Sessions: 5, PerUser: 2, PerClient: 3, Handshakes: -1}); c.Limits != want {
					t.Errorf("Limits = %+v, want %+v", c.Limits, want)
				}
				g := c.Guard
				if !g.AllowLoopback || !g.AllowLinkLocal || !g.AllowSelf {
					t.Errorf("Guard = %+v, want all allowed", g)
				}
			},
		},
		{
			name: "partial_table_keeps_defaults",
			text: "[timeouts]\nidle = \"1m\"\n",
			check: func(t *testing.T, c *Config) {
				if c.Timeouts.Idle != time.Minute || c.Timeouts.Dial != 10*time.Second || c.Timeouts.Shutdown != 30*time.Second {
					t.Errorf("Timeouts = %+v", c.Timeouts)
				}
			},
		},
		{
			name: "dotted_and_inline",
			text: "timeouts.dial = \"7s\"\nguard = { allow_self = true }\n",
			check: func(t *testing.T, c *Config) {
				if c.Timeouts.Dial != 7*time.Second || !c.Guard.AllowSelf {
					t.Errorf("Timeouts = %+v, Guard = %+v", c.Timeouts, c.Guard)
				}
			},
		},
		{
			name: "rules",
			text: `[groups]
admins = ["alice", "bob"]
[policy]
default = "deny"
[[rule]]
action = "allow"
users = ["carol"]
groups = ["admins"]
clients = ["192.168.1.0/24", "192.168.7.9", "2001:db8::/32"]
commands = ["connect", "bind", "udp", "udp-associate", "resolve", "listen"]
nets = ["10.1.2.3/8", "2001:db8::1", "10.0.0.1"]
domains = ["Example.COM", ".example.net", "example.org.", "_srv.example"]
ports = ["80", "8000-8999", "0", "65535"]
[[rule]]
action = "deny"
`,
			check: func(t *testing.T, c *Config) {
				if c.Default != server.Deny {
					t.Errorf("Default = %v, want deny", c.Default)
				}
				if !slices.Equal(c.Groups["admins"], []string{"alice", "bob"}) {
					t.Errorf("Groups = %v", c.Groups)
				}
				if len(c.Rules) != 2 {
					t.Fatalf("%d rules, want 2", len(c.Rules))
				}
				r := c.Rules[0]
				want := server.Rule{
					Action: server.Allow,
					Users:  []string{"carol"},
					Groups: []string{"admins"},
					Clients: []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24"),
						netip.MustParsePrefix("192.168.7.9/32"), netip.MustParsePrefix("2001:db8::/32")},
					Commands: []proto.Command{proto.CommandConnect, proto.CommandBind,
						proto.CommandUDPAssociate, proto.CommandUDPAssociate, proto.CommandResolve, proto.CommandListen},
					Nets: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"),
						netip.MustParsePrefix("2001:db8::1/128"), netip.MustParsePrefix("10.0.0.1/32")},
					Domains: []string{"example.com", "example.net", "example.org", "_srv.example"},
					Ports:   []server.PortRange{{Lo: 80, Hi: 80}, {Lo: 8000, Hi: 8999}, {Lo: 0, Hi: 0}, {Lo: 65535, Hi: 65535}},
				}
				if !reflect.DeepEqual(r, want) {
					t.Errorf("rule 1 =\n%+v\nwant\n%+v", r, want)
				}
				if c.Rules[1].Action != server.Deny {
					t.Errorf("rule 2 action = %v, want deny", c.Rules[1].Action)
				}
			},
		},
		{
			name: "rules_as_inline_array",
			text: `rule = [{ action = "deny", ports = ["25"] }, { action = "allow" }]`,
			check: func(t *testing.T, c *Config) {
				if len(c.Rules) != 2 || c.Rules[0].Ports[0] != (server.PortRange{Lo: 25, Hi: 25}) {
					t.Errorf("Rules = %+v", c.Rules)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(writeConfig(t, tt.text))
			if err != nil {
				t.Fatalf("Load() error = %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestLoadUsersFile(t *testing.T) {
	path := writeConfig(t, "users_file = \"users.htpasswd\"\n")
	users := filepath.Join(filepath.Dir(path), "users.htpasswd")
	if err := htpasswd.SetPassword(users, "alice", "secret", 4); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load() error = %v", err)
	}
	if c.UsersFile != users {
		t.Errorf("UsersFile = %q, want %q (relative to the config file)", c.UsersFile, users)
	}
	st, err := c.Settings()
	if err != nil {
		t.Fatalf("Settings() error = %v", err)
	}
	if st.Auth == nil {
		t.Fatal("Auth = nil, want the users file")
	}
	if err := st.Auth.Authenticate(t.Context(), "alice", "secret"); err != nil {
		t.Errorf("Authenticate(alice, secret) = %v, want nil", err)
	}
	if err := st.Auth.Authenticate(t.Context(), "alice", "wrong"); !errors.Is(err, server.ErrBadCredentials) {
		t.Errorf("Authenticate(alice, wrong) = %v, want ErrBadCredentials", err)
	}
}

func TestSettingsPolicy(t *testing.T) {
	c, err := Load(writeConfig(t, `[groups]
admins = ["alice"]
[policy]
default = "deny"
[[rule]]
action = "allow"
groups = ["admins"]
[[rule]]
action = "allow"
domains = ["Example.com."]
ports = ["443"]
`))
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Settings()
	if err != nil {
		t.Fatal(err)
	}
	// Settings must not share rules with the Config.
	c.Rules[1].Domains[0] = "changed.example"
	c.Groups["admins"][0] = "mallory"

	client := netip.MustParseAddrPort("192.0.2.1:5000")
	tests := []struct {
		name string
		req  server.Request
		want error
	}{
		{"admin_anywhere", server.Request{User: "alice", Client: client, Command: proto.CommandConnect,
			Target: proto.Addr{IP: netip.MustParseAddr("198.51.100.1"), Port: 22}}, nil},
		{"domain_port", server.Request{User: "bob", Client: client, Command: proto.CommandConnect,
			Target: proto.Addr{FQDN: "www.example.com", Port: 443}}, nil},
		{"domain_other_port", server.Request{User: "bob", Client: client, Command: proto.CommandConnect,
			Target: proto.Addr{FQDN: "www.example.com", Port: 80}}, server.ErrNotAllowed},
		{"default_deny", server.Request{User: "mallory", Client: client, Command: proto.CommandConnect,
			Target: proto.Addr{IP: netip.MustParseAddr("198.51.100.1"), Port: 22}}, server.ErrNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := st.Policy.Allow(context.Background(), &tt.req); !errors.Is(err, tt.want) {
				t.Errorf("Allow(%+v) = %v, want %v", tt.req, err, tt.want)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		text  string
		users string // users file contents, next to the config as users.htpasswd
		line  int
		words []string // each must appear in the error
	}{
		{name: "syntax", text: "listen = [\"a\"\nlog_level = \"info\"\n", line: 2, words: []string{"comma"}},
		{name: "syntax_equals", text: "\n\nlog_level = = 1\n", line: 3},
		{name: "unknown_top_level_key", text: "listen = [\"127.0.0.1:1\"]\n\nlisten_addr = \"x\"\n", line: 3, words: []string{"listen_addr", "unknown key"}},
		{name: "unknown_key_in_table", text: "[timeouts]\nidle = \"1m\"\nidel = \"1m\"\n", line: 3, words: []string{"timeouts.idel", "unknown key"}},
		{name: "unknown_table", text: "\n[timeout]\nidle = \"1m\"\n", line: 2, words: []string{"timeout: unknown key"}},
		{name: "unknown_key_in_rule", text: "[[rule]]\naction = \"allow\"\n[[rule]]\naction = \"deny\"\nnet = [\"10.0.0.0/8\"]\n", line: 5, words: []string{"rule.net", "unknown key"}},
		{name: "wrong_type_listen", text: "listen = \"127.0.0.1:1080\"\n", line: 1, words: []string{"listen", "expected an array of strings"}},
		{name: "wrong_type_limit", text: "[limits]\nsessions = \"10\"\n", line: 2, words: []string{"limits.sessions", "expected an integer"}},
		{name: "wrong_type_guard", text: "[guard]\n\nallow_self = \"yes\"\n", line: 3, words: []string{"guard.allow_self", "true or false"}},
		{name: "wrong_type_no_position", text: "\nlog_level = [\"info\"]\n", line: 2, words: []string{"log_level", "expected a string"}},
		{name: "wrong_type_ports", text: "[[rule]]\naction = \"deny\"\nports = [25]\n", line: 3, words: []string{"rule[1].ports", "expected an array of strings"}},
		{name: "bad_log_format", text: "log_format = \"xml\"\n", line: 1, words: []string{"log_format", "unknown log format"}},
		{name: "bad_log_level", text: "\nlog_level = \"verbose\"\n", line: 2, words: []string{"log_level", "unknown log level"}},
		{name: "bad_listen", text: "listen = [\n  \"127.0.0.1:1080\",\n  \"localhost\",\n]\n", line: 3, words: []string{"listen", "bad listen address", "localhost"}},
		{name: "bad_listen_port", text: "listen = [\"127.0.0.1:socks\"]\n", line: 1, words: []string{"bad listen address", "port"}},
		{name: "empty_listen", text: "listen = []\n", line: 1, words: []string{"listen", "no addresses"}},
		{name: "bad_duration", text: "[timeouts]\ndial = \"10\"\n", line: 2, words: []string{"timeouts.dial", "bad duration"}},
		{name: "negative_duration", text: "[timeouts]\n\nidle = \"-1s\"\n", line: 3, words: []string{"timeouts.idle", "bad duration", "zero or positive"}},
		{name: "zero_handshake", text: "[timeouts]\nhandshake = \"0\"\n", line: 2, words: []string{"timeouts.handshake", "positive"}},
		{name: "unknown_default_action", text: "[policy]\ndefault = \"reject\"\n", line: 2, words: []string{"policy.default", "unknown action", "reject"}},
		{name: "unknown_action", text: "[[rule]]\naction = \"allow\"\n[[rule]]\naction = \"block\"\n", line: 4, words: []string{"rule[2].action", "unknown action", "block"}},
		{name: "missing_action", text: "[[rule]]\nports = [\"25\"]\n", line: 1, words: []string{"rule[1].action", "missing action"}},
		{name: "bad_resolver_server", text: "[resolver]\nservers = [\n  \"192.0.2.53\",\n  \"dns.example\",\n]\n", line: 4, words: []string{"resolver.servers", "dns.example"}},
		{name: "bad_resolver_timeout", text: "[resolver]\ntimeout = \"2\"\n", line: 2, words: []string{"resolver.timeout", "bad duration"}},
		{name: "bad_nat64_prefix", text: "[resolver]\nnat64_prefix = \"2001:db8::/63\"\n", line: 2, words: []string{"resolver.nat64_prefix", "/63"}},
		{name: "ipv4_nat64_prefix", text: "[resolver]\nnat64_prefix = \"192.0.2.0/24\"\n", line: 2, words: []string{"resolver.nat64_prefix", "not an IPv6 prefix"}},
		{name: "unknown_resolver_key", text: "[resolver]\nservres = []\n", line: 2, words: []string{"servres"}},
		{name: "reserved_twice", text: "[listeners.reserved]\nalice = [8080]\nbob = [8443, 8080]\n", line: 3, words: []string{"listeners.reserved.bob", "8080", "alice"}},
		{name: "bad_public_address", text: "[listeners]\npublic_addresses = [\"gw.example\"]\n", line: 2, words: []string{"listeners.public_addresses", "gw.example"}},
		{name: "offer_timeout_range", text: "[listeners]\noffer_timeout = \"5m\"\n", line: 2, words: []string{"listeners.offer_timeout", "1s to 1m"}},
		{name: "bad_cidr", text: "[[rule]]\naction = \"deny\"\nnets = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n", line: 3, words: []string{"rule[1].nets", "bad network", "10.0.0.0/33"}},
		{name: "bad_cidr_multiline", text: "[[rule]]\naction = \"deny\"\nnets = [\n  \"10.0.0.0/8\",\n  \"10.0.0.300\",\n]\n", line: 5, words: []string{"rule[1].nets", "bad network", "10.0.0.300"}},
		{name: "bad_client_cidr", text: "[[rule]]\naction = \"deny\"\nclients = [\"192.168.1.0/24/1\"]\n", line: 3, words: []string{"rule[1].clients", "bad network"}},
		{name: "mapped_cidr", text: "[[rule]]\naction = \"deny\"\nnets = [\"::ffff:10.0.0.0/104\"]\n", line: 3, words: []string{"rule[1].nets", "IPv4-mapped"}},
		{name: "zone", text: "[[rule]]\naction = \"deny\"\nnets = [\"fe80::1%eth0\"]\n", line: 3, words: []string{"bad network"}},
		{name: "bad_port", text: "[[rule]]\naction = \"deny\"\nports = [\"http\"]\n", line: 3, words: []string{"rule[1].ports", "bad port range", "http"}},
		{name: "port_too_big", text: "[[rule]]\naction = \"deny\"\nports = [\"65536\"]\n", line: 3, words: []string{"bad port range"}},
		{name: "port_range_reversed", text: "[[rule]]\naction = \"deny\"\nports = [\"9000-8000\"]\n", line: 3, words: []string{"bad port range", "9000-8000"}},
		{name: "port_range_open", text: "[[rule]]\naction = \"deny\"\nports = [\"8000-\"]\n", line: 3, words: []string{"bad port range"}},
		{name: "unknown_command", text: "[[rule]]\naction = \"deny\"\ncommands = [\"CONNECT\"]\n", line: 3, words: []string{"rule[1].commands", "unknown command", "CONNECT"}},
		{name: "bad_domain", text: "[[rule]]\naction = \"deny\"\ndomains = [\"*.example.com\"]\n", line: 3, words: []string{"rule[1].domains", "bad domain"}},
		{name: "domain_is_address", text: "[[rule]]\naction = \"deny\"\ndomains = [\"10.0.0.1\"]\n", line: 3, words: []string{"bad domain", "nets"}},
		{name: "domain_empty_label", text: "[[rule]]\naction = \"deny\"\ndomains = [\"a..b\"]\n", line: 3, words: []string{"bad domain"}},
		{name: "unknown_group", text: "[groups]\nadmins = [\"alice\"]\n[[rule]]\naction = \"allow\"\ngroups = [\"admins\", \"admin\"]\n", line: 5, words: []string{"rule[1].groups", "unknown group", "\"admin\""}},
		{name: "unknown_group_no_groups", text: "[[rule]]\naction = \"allow\"\n\ngroups = [\"staff\"]\n", line: 4, words: []string{"unknown group", "staff"}},
		{name: "empty_group_member", text: "[groups]\nadmins = [\"alice\",\n  \"\"]\n", line: 3, words: []string{"groups.admins", "empty user name"}},
		{name: "unreadable_users_file", text: "log_level = \"info\"\nusers_file = \"missing.htpasswd\"\n", line: 2, words: []string{"users_file", "users file", "missing.htpasswd"}},
		{name: "users_file_apr1", text: "\nusers_file = \"users.htpasswd\"\n", line: 2,
			users: "alice:$2a$04$0K9rc0tif1CpfotKYAbr5.bNrnYra/k3Oe/5gD99womWQ9.d4AWkW\nbob:$apr1$x8a7$HI6qFQb1RYNCN1Dn.ZvSK0\n",
			words: []string{"users_file", "users.htpasswd:2:", "apr1", "bcrypt"}},
		{name: "tls_no_cert", text: "\n[tls]\nlisten = [\"127.0.0.1:1443\"]\n", line: 2, words: []string{"tls: ", "cert_file is missing"}},
		{name: "tls_no_key", text: "[tls]\nlisten = [\"127.0.0.1:1443\"]\ncert_file = \"gw.crt\"\n", line: 1, words: []string{"tls: ", "key_file is missing"}},
		{name: "tls_missing_key_file", text: "[tls]\nlisten = [\"127.0.0.1:1443\"]\ncert_file = \"socks6d.toml\"\nkey_file = \"gw.key\"\n", line: 4, words: []string{"tls.key_file", "gw.key", "no such file"}},
		{name: "listen_twice", text: "listen = [\"127.0.0.1:1080\",\n  \"127.0.0.1:1080\"]\n", line: 2, words: []string{"listen", "listed twice"}},
		{name: "listen_wildcards", text: "listen = [\"0.0.0.0:1080\"]\n[tls]\nlisten = [\"[::]:1080\"]\ncert_file = \"a\"\nkey_file = \"b\"\n", line: 3, words: []string{"tls.listen", "dual-stack"}},
		{name: "listen_same_in_tls", text: "listen = [\"[::1]:1080\"]\n[tls]\nlisten = [\"[::1]:1080\"]\ncert_file = \"a\"\nkey_file = \"b\"\n", line: 3, words: []string{"tls.listen", "listed twice"}},
		{name: "tls_no_listen", text: "\n[tls]\ncert_file = \"gw.crt\"\nkey_file = \"gw.key\"\n", line: 2, words: []string{"tls", "listen is empty"}},
		{name: "tls_bad_listen", text: "[tls]\nlisten = [\"1443\"]\ncert_file = \"gw.crt\"\nkey_file = \"gw.key\"\n", line: 2, words: []string{"tls.listen", "bad listen address"}},
		{name: "tls_missing_cert_file", text: "[tls]\nlisten = [\"127.0.0.1:1443\"]\ncert_file = \"gw.crt\"\nkey_file = \"gw.key\"\n", line: 3, words: []string{"tls.cert_file", "gw.crt", "no such file"}},
		{name: "tls_unknown_key", text: "[tls]\nlisten = [\"127.0.0.1:1443\"]\ncertificate = \"gw.crt\"\n", line: 3, words: []string{"tls.certificate", "unknown key"}},
		{name: "upstream_no_proxy", text: "[[upstream]]\ndefault = true\n", line: 1, words: []string{"upstream", "proxy is missing"}},
		{name: "upstream_serves_nothing", text: "[[upstream]]\nproxy = \"socks6://192.0.2.1:1080\"\n", line: 1, words: []string{"upstream", "serves nothing"}},
		{name: "upstream_bad_scheme", text: "[[upstream]]\ndefault = true\nproxy = \"http://192.0.2.1:3128\"\n", line: 3, words: []string{"upstream[1].proxy", "scheme"}},
		{name: "upstream_bad_url_hides_password", text: "[[upstream]]\ndefault = true\nproxy = \"socks6://u:s3cret@[::1\"\n", line: 3, words: []string{"upstream[1].proxy", "not shown"}},
		{name: "upstream_second_default", text: "[[upstream]]\nproxy = \"socks6://192.0.2.1:1080\"\ndefault = true\n[[upstream]]\nproxy = \"socks6://192.0.2.2:1080\"\ndefault = true\n", line: 6, words: []string{"upstream[2].default", "second default"}},
		{name: "upstream_tls_ca_without_tls", text: "[[upstream]]\nproxy = \"socks6://192.0.2.1:1080\"\ndefault = true\ntls_ca = \"ca.pem\"\n", line: 4, words: []string{"upstream[1].tls_ca", "socks6s://"}},
		{name: "upstream_password_with_hash", text: "[[upstream]]\ndefault = true\nproxy = \"socks6://u:1234#abc@gw.example:1080\"\n", line: 3, words: []string{"upstream[1].proxy", "not shown", "%23"}},
		{name: "upstream_password_with_slash", text: "[[upstream]]\ndefault = true\nproxy = \"socks6://u:s3cr/et@gw.example:1080\"\n", line: 3, words: []string{"upstream[1].proxy", "not shown"}},
		{name: "upstream_is_self_localhost", text: "listen = [\"localhost:1080\"]\n[[upstream]]\nproxy = \"socks5://127.0.0.1:1080\"\ndefault = true\n", line: 3, words: []string{"upstream[1].proxy", "itself"}},
		{name: "upstream_is_self_any", text: "listen = [\":1080\"]\n[[upstream]]\nproxy = \"socks5://[::1]:1080\"\ndefault = true\n", line: 3, words: []string{"upstream[1].proxy", "itself"}},
		{name: "upstream_tls_ca_missing", text: "[[upstream]]\nproxy = \"socks6s://192.0.2.1:1443\"\ndefault = true\ntls_ca = \"ca.pem\"\n", line: 4, words: []string{"upstream[1].tls_ca", "ca.pem"}},
		{name: "upstream_is_self", text: "listen = [\"0.0.0.0:1080\"]\n[[upstream]]\nproxy = \"socks6://127.0.0.1:1080\"\ndefault = true\n", line: 3, words: []string{"upstream[1].proxy", "must not forward to itself"}},
		{name: "upstream_bad_net", text: "[[upstream]]\nproxy = \"socks6://192.0.2.1:1080\"\nnets = [\"10.0.0.0/40\"]\n", line: 3, words: []string{"upstream[1].nets", "bad network"}},
		{name: "users_file_plain", text: "users_file = \"users.htpasswd\"\n", line: 1,
			users: "# users\n\ncarol:secret\n", words: []string{"users.htpasswd:3:", "not a bcrypt hash"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, tt.text)
			if tt.users != "" {
				writeUsers(t, path, tt.users)
			}
			c, err := Load(path)
			if err == nil {
				t.Fatalf("Load() = %+v, want an error", c)
			}
			msg := err.Error()
			if prefix := fmt.Sprintf("%s:%d: ", path, tt.line); !strings.HasPrefix(msg, prefix) {
				t.Errorf("Load() error = %q, want it to start with %q", msg, prefix)
			}
			for _, w := range tt.words {
				if !strings.Contains(msg, w) {
					t.Errorf("Load() error = %q, want it to contain %q", msg, w)
				}
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.File != path || ce.Line != tt.line {
				t.Errorf("Load() error = %#v, want an *Error for %s:%d", err, path, tt.line)
			}
		})
	}
}

// TestLoadErrorsAll checks that problems are reported together, in line
// order, one per line of the message.
func TestLoadErrorsAll(t *testing.T) {
	path := writeConfig(t, `log_format = "xml"
[timeouts]
idle = "forever"
[[rule]]
action = "deny"
ports = ["x"]
nets = ["y"]
`)
	_, err := Load(path)
	if err == nil {
		t.Fatal("Load() = nil error")
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{path + ":1: log_format", path + ":3: timeouts.idle", path + ":6: rule[1].ports", path + ":7: rule[1].nets"}
	if len(lines) != len(want) {
		t.Fatalf("Load() error has %d lines, want %d:\n%v", len(lines), len(want), err)
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("error line %d = %q, want prefix %q", i+1, lines[i], want[i])
		}
	}

	// Unknown keys are all reported too.
	path = writeConfig(t, "a = 1\n[guard]\nb = true\n")
	_, err = Load(path)
	if err == nil || !strings.Contains(err.Error(), path+":1: a: unknown key") || !strings.Contains(err.Error(), path+":3: guard.b: unknown key") {
		t.Errorf("Load() error = %v, want both unknown keys", err)
	}
}

// TestValidateOverride checks that a value changed after Parse is not
// blamed on the file.
func TestValidateOverride(t *testing.T) {
	path := writeConfig(t, "users_file = \"users.htpasswd\"\nlisten = [\"127.0.0.1:0\"]\n")
	writeUsers(t, path, "alice:$2a$04$0K9rc0tif1CpfotKYAbr5.bNrnYra/k3Oe/5gD99womWQ9.d4AWkW\n")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(path, data)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	c.UsersFile = filepath.Join(t.TempDir(), "elsewhere")
	c.Listen = []string{"nowhere"}
	err = c.Validate()
	if err == nil {
		t.Fatal("Validate() = nil, want errors")
	}
	if strings.Contains(err.Error(), path) {
		t.Errorf("Validate() = %q, must not name %s for values set elsewhere", err, path)
	}
	for _, w := range []string{"users_file: bad users file", "listen: bad listen address"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Validate() = %q, want %q", err, w)
		}
	}
}

func TestValidateTyped(t *testing.T) {
	c := Default()
	c.LogFormat = "yaml"
	c.Default = server.Action(7)
	c.Rules = []server.Rule{{
		Action:   server.Action(9),
		Commands: []proto.Command{9},
		Domains:  []string{"Upper.Example"},
		Ports:    []server.PortRange{{Lo: 9, Hi: 1}},
		Nets:     []netip.Prefix{{}},
	}}
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate() = nil")
	}
	for _, w := range []string{"log_format", "policy.default", "rule[1].action", "rule[1].commands",
		"rule[1].domains", "rule[1].ports", "rule[1].nets"} {
		if !strings.Contains(err.Error(), w+": ") {
			t.Errorf("Validate() = %q, want a problem with %s", err, w)
		}
	}
	var z Config
	if err := z.Validate(); err == nil {
		t.Error("zero Config validates, want timeouts and listen refused")
	}
}

// TestExampleFile checks that the example at the repository root loads and
// mentions every key.
func TestExampleFile(t *testing.T) {
	const example = "../../socks6d.example.toml"
	c, err := Load(example)
	if err != nil {
		t.Fatalf("Load(%s) = %v", example, err)
	}
	if len(c.Rules) == 0 || len(c.Groups) == 0 {
		t.Errorf("example has %d rules and %d groups; it should show both", len(c.Rules), len(c.Groups))
	}
	text, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range fieldKeys {
		name := key[strings.LastIndexByte(key, '.')+1:]
		if strings.HasPrefix(key, "rule.") {
			name = key[len("rule.*."):]
		}
		if !strings.Contains(string(text), name+" = ") && !strings.Contains(string(text), "["+name+"]") {
			t.Errorf("example does not mention key %s", key)
		}
	}
	// With users_file uncommented it still loads, given the file.
	dir := t.TempDir()
	withUsers := strings.Replace(string(text), "# users_file =", "users_file =", 1)
	path := filepath.Join(dir, "socks6d.toml")
	if err := os.WriteFile(path, []byte(withUsers), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "users_file") {
		t.Errorf("Load(example with users_file, no users file) = %v, want a users_file error", err)
	}
	if err := htpasswd.SetPassword(filepath.Join(dir, "users.htpasswd"), "alice", "pw", 4); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err != nil {
		t.Errorf("Load(example with users_file) = %v", err)
	}
}

func TestParseHelpers(t *testing.T) {
	for _, tt := range []struct {
		in, want string
	}{
		{"10.0.0.0/8", "10.0.0.0/8"},
		{"10.1.2.3/8", "10.0.0.0/8"},
		{"10.1.2.3", "10.1.2.3/32"},
		{"2001:db8::1", "2001:db8::1/128"},
		{"2001:db8::1/32", "2001:db8::/32"},
	} {
		got, err := ParsePrefix(tt.in)
		if err != nil || got.String() != tt.want {
			t.Errorf("ParsePrefix(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	for _, tt := range []struct {
		in, want string
	}{
		{"Example.COM", "example.com"},
		{".example.com", "example.com"},
		{"example.com.", "example.com"},
		{"xn--bcher-kva.example", "xn--bcher-kva.example"},
	} {
		got, err := ParseDomain(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseDomain(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", ".", "bücher.example", "a b", "example.com/x"} {
		if _, err := ParseDomain(bad); err == nil {
			t.Errorf("ParseDomain(%q) = nil error", bad)
		}
	}
}

func FuzzLoad(f *testing.F) {
	if example, err := os.ReadFile("../../socks6d.example.toml"); err == nil {
		f.Add(example)
	}
	for _, s := range []string{
		"",
		"listen = [\"127.0.0.1:0\"]\n[timeouts]\nidle = \"0\"\n",
		"[[rule]]\naction = \"deny\"\nnets = [\n\"10.0.0.0/8\",\n]\nports = [\"1-2\"]\n",
		"rule = [{ action = \"allow\", domains = [\".x.\"] }]\n",
		"[groups]\na = [\"b\"]\n[[rule]]\naction = \"allow\"\ngroups = [\"c\"]\n",
		"users_file = \"users.htpasswd\"\n",
		"timeouts = { idle = true }\nlisten = {a = 1}\n",
		"[[rule]]\naction = \"allow\"\n[rule.x]\ny = 1\n",
		"a = = 1\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "socks6d.toml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		// Keep the users file inside dir: an arbitrary path could be a
		// FIFO or a device that blocks.
		if c, err := Parse(path, data); err == nil && c.UsersFile != "" &&
			!strings.HasPrefix(filepath.Clean(c.UsersFile), dir+string(filepath.Separator)) {
			t.Skip("users_file outside the test directory")
		}
		c, err := Load(path)
		if err != nil {
			if err.Error() == "" {
				t.Error("empty error message")
			}
			return
		}
		if _, err := c.Settings(); err != nil {
			t.Errorf("Settings() after a successful Load = %v", err)
		}
	})
}

func TestResolverSection(t *testing.T) {
	c, err := Parse("r.toml", []byte(`[resolver]
servers = ["192.0.2.53", "tls://[2001:db8::53]:853#dns.example"]
hosts_file = "-"
timeout = "1500ms"
attempts = 3
cache_size = 500
max_ttl = "10m"
negative_ttl = "30s"
nat64_prefix = "64:ff9b::/96"
`))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Resolver
	if len(r.Servers) != 2 || r.HostsFile != "-" || r.Timeout != 1500*time.Millisecond || r.Attempts != 3 ||
		r.CacheSize != 500 || r.MaxTTL != 10*time.Minute || r.NegativeTTL != 30*time.Second ||
		r.NAT64Prefix != netip.MustParsePrefix("64:ff9b::/96") || r.DiscoverNAT64 {
		t.Fatalf("resolver section: %+v", r)
	}
	if rc := r.ResolverConfig(); rc.CacheSize != 500 || rc.Servers[1] != "tls://[2001:db8::53]:853#dns.example" {
		t.Fatalf("ResolverConfig: %+v", rc)
	}
	for in, discover := range map[string]bool{`nat64_prefix = "auto"`: true, `nat64_prefix = "off"`: false, ``: true} {
		c, err := Parse("r.toml", []byte("[resolver]\n"+in+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		if c.Resolver.DiscoverNAT64 != discover || c.Resolver.NAT64Prefix.IsValid() {
			t.Errorf("%q: discover %v prefix %v", in, c.Resolver.DiscoverNAT64, c.Resolver.NAT64Prefix)
		}
	}
}
