// Package internal holds the repository's meta-tests: import rules
// (depcheck_test.go) and documentation and formatting rules
// (pkgdoc_test.go). It has no non-test code.
package internal

import (
	"bytes"
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The import rules of STYLE.md section 1 and DESIGN.md ("Packages and who
// may import whom"), checked against what `go list -deps` reports for the
// non-test build of every package in the module. Package patterns are
// module-relative ("server", "internal/..." for internal and everything
// below it). In a bad map, a key that starts with "./" is module-relative;
// any other key is a standard-library import path. The check is
// transitive: importing a package that imports a bad one is as bad.
var importRules = []struct {
	pkgs   string            // module-relative package pattern
	except []string          // patterns the rule does not apply to
	bad    map[string]string // import path => why
	direct bool              // only the package's own imports, not their dependencies
}{
	{
		pkgs: "proto",
		bad: map[string]string{
			"./...":    "proto imports nothing of ours, so other SOCKS implementations can vendor and fuzz it alone",
			"net":      "proto is the wire format only: no dialing, no sockets (net/netip is enough for addresses)",
			"log":      "proto logs nothing; it returns errors",
			"log/slog": "proto logs nothing; it returns errors",
			"context":  "proto never blocks on anything but the caller's io.Reader, so it takes no context",
			"os/exec":  "proto does no I/O of its own",
		},
	},
	{
		pkgs: "internal/...",
		// internal/config turns the socks6d configuration file into
		// server.Settings; only cmd/socks6d imports it (STYLE.md section 5
		// names internal/config as the place for config parsing).
		except: []string{"internal/config"},
		bad: map[string]string{
			"./server/...":   "internal/ holds what server and client both need, so it cannot depend on either",
			"./client/...":   "internal/ holds what server and client both need, so it cannot depend on either",
			"./socksify/...": "internal/ sits below every public package",
			"./cmd/...":      "internal/ sits below every public package",
		},
	},
	{
		pkgs: "internal/config",
		// The configuration builds the client.Dialers of [[upstream]]
		// gateways (chaining), as server.Upstream holds them.
		bad: map[string]string{
			"./socksify/...": "internal/ sits below every public package",
			"./cmd/...":      "internal/ sits below every public package",
		},
	},
	{
		pkgs: "server/...",
		// server may import client, for upstream chaining only (DESIGN.md).
		bad: map[string]string{
			"./socksify/...": "the gateway does not run programs",
			"./cmd/...":      "libraries never import binaries",
		},
	},
	{
		pkgs: "server/auth/...",
		bad: map[string]string{
			"./client/...": "authentication backends have no use for the client; only the gateway's chaining does",
		},
		// They import server (for its errors), which imports client for
		// chaining: only their own imports are judged.
		direct: true,
	},
	{
		pkgs: "client/...",
		bad: map[string]string{
			"./server/...":   "client never imports server: what both need lives in internal/ (DESIGN.md)",
			"./socksify/...": "socksify is built on client, not the other way round",
			"./cmd/...":      "libraries never import binaries",
		},
	},
	{
		pkgs: "socksify/...",
		bad: map[string]string{
			"./server/...": "socksify redirects a program through client/; it never runs a gateway",
			"./cmd/...":    "libraries never import binaries",
		},
	},
	{
		pkgs: "...",
		// socks6test is a test helper: it imports testing, which
		// imports flag for the test flags. Nothing else may import it.
		except: []string{"cmd/...", "bench/...", "internal/socks6test/..."},
		bad: map[string]string{
			"flag": "only cmd/ reads flags (STYLE.md section 1); libraries take config structs",
		},
	},
	{
		pkgs:   "...",
		except: []string{"internal/socks6test/...", "bench/..."},
		bad: map[string]string{
			"./internal/socks6test/...": "socks6test is a test helper; only _test files use it",
		},
	},
	{
		pkgs:   "...",
		except: []string{"bench/..."},
		bad: map[string]string{
			"./bench/...": "benchmarks are programs, not libraries",
		},
	},
}

// thirdParty lists, per package pattern, the modules outside the standard
// library and this module that the package may import (what those modules
// import in turn is theirs to answer for; go.mod review covers it). The most specific pattern applies: an exact package
// beats "x/...", and a longer "x/..." beats a shorter one. An entry ending
// in "/" is a module path prefix; "*" is anything go.mod lists. A package
// no pattern matches fails the test, so a new package needs a rule.
var thirdParty = map[string][]string{
	"proto":                nil, // standard library only
	"internal/...":         {"golang.org/x/"},
	"internal/socks6test":  {"golang.org/x/", "github.com/miekg/dns"},            // DNS servers inside tests
	"internal/config":      {"golang.org/x/", "github.com/pelletier/go-toml/v2"}, // the config file format
	"server":               {"golang.org/x/"},
	"server/...":           {"golang.org/x/"},
	"server/resolver":      {"github.com/miekg/dns"}, // the gateway's resolver
	"server/auth/...":      {"golang.org/x/"},
	"server/auth/htpasswd": {"golang.org/x/crypto"},                           // bcrypt
	"client/...":           {"golang.org/x/", "github.com/insomniacslk/dhcp"}, // proxy interfaces; DHCP discovery
	"socksify/...":         {"golang.org/x/sys"},
	"socksify/isolate":     {"golang.org/x/sys", "gvisor.dev/gvisor"}, // the isolate mode's user-space TCP/IP stack
	"cmd/...":              {"*"},
	"bench/...":            {"*"},
}

// goPackage is the part of `go list -json` output the meta-tests use.
type goPackage struct {
	Dir        string
	ImportPath string
	Name       string
	Standard   bool
	Module     *struct{ Path string }
	GoFiles    []string
	CgoFiles   []string
	Imports    []string
	Deps       []string
	Error      *struct{ Err string }
	DepsErrors []*struct{ Err string }
}

var modInfo struct {
	once       sync.Once
	root, path string
	err        error
}

// module returns the module's root directory and path, found through
// `go env GOMOD` so the tests work from any package directory.
func module(t *testing.T) (root, path string) {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skipf("go command not found: %v", err)
	}
	modInfo.once.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			modInfo.err = err
			return
		}
		gomod := strings.TrimSpace(string(out))
		if gomod == "" || gomod == os.DevNull {
			modInfo.err = errors.New("not inside a module")
			return
		}
		modInfo.root = filepath.Dir(gomod)
		out, err = exec.Command("go", "list", "-C", modInfo.root, "-m", "-f", "{{.Path}}").Output()
		modInfo.path, modInfo.err = strings.TrimSpace(string(out)), err
	})
	if modInfo.err != nil {
		t.Fatalf("finding the module: %v", modInfo.err)
	}
	return modInfo.root, modInfo.path
}

// goList runs `go list -e -json args...` in the module root.
func goList(t *testing.T, args ...string) []*goPackage {
	t.Helper()
	root, _ := module(t)
	cmd := exec.Command("go", append([]string{"list", "-e", "-json"}, args...)...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	var pkgs []*goPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := new(goPackage)
		if err := dec.Decode(p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// rel returns p relative to the module ("." for the root package), and
// whether p is in the module at all.
func rel(mod, p string) (string, bool) {
	if p == mod {
		return ".", true
	}
	if r, ok := strings.CutPrefix(p, mod+"/"); ok {
		return r, true
	}
	return "", false
}

// matchPattern reports whether the module-relative path r matches pat,
// where "x/..." matches x and everything below it and "..." matches all.
func matchPattern(pat, r string) bool {
	if pat == "..." {
		return true
	}
	if base, ok := strings.CutSuffix(pat, "/..."); ok {
		return r == base || strings.HasPrefix(r, base+"/")
	}
	return r == pat
}

// matchImport reports whether import path p matches a bad-map key.
func matchImport(mod, key, p string) bool {
	if r, ok := strings.CutPrefix(key, "./"); ok {
		pr, in := rel(mod, p)
		return in && matchPattern(r, pr)
	}
	return key == p
}

// chain returns the shortest import chain from "from" to "to", for
// messages.
func chain(pkgs map[string]*goPackage, mod, from, to string) string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 && prev[to] == "" {
		p := queue[0]
		queue = queue[1:]
		if pkgs[p] == nil {
			continue
		}
		for _, q := range pkgs[p].Imports {
			if _, seen := prev[q]; !seen {
				prev[q] = p
				queue = append(queue, q)
			}
		}
	}
	if _, ok := prev[to]; !ok {
		return to
	}
	var path []string
	for p := to; p != ""; p = prev[p] {
		name := p
		if r, ok := rel(mod, p); ok {
			name = r
		}
		path = append(path, name)
	}
	for i, j := 0, len(path)-1; i < j; i, j = i+1, j-1 {
		path[i], path[j] = path[j], path[i]
	}
	return strings.Join(path, " → ")
}

// thirdPartyRule returns the allowed modules for the module-relative
// package r.
func thirdPartyRule(r string) (allowed []string, pat string, ok bool) {
	best := -1
	for p, a := range thirdParty {
		if !matchPattern(p, r) {
			continue
		}
		score := len(p) // a longer pattern is more specific
		if !strings.HasSuffix(p, "...") {
			score = 1 << 20 // exact match beats any pattern
		}
		if score > best {
			best, allowed, pat, ok = score, a, p, true
		}
	}
	return allowed, pat, ok
}

func moduleAllowed(allowed []string, m string) bool {
	for _, a := range allowed {
		if a == "*" || a == m || (strings.HasSuffix(a, "/") && strings.HasPrefix(m, a)) {
			return true
		}
	}
	return false
}

func TestImportRules(t *testing.T) {
	_, mod := module(t)
	all := goList(t, "-deps", "./...")
	pkgs := make(map[string]*goPackage, len(all))
	for _, p := range all {
		pkgs[p.ImportPath] = p
	}
	var ours []*goPackage
	for _, p := range all {
		if _, in := rel(mod, p.ImportPath); in && !p.Standard {
			ours = append(ours, p)
		}
	}
	if len(ours) == 0 {
		t.Fatalf("go list found no packages of module %s", mod)
	}

	for _, p := range ours {
		r, _ := rel(mod, p.ImportPath)
		if p.Error != nil {
			t.Errorf("%s: %s", r, p.Error.Err)
		}
		for _, e := range p.DepsErrors {
			t.Errorf("%s: dependency error: %s", r, e.Err)
		}

		// Forbidden imports, direct or not.
		for _, rule := range importRules {
			if !matchPattern(rule.pkgs, r) {
				continue
			}
			excepted := false
			for _, e := range rule.except {
				excepted = excepted || matchPattern(e, r)
			}
			if excepted {
				continue
			}
			deps := p.Deps
			if rule.direct {
				deps = p.Imports
			}
			for _, d := range deps {
				for key, why := range rule.bad {
					if matchImport(mod, key, d) {
						t.Errorf("%s imports %s (%s), which is forbidden: %s", r, d, chain(pkgs, mod, p.ImportPath, d), why)
					}
				}
			}
		}

		// Third-party modules p imports itself. (Those our other
		// packages import are checked under their own rules.)
		allowed, pat, ok := thirdPartyRule(r)
		if !ok {
			t.Errorf("%s: no third-party rule covers this package; add one to thirdParty in depcheck_test.go", r)
			continue
		}
		for _, imp := range p.Imports {
			ip := pkgs[imp]
			if ip == nil || ip.Standard || ip.Module == nil || ip.Module.Path == mod {
				continue
			}
			if !moduleAllowed(allowed, ip.Module.Path) {
				t.Errorf("%s imports %s: module %s is not allowed here (rule %q allows %q); STYLE.md section 1 lists each package's third-party dependencies",
					r, imp, ip.Module.Path, pat, allowed)
			}
		}
	}
}

// forbiddenCalls are the process-wide actions only cmd/ may take
// (STYLE.md section 1): import path => selector ("*": any) => why.
var forbiddenCalls = map[string]map[string]string{
	"os": {
		"Exit": "only cmd/ ends the process; libraries return errors",
	},
	"flag": {
		"*": "only cmd/ reads flags; libraries take config structs",
	},
	"log": {
		"Fatal":     "log.Fatal calls os.Exit; libraries return errors",
		"Fatalf":    "log.Fatalf calls os.Exit; libraries return errors",
		"Fatalln":   "log.Fatalln calls os.Exit; libraries return errors",
		"SetOutput": "only cmd/ configures logging",
		"SetFlags":  "only cmd/ configures logging",
		"SetPrefix": "only cmd/ configures logging",
	},
	"log/slog": {
		"SetDefault":        "only cmd/ configures logging; libraries take a *slog.Logger (nil means slog.Default())",
		"SetLogLoggerLevel": "only cmd/ configures logging",
	},
	"os/signal": {
		"Notify":        "only cmd/ handles signals",
		"NotifyContext": "only cmd/ handles signals",
		"Ignore":        "only cmd/ handles signals",
		"Reset":         "only cmd/ handles signals",
	},
}

// sourceFiles returns the module's non-test .go files outside testdata,
// hidden directories, vendor and nested modules, relative to root. Files
// for every GOOS are included. skip lists module-relative directory
// patterns to leave out.
func sourceFiles(t *testing.T, root string, tests bool, skip ...string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(root, path)
		r = filepath.ToSlash(r)
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			if path != root {
				if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
					return filepath.SkipDir // another module
				}
			}
			for _, s := range skip {
				if matchPattern(s, r) {
					return filepath.SkipDir
				}
			}
			return nil
		}
		if strings.HasSuffix(r, ".go") && (tests || !strings.HasSuffix(r, "_test.go")) {
			files = append(files, r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return files
}

func TestNoProcessControlOutsideCmd(t *testing.T) {
	root, _ := module(t)
	fset := token.NewFileSet()
	for _, name := range sourceFiles(t, root, false, "cmd/...", "bench/...") {
		src, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, parser.SkipObjectResolution)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		// Local names of the watched imports in this file.
		local := map[string]string{}
		for _, is := range f.Imports {
			p, _ := strconv.Unquote(is.Path.Value)
			if forbiddenCalls[p] == nil {
				continue
			}
			n := p[strings.LastIndex(p, "/")+1:]
			if is.Name != nil {
				n = is.Name.Name
			}
			switch n {
			case "_":
				continue
			case ".":
				t.Errorf("%s: dot import of %q hides calls this test looks for", fset.Position(is.Pos()), p)
				continue
			}
			local[n] = p
		}
		if len(local) == 0 {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			x, ok := sel.X.(*ast.Ident)
			if !ok {
				return true
			}
			p, ok := local[x.Name]
			if !ok {
				return true
			}
			why, bad := forbiddenCalls[p][sel.Sel.Name]
			if !bad {
				why, bad = forbiddenCalls[p]["*"]
			}
			if bad {
				t.Errorf("%s: %s.%s outside cmd/: %s", fset.Position(sel.Pos()), p, sel.Sel.Name, why)
			}
			return true
		})
	}
}

// The rule machinery itself: patterns and the most specific third-party
// rule.
func TestImportRulePatterns(t *testing.T) {
	const mod = "example.com/m"
	matches := []struct {
		pat, rel string
		want     bool
	}{
		{"...", "proto", true},
		{"server/...", "server", true},
		{"server/...", "server/auth/htpasswd", true},
		{"server/...", "serverless", false},
		{"proto", "proto/sub", false},
	}
	for _, tt := range matches {
		if got := matchPattern(tt.pat, tt.rel); got != tt.want {
			t.Errorf("matchPattern(%q, %q) = %v, want %v", tt.pat, tt.rel, got, tt.want)
		}
	}
	imports := []struct {
		key, path string
		want      bool
	}{
		{"./server/...", mod + "/server", true},
		{"./server/...", mod + "/server/auth", true},
		{"./server/...", "server", false},
		{"./...", mod + "/internal/relay", true},
		{"./...", "net", false},
		{"net", "net", true},
		{"net", "net/netip", false},
	}
	for _, tt := range imports {
		if got := matchImport(mod, tt.key, tt.path); got != tt.want {
			t.Errorf("matchImport(%q, %q) = %v, want %v", tt.key, tt.path, got, tt.want)
		}
	}
	rules := []struct{ rel, pat string }{
		{"server", "server"},
		{"server/auth/htpasswd", "server/auth/htpasswd"},
		{"server/auth/ldap", "server/auth/..."},
		{"server/tlsutil", "server/..."},
		{"internal/config", "internal/config"},
		{"internal/relay", "internal/..."},
		{"cmd/socks6d", "cmd/..."},
	}
	for _, tt := range rules {
		if _, pat, ok := thirdPartyRule(tt.rel); !ok || pat != tt.pat {
			t.Errorf("thirdPartyRule(%q) = %q, %v; want %q", tt.rel, pat, ok, tt.pat)
		}
	}
	if _, _, ok := thirdPartyRule("newpkg"); ok {
		t.Error("a package no rule names has a third-party rule")
	}
	if moduleAllowed([]string{"golang.org/x/crypto"}, "golang.org/x/net") || !moduleAllowed([]string{"golang.org/x/"}, "golang.org/x/net") || moduleAllowed(nil, "golang.org/x/net") {
		t.Error("moduleAllowed is wrong")
	}
}
