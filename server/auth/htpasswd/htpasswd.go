package htpasswd

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/socks6/socks6/server"
	"golang.org/x/crypto/bcrypt"
)

// A File is a loaded users file. It implements server.Authenticator.
type File struct {
	users map[string][]byte // user → bcrypt hash

	key   [32]byte // HMAC key for the verified-credentials cache
	mu    sync.RWMutex
	cache map[string][32]byte // user → HMAC of the last verified password
	sem   chan struct{}       // bounds concurrent bcrypt comparisons

	// dummy is compared against when the user does not exist, so that an
	// unknown user costs the same time as a wrong password. It has the
	// highest cost found in the file and is made on first use, not at
	// load, so that commands that never authenticate do not pay for it.
	dummy func() []byte
}

// Load reads and parses the users file at path.
func Load(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Parse(path, f)
}

// Parse reads a users file from r; name is used in error messages, which
// have the form "name:line: problem".
func Parse(name string, r io.Reader) (*File, error) {
	f := &File{users: make(map[string][]byte), cache: make(map[string][32]byte),
		sem: make(chan struct{}, runtime.NumCPU())}
	if _, err := rand.Read(f.key[:]); err != nil {
		return nil, err
	}
	maxCost := 0
	defer func() {
		cost := maxCost
		if cost == 0 {
			cost = bcrypt.DefaultCost
		}
		f.dummy = sync.OnceValue(func() []byte {
			h, _ := bcrypt.GenerateFromPassword([]byte("socks6 dummy password"), cost)
			return h
		})
	}()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		user, hash, ok := strings.Cut(text, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("%s:%d: expected user:hash", name, line)
		}
		if len(user) > 255 {
			return nil, fmt.Errorf("%s:%d: user name longer than 255 bytes", name, line)
		}
		if _, dup := f.users[user]; dup {
			return nil, fmt.Errorf("%s:%d: user %q listed twice", name, line, user)
		}
		if err := checkHash(hash); err != nil {
			return nil, fmt.Errorf("%s:%d: user %q: %w", name, line, user, err)
		}
		f.users[user] = []byte(hash)
		if c, _ := bcrypt.Cost([]byte(hash)); c > maxCost {
			maxCost = c
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", name, line+1, err)
	}
	return f, nil
}

// checkHash accepts bcrypt hashes only and names what it found otherwise.
func checkHash(h string) error {
	switch {
	case strings.HasPrefix(h, "$2y$"), strings.HasPrefix(h, "$2a$"), strings.HasPrefix(h, "$2b$"):
		if _, err := bcrypt.Cost([]byte(h)); err != nil {
			return fmt.Errorf("malformed bcrypt hash: %w", err)
		}
		return nil
	case strings.HasPrefix(h, "$apr1$"):
		return errors.New("MD5 (apr1) hash not supported; use bcrypt (htpasswd -B or socks6d passwd)")
	case strings.HasPrefix(h, "{SHA}"):
		return errors.New("SHA-1 hash not supported; use bcrypt (htpasswd -B or socks6d passwd)")
	case strings.HasPrefix(h, "$"):
		return errors.New("unsupported crypt hash; use bcrypt (htpasswd -B or socks6d passwd)")
	}
	return errors.New("not a bcrypt hash (plain text or DES crypt?); use htpasswd -B or socks6d passwd")
}

// Users returns the user names, sorted.
func (f *File) Users() []string {
	u := make([]string, 0, len(f.users))
	for k := range f.users {
		u = append(u, k)
	}
	sort.Strings(u)
	return u
}

func (f *File) mac(user string, hash []byte, password string) [32]byte {
	m := hmac.New(sha256.New, f.key[:])
	io.WriteString(m, user)
	m.Write([]byte{0})
	m.Write(hash)
	m.Write([]byte{0})
	io.WriteString(m, password)
	var out [32]byte
	m.Sum(out[:0])
	return out
}

// Authenticate implements server.Authenticator. ctx bounds the wait for a
// bcrypt slot.
func (f *File) Authenticate(ctx context.Context, user, password string) error {
	hash, ok := f.users[user]
	if ok {
		sum := f.mac(user, hash, password)
		f.mu.RLock()
		cached, hit := f.cache[user]
		f.mu.RUnlock()
		if hit && subtle.ConstantTimeCompare(sum[:], cached[:]) == 1 {
			return nil
		}
	}
	select {
	case f.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-f.sem }()
	if !ok {
		bcrypt.CompareHashAndPassword(f.dummy(), []byte(password))
		return server.ErrBadCredentials
	}
	if err := bcrypt.CompareHashAndPassword(hash, []byte(password)); err != nil {
		return server.ErrBadCredentials
	}
	sum := f.mac(user, hash, password)
	f.mu.Lock()
	f.cache[user] = sum
	f.mu.Unlock()
	return nil
}

// SetPassword adds user to the users file at path, or changes the user's
// password, hashing it with bcrypt at the given cost (0 means
// bcrypt.DefaultCost). Other lines are kept as they are. The file is
// replaced atomically and created with mode 0600 if missing.
func SetPassword(path, user, password string, cost int) error {
	// Refuse names that Parse would read differently: surrounding space
	// is trimmed there, and a leading '#' makes a comment.
	if user == "" || strings.ContainsAny(user, ":\n\r") || len(user) > 255 ||
		strings.TrimSpace(user) != user || user[0] == '#' {
		return fmt.Errorf("invalid user name %q", user)
	}
	if len(password) == 0 || len(password) > 72 {
		return errors.New("password must be 1 to 72 bytes (bcrypt's limit)")
	}
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return err
	}
	var lines []string
	mode := os.FileMode(0o600)
	if old, err := os.ReadFile(path); err == nil {
		if fi, err := os.Stat(path); err == nil {
			mode = fi.Mode().Perm()
		}
		lines = strings.Split(strings.TrimRight(string(old), "\n"), "\n")
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	entry := user + ":" + string(hash)
	replaced := false
	for i, l := range lines {
		if u, _, ok := strings.Cut(strings.TrimSpace(l), ":"); ok && u == user {
			lines[i] = entry
			replaced = true
		}
	}
	if !replaced {
		if len(lines) == 1 && lines[0] == "" {
			lines = lines[:0]
		}
		lines = append(lines, entry)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".users-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(strings.Join(lines, "\n") + "\n"); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
