package internal

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// Every package has a doc.go that carries its package comment, and only
// doc.go does (STYLE.md section 9; tailscale's pkgdoc_test.go).
func TestPackageDocs(t *testing.T) {
	root, mod := module(t)
	for _, p := range goList(t, "./...") {
		r, _ := rel(mod, p.ImportPath)
		if len(p.GoFiles)+len(p.CgoFiles) == 0 {
			continue // test-only directory, such as this one
		}
		fset := token.NewFileSet()
		docs := map[string]bool{}
		files := goFiles(t, p.Dir)
		for _, name := range files {
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Errorf("%v", err)
				continue
			}
			if f.Doc != nil {
				docs[name] = true
				if name != "doc.go" {
					relName, _ := filepath.Rel(root, filepath.Join(p.Dir, name))
					t.Errorf("%s: package comment outside doc.go; move it there (go doc would join the two)", relName)
				}
			}
			if name == "doc.go" && f.Doc != nil && p.Name != "main" {
				text := f.Doc.Text()
				if !strings.HasPrefix(text, "Package "+p.Name+" ") {
					t.Errorf("%s/doc.go: package comment starts %q, want \"Package %s ...\"", r, firstLine(text), p.Name)
				}
			}
		}
		if !docs["doc.go"] {
			t.Errorf("%s: no doc.go with a package comment (what it does and does not do, the spec it implements, its concurrency rules)", r)
		}
	}
}

// Every exported identifier of a library package has a doc comment that
// starts with its name (STYLE.md section 9). Package main is exempt: it
// exports nothing. Generated files are exempt.
func TestExportedDocs(t *testing.T) {
	root, mod := module(t)
	for _, p := range goList(t, "./...") {
		if p.Name == "main" || len(p.GoFiles)+len(p.CgoFiles) == 0 {
			continue
		}
		r, _ := rel(mod, p.ImportPath)
		fset := token.NewFileSet()
		for _, name := range goFiles(t, p.Dir) {
			relName, _ := filepath.Rel(root, filepath.Join(p.Dir, name))
			src, err := os.ReadFile(filepath.Join(p.Dir, name))
			if err != nil {
				t.Fatal(err)
			}
			f, err := parser.ParseFile(fset, relName, src, parser.ParseComments|parser.SkipObjectResolution)
			if err != nil {
				t.Errorf("%s: %v", r, err)
				continue
			}
			if ast.IsGenerated(f) {
				continue
			}
			for _, m := range undocumented(fset, f) {
				t.Error(m)
			}
		}
	}
}

// undocumented returns a message for each exported top-level identifier
// of f whose doc comment is missing or does not start with its name.
func undocumented(fset *token.FileSet, f *ast.File) []string {
	var msgs []string
	// check reports doc unless it starts with name; what names the
	// identifier in the message ("func Relay", "method Addr.String").
	check := func(pos token.Pos, what, name string, doc *ast.CommentGroup, articles bool) {
		if doc == nil {
			msgs = append(msgs, fset.Position(pos).String()+": exported "+what+" has no doc comment")
			return
		}
		if !startsWithName(doc.Text(), name, articles) {
			msgs = append(msgs, fset.Position(pos).String()+": doc comment of "+what+" should start with "+strconv.Quote(name)+", not "+quoteShort(firstLine(doc.Text())))
		}
	}
	for _, decl := range f.Decls {
		switch d := decl.(type) {
		case *ast.FuncDecl:
			if !d.Name.IsExported() {
				continue
			}
			what := "func " + d.Name.Name
			if d.Recv != nil {
				recv := recvTypeName(d.Recv.List[0].Type)
				if !ast.IsExported(recv) {
					continue // reachable only through an interface
				}
				what = "method " + recv + "." + d.Name.Name
			}
			check(d.Pos(), what, d.Name.Name, d.Doc, false)
		case *ast.GenDecl:
			grouped := d.Lparen.IsValid()
			for _, spec := range d.Specs {
				switch s := spec.(type) {
				case *ast.TypeSpec:
					if !s.Name.IsExported() {
						continue
					}
					doc := s.Doc
					if doc == nil && !grouped {
						doc = d.Doc
					}
					check(s.Pos(), "type "+s.Name.Name, s.Name.Name, doc, true)
				case *ast.ValueSpec:
					var exported []string
					for _, n := range s.Names {
						if n.IsExported() {
							exported = append(exported, n.Name)
						}
					}
					if len(exported) == 0 {
						continue
					}
					kind := strings.ToLower(d.Tok.String())
					if grouped {
						// A group comment covers its members (as golint
						// had it); otherwise each needs its own comment,
						// above or at the end of the line.
						if d.Doc == nil && s.Doc == nil && s.Comment == nil {
							msgs = append(msgs, fset.Position(s.Pos()).String()+": exported "+kind+" "+exported[0]+" has no doc comment, and its group has none")
						}
						continue
					}
					doc := d.Doc
					if doc == nil {
						doc = s.Doc
					}
					ok := false
					for _, n := range exported {
						ok = ok || (doc != nil && startsWithName(doc.Text(), n, true))
					}
					if !ok {
						check(s.Pos(), kind+" "+exported[0], exported[0], doc, true)
					}
				}
			}
		}
	}
	return msgs
}

// startsWithName reports whether doc starts with name as a word, after
// "A ", "An " or "The " if articles is set ("A Server is ...").
func startsWithName(doc, name string, articles bool) bool {
	if articles {
		for _, a := range []string{"A ", "An ", "The "} {
			if rest, ok := strings.CutPrefix(doc, a); ok && startsWithName(rest, name, false) {
				return true
			}
		}
	}
	rest, ok := strings.CutPrefix(doc, name)
	if !ok {
		return false
	}
	r, _ := utf8.DecodeRuneInString(rest)
	return rest == "" || !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_')
}

// recvTypeName returns the base type name of a method receiver.
func recvTypeName(x ast.Expr) string {
	for {
		switch t := x.(type) {
		case *ast.StarExpr:
			x = t.X
		case *ast.ParenExpr:
			x = t.X
		case *ast.IndexExpr:
			x = t.X
		case *ast.IndexListExpr:
			x = t.X
		case *ast.Ident:
			return t.Name
		default:
			return ""
		}
	}
}

// goFiles returns the names of the non-test .go files in dir, for every
// GOOS and build tag.
func goFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		n := e.Name()
		if !e.IsDir() && strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go") && !strings.HasPrefix(n, ".") && !strings.HasPrefix(n, "_") {
			names = append(names, n)
		}
	}
	return names
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

func quoteShort(s string) string {
	if len(s) > 60 {
		s = s[:60] + "…"
	}
	return strconv.Quote(s)
}

// gofmt -l over every .go file of the module (tests included, testdata
// and hidden directories excluded) lists nothing.
func TestGofmt(t *testing.T) {
	root, _ := module(t)
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatal(err)
	}
	gofmt := filepath.Join(strings.TrimSpace(string(out)), "bin", "gofmt")
	if _, err := os.Stat(gofmt); err != nil {
		if gofmt, err = exec.LookPath("gofmt"); err != nil {
			t.Skipf("gofmt not found: %v", err)
		}
	}
	files := sourceFiles(t, root, true)
	if len(files) == 0 {
		t.Fatal("no .go files found")
	}
	cmd := exec.Command(gofmt, append([]string{"-l"}, files...)...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	list, err := cmd.Output()
	if err != nil {
		t.Fatalf("gofmt -l: %v\n%s", err, stderr.Bytes())
	}
	if s := strings.TrimSpace(string(list)); s != "" {
		t.Errorf("these files need gofmt -w:\n%s", s)
	}
}

func TestStartsWithName(t *testing.T) {
	tests := []struct {
		doc, name string
		articles  bool
		want      bool
	}{
		{"Relay copies a→b", "Relay", false, true},
		{"Relayed bytes", "Relay", false, false},
		{"A Server is a gateway.", "Server", true, true},
		{"A Server is a gateway.", "Server", false, false},
		{"An Addr is", "Addr", true, true},
		{"Addr2 is", "Addr", false, false},
		{"Version5 is the version", "Version5", false, true},
		{"Stats", "Stats", false, true},
		{"Returns the thing", "Thing", false, false},
	}
	for _, tt := range tests {
		if got := startsWithName(tt.doc, tt.name, tt.articles); got != tt.want {
			t.Errorf("startsWithName(%q, %q, %v) = %v, want %v", tt.doc, tt.name, tt.articles, got, tt.want)
		}
	}
}
