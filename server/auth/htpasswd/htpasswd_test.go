package htpasswd_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/socks6/socks6/server"
	"github.com/socks6/socks6/server/auth/htpasswd"
	"golang.org/x/crypto/bcrypt"
)

// hash returns a bcrypt hash of password at the minimum cost.
func hash(t testing.TB, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func parse(t testing.TB, text string) *htpasswd.File {
	t.Helper()
	f, err := htpasswd.Parse("users", strings.NewReader(text))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return f
}

// cancelled returns a context that is already done.
func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func TestParse(t *testing.T) {
	h := hash(t, "pw")
	text := "# users for the gateway\n" +
		"\n" +
		"alice:" + h + "\n" +
		"  bob:$2y$" + h[4:] + "  \n" + // htpasswd -B writes $2y$
		"\t# indented comment\n" +
		"carol:$2b$" + h[4:] + "\n" +
		"dave:" + h // no final newline
	f := parse(t, text)
	if got, want := f.Users(), []string{"alice", "bob", "carol", "dave"}; !slices.Equal(got, want) {
		t.Fatalf("Users() = %q, want %q", got, want)
	}
	for _, u := range f.Users() {
		if err := f.Authenticate(t.Context(), u, "pw"); err != nil {
			t.Errorf("Authenticate(%s) = %v", u, err)
		}
	}
	if got := parse(t, "").Users(); len(got) != 0 {
		t.Errorf("empty file has users %q", got)
	}
}

func TestParseErrors(t *testing.T) {
	h := hash(t, "pw")
	tests := []struct {
		name string
		line string
		want string // in the message, after "users:<line>: "
	}{
		{"apr1", "alice:$apr1$abcdefgh$0123456789012345678901", "MD5"},
		{"sha", "alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "SHA-1"},
		{"plaintext", "alice:secret", "not a bcrypt hash"},
		{"des_crypt", "alice:rl0DnGbWIrkpY", "not a bcrypt hash"},
		{"md5_crypt", "alice:$1$saltsalt$qjXMvbEw8oaL.CzflDugX/", "unsupported crypt"},
		{"sha512_crypt", "alice:$6$salt$abc", "unsupported crypt"},
		{"malformed_bcrypt", "alice:$2y$10$tooshort", "malformed bcrypt"},
		{"bcrypt_bad_cost", "alice:$2y$xx$" + h[7:], "malformed bcrypt"},
		{"empty_hash", "alice:", "not a bcrypt hash"},
		{"missing_colon", "alice " + h, "expected user:hash"},
		{"empty_user", ":" + h, "expected user:hash"},
		{"long_user", strings.Repeat("u", 256) + ":" + h, "longer than 255"},
		{"duplicate_user", "bob:" + h, "listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Two good lines and a comment first, so the bad one is line 4.
			text := "# users\nbob:" + h + "\ncarol:" + h + "\n" + tt.line + "\nzed:" + h + "\n"
			f, err := htpasswd.Parse("users", strings.NewReader(text))
			if err == nil {
				t.Fatalf("Parse accepted %q (users %q)", tt.line, f.Users())
			}
			if !strings.HasPrefix(err.Error(), "users:4: ") {
				t.Errorf("error %q does not start with \"users:4: \"", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q repeats the password", err)
			}
		})
	}
	t.Run("line_too_long", func(t *testing.T) {
		text := "bob:" + h + "\nalice:" + strings.Repeat("x", 70<<10) + "\n"
		_, err := htpasswd.Parse("users", strings.NewReader(text))
		if err == nil || !regexp.MustCompile(`^users:2: `).MatchString(err.Error()) {
			t.Fatalf("error %v, want one for users:2", err)
		}
	})
}

func TestAuthenticate(t *testing.T) {
	f := parse(t, "alice:"+hash(t, "wonderland")+"\nbob:"+hash(t, "builder")+"\n")
	tests := []struct {
		name, user, pass string
		ok               bool
	}{
		{"alice", "alice", "wonderland", true},
		{"bob", "bob", "builder", true},
		{"wrong_password", "alice", "builder", false},
		{"prefix_of_password", "alice", "wonder", false},
		{"empty_password", "alice", "", false},
		{"unknown_user", "mallory", "wonderland", false},
		{"empty_user", "", "", false},
		{"user_case_matters", "Alice", "wonderland", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := f.Authenticate(t.Context(), tt.user, tt.pass)
			if tt.ok && err != nil {
				t.Fatalf("Authenticate = %v, want nil", err)
			}
			if !tt.ok && !errors.Is(err, server.ErrBadCredentials) {
				t.Fatalf("Authenticate = %v, want ErrBadCredentials", err)
			}
		})
	}
	var _ server.Authenticator = f
}

// TestAuthenticateCache checks that verified credentials are answered
// without bcrypt and that anything else still goes through it. While the
// test holds every bcrypt slot, a call that needs bcrypt fails with its
// (cancelled) context's error; a cache hit returns nil.
func TestAuthenticateCache(t *testing.T) {
	f := parse(t, "alice:"+hash(t, "wonderland")+"\nbob:"+hash(t, "builder")+"\n")

	// Nothing is cached yet: even the right password needs bcrypt.
	release := f.HoldBcryptSlots()
	if err := f.Authenticate(cancelled(), "alice", "wonderland"); !errors.Is(err, context.Canceled) {
		t.Fatalf("first login without a bcrypt slot = %v, want context.Canceled", err)
	}
	release()

	if err := f.Authenticate(t.Context(), "alice", "wonderland"); err != nil {
		t.Fatalf("first login = %v", err)
	}
	release = f.HoldBcryptSlots()
	defer func() { release() }()
	if err := f.Authenticate(cancelled(), "alice", "wonderland"); err != nil {
		t.Fatalf("second login = %v, want nil from the cache without bcrypt", err)
	}
	for _, tt := range []struct{ name, user, pass string }{
		{"other_password", "alice", "builder"},
		{"password_with_suffix", "alice", "wonderland!"},
		{"other_user_same_password", "bob", "wonderland"},
		{"uncached_user", "bob", "builder"},
		{"unknown_user", "mallory", "wonderland"},
	} {
		if err := f.Authenticate(cancelled(), tt.user, tt.pass); !errors.Is(err, context.Canceled) {
			t.Errorf("%s: Authenticate = %v, want a cache miss (context.Canceled)", tt.name, err)
		}
	}
	release()
	release = func() {}

	// A failed attempt does not evict the verified password, and a new
	// verified password replaces it.
	if err := f.Authenticate(t.Context(), "alice", "guess"); !errors.Is(err, server.ErrBadCredentials) {
		t.Fatalf("wrong password = %v", err)
	}
	release = f.HoldBcryptSlots()
	if err := f.Authenticate(cancelled(), "alice", "wonderland"); err != nil {
		t.Fatalf("after a failed attempt = %v, want a cache hit", err)
	}
	release()
	release = func() {}

	t.Run("changed_password_in_reloaded_file", func(t *testing.T) {
		// The users file is reloaded with a new hash for alice: the old
		// password fails and the new one works.
		g := parse(t, "alice:"+hash(t, "looking-glass")+"\n")
		if err := g.Authenticate(t.Context(), "alice", "wonderland"); !errors.Is(err, server.ErrBadCredentials) {
			t.Fatalf("old password after the change = %v, want ErrBadCredentials", err)
		}
		if err := g.Authenticate(t.Context(), "alice", "looking-glass"); err != nil {
			t.Fatalf("new password = %v", err)
		}
	})
}

func TestAuthenticateConcurrent(t *testing.T) {
	f := parse(t, "alice:"+hash(t, "wonderland")+"\nbob:"+hash(t, "builder")+"\n")
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			user, pass := "alice", "wonderland"
			if i%2 == 1 {
				user, pass = "bob", "builder"
			}
			if i%4 == 3 {
				pass = "wrong"
			}
			err := f.Authenticate(context.Background(), user, pass)
			if (pass == "wrong") != errors.Is(err, server.ErrBadCredentials) || (pass != "wrong" && err != nil) {
				t.Errorf("%s/%s: %v", user, pass, err)
			}
		})
	}
	wg.Wait()
}

func TestSetPassword(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "users")

	t.Run("creates", func(t *testing.T) {
		if err := htpasswd.SetPassword(path, "alice", "wonderland", bcrypt.MinCost); err != nil {
			t.Fatalf("SetPassword: %v", err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("new file mode %v, want 0600", fi.Mode().Perm())
		}
		f, err := htpasswd.Load(path)
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if err := f.Authenticate(t.Context(), "alice", "wonderland"); err != nil {
			t.Fatalf("Authenticate: %v", err)
		}
	})

	t.Run("updates_and_keeps_other_lines", func(t *testing.T) {
		bob := "bob:" + hash(t, "builder")
		before := "# managed by hand\n" + bob + "\n\n# alice below\n"
		old, _ := os.ReadFile(path)
		if err := os.WriteFile(path, []byte(before+string(old)), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, 0o640); err != nil {
			t.Fatal(err)
		}
		if err := htpasswd.SetPassword(path, "alice", "looking-glass", bcrypt.MinCost); err != nil {
			t.Fatalf("SetPassword: %v", err)
		}
		after, _ := os.ReadFile(path)
		if !strings.HasPrefix(string(after), before+"alice:$2") {
			t.Errorf("other lines changed:\n%s", after)
		}
		if n := strings.Count(string(after), "alice:"); n != 1 {
			t.Errorf("alice appears %d times:\n%s", n, after)
		}
		if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
			t.Errorf("mode %v after update, want the file's 0640 kept", fi.Mode().Perm())
		}
		f, err := htpasswd.Load(path)
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		if err := f.Authenticate(t.Context(), "alice", "wonderland"); !errors.Is(err, server.ErrBadCredentials) {
			t.Errorf("old password = %v, want ErrBadCredentials", err)
		}
		if err := f.Authenticate(t.Context(), "alice", "looking-glass"); err != nil {
			t.Errorf("new password = %v", err)
		}
		if err := f.Authenticate(t.Context(), "bob", "builder"); err != nil {
			t.Errorf("bob = %v", err)
		}
	})

	t.Run("adds", func(t *testing.T) {
		before, _ := os.ReadFile(path)
		if err := htpasswd.SetPassword(path, "carol", "intern", 0); err != nil {
			t.Fatalf("SetPassword: %v", err)
		}
		after, _ := os.ReadFile(path)
		if !strings.HasPrefix(string(after), string(before)) || !strings.HasPrefix(string(after[len(before):]), "carol:$2") {
			t.Errorf("carol not appended:\n%s", after)
		}
		f, err := htpasswd.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := f.Users(), []string{"alice", "bob", "carol"}; !slices.Equal(got, want) {
			t.Errorf("Users() = %q, want %q", got, want)
		}
		if err := f.Authenticate(t.Context(), "carol", "intern"); err != nil {
			t.Errorf("carol = %v", err)
		}
	})

	t.Run("no_temp_files_left", func(t *testing.T) {
		ents, _ := os.ReadDir(dir)
		if len(ents) != 1 {
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Errorf("directory holds %q, want only the users file", names)
		}
	})

	for _, tt := range []struct{ name, user, pass string }{
		{"empty_user", "", "pw"},
		{"colon_in_user", "a:b", "pw"},
		{"newline_in_user", "a\nb", "pw"},
		{"long_user", strings.Repeat("u", 256), "pw"},
		{"empty_password", "dave", ""},
		{"password_over_72", "dave", strings.Repeat("p", 73)},
	} {
		t.Run("refuses_"+tt.name, func(t *testing.T) {
			before, _ := os.ReadFile(path)
			if err := htpasswd.SetPassword(path, tt.user, tt.pass, bcrypt.MinCost); err == nil {
				t.Fatal("SetPassword accepted it")
			}
			if after, _ := os.ReadFile(path); string(after) != string(before) {
				t.Error("a refused SetPassword changed the file")
			}
		})
	}

	t.Run("load_missing", func(t *testing.T) {
		if _, err := htpasswd.Load(filepath.Join(dir, "nope")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("Load of a missing file = %v, want ErrNotExist", err)
		}
	})
}
