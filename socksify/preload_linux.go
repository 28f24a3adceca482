//go:build linux && amd64

package socksify

import (
	"debug/elf"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// preloadLib is the library (preload/build.sh builds it from
// preload/preload.c).
//
//go:embed preload/socksify-preload.so
var preloadLib []byte

// Environment variables of the preload fast path.
const (
	preloadLibName = "socksify-preload.so"
	preloadMapEnv  = "SOCKSIFY_PRELOAD_MAP"
)

// A preloadTable is the supervisor's side of the table it shares with
// the library (see preload.go): a directory of its own holding the
// library and the table's file, which the supervisor reads and writes
// with pread and pwrite.
type preloadTable struct {
	dir string
	lib string // the library's path
	mp  string // the table's path

	mu sync.RWMutex // guards f against close
	f  *os.File     // the table; nil once closed
}

// errPreloadOff says why the fast path is not used; it is not an error
// of Start's.
var errPreloadOff = errors.New("socksify: preload fast path off")

// startPreload checks that the system's name service configuration and
// C library let the fast path work, and then makes its table
// (newPreloadTable). It returns errPreloadOff, wrapped with the reason,
// when they do not, and another error when something failed.
func startPreload(prefer6 bool) (*preloadTable, error) {
	f, err := os.Open("/etc/nsswitch.conf")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errPreloadOff, err)
	}
	ok := nsswitchAllowsPreload(f)
	f.Close()
	if !ok {
		return nil, fmt.Errorf("%w: /etc/nsswitch.conf's hosts line is not files before dns, or names another source or action before dns", errPreloadOff)
	}
	if err := checkLibc(); err != nil {
		return nil, fmt.Errorf("%w: %v", errPreloadOff, err)
	}
	mindots := 1
	if rf, err := os.Open("/etc/resolv.conf"); err == nil {
		host, _ := os.Hostname()
		mindots = resolvMinDots(rf, host)
		rf.Close()
	}
	return newPreloadTable(prefer6, mindots)
}

// glibcPaths are where x86_64 distributions keep glibc.
var glibcPaths = []string{
	"/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6",
	"/lib64/libc.so.6", "/usr/lib64/libc.so.6",
}

// checkLibc refuses a glibc older than 2.34, where dlsym, which the
// library takes from libc, is in libdl only: a program would fail to
// load it. A system without glibc (musl, which ignores symbol versions
// and serves dlsym from libc) passes.
func checkLibc() error {
	for _, p := range glibcPaths {
		f, err := elf.Open(p)
		if err != nil {
			continue
		}
		defer f.Close()
		syms, err := f.DynamicSymbols()
		if err != nil {
			return fmt.Errorf("reading %s: %v", p, err)
		}
		for _, s := range syms {
			if s.Name == "dlsym" && elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Section != elf.SHN_UNDEF {
				return nil
			}
		}
		return fmt.Errorf("%s has no dlsym (glibc before 2.34)", p)
	}
	return nil
}

// newPreloadTable writes the library and an empty table to a new private
// directory.
func newPreloadTable(prefer6 bool, mindots int) (*preloadTable, error) {
	removeStalePreloadDirs()
	dir, err := os.MkdirTemp("", "socksify-")
	if err != nil {
		return nil, err
	}
	t := &preloadTable{dir: dir, lib: filepath.Join(dir, preloadLibName), mp: filepath.Join(dir, "names")}
	fail := func(err error) (*preloadTable, error) {
		t.close()
		return nil, err
	}
	if strings.ContainsAny(dir, " :\t\n") {
		// LD_PRELOAD separates paths with spaces and colons.
		return fail(fmt.Errorf("%w: the temporary directory %q has a space or a colon in its path", errPreloadOff, dir))
	}
	// Traversable, not listable, by a program that changes its user;
	// such a program finds the table unwritable and does without.
	if err := os.Chmod(dir, 0o711); err != nil {
		return fail(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pid"), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fail(err)
	}
	if err := os.WriteFile(t.lib, preloadLib, 0o755); err != nil {
		return fail(err)
	}
	if err := checkExecMappable(t.lib); err != nil {
		return fail(fmt.Errorf("%w: %s cannot be mapped executable (a noexec file system?): %v", errPreloadOff, dir, err))
	}
	if t.f, err = os.OpenFile(t.mp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err != nil {
		return fail(err)
	}
	if err := t.f.Truncate(preloadMapSize); err != nil {
		return fail(err)
	}
	hdr := make([]byte, preloadHdrSize)
	encodePreloadHeader(hdr, prefer6, mindots)
	if _, err := t.f.WriteAt(hdr, 0); err != nil {
		return fail(err)
	}
	return t, nil
}

// removeStalePreloadDirs removes the directories of socksify processes
// of this user that are gone without removing theirs (killed): each
// names its supervisor in its pid file.
func removeStalePreloadDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "socksify-[0-9]*"))
	for _, d := range dirs {
		var st unix.Stat_t
		if unix.Lstat(d, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR || int(st.Uid) != os.Geteuid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(d, "pid"))
		if err != nil {
			continue // being made, or not ours
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			continue
		}
		if unix.Kill(pid, 0) == unix.ESRCH {
			os.RemoveAll(d)
		}
	}
}

// checkExecMappable maps path executable, as the dynamic loader will.
func checkExecMappable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, len(preloadLib), unix.PROT_READ|unix.PROT_EXEC, unix.MAP_PRIVATE)
	if err != nil {
		return err
	}
	return unix.Munmap(m)
}

// env returns env with the library first in LD_PRELOAD (and any
// socksify library of an outer socksify taken out: this one's table is
// the one that answers) and the table's path set.
func (t *preloadTable) env(env []string) []string {
	libs := []string{t.lib}
	for _, l := range strings.FieldsFunc(envValue(env, "LD_PRELOAD"), func(r rune) bool { return r == ' ' || r == ':' }) {
		if filepath.Base(l) != preloadLibName {
			libs = append(libs, l)
		}
	}
	env = setEnv(env, "LD_PRELOAD", strings.Join(libs, " "))
	return setEnv(env, preloadMapEnv, t.mp)
}

// name returns the name in the slot of fake index idx, and marks the
// slot used. The slot is read like a seqlock: a state that changed while
// the slot was read, or is odd (being written), gives no name; so does a
// table the program shortened.
func (t *preloadTable) name(idx uint32) (string, bool) {
	if idx < preloadBase || idx >= preloadBase+preloadSlots {
		return "", false
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.f == nil {
		return "", false
	}
	off := int64(preloadHdrSize) + int64(idx-preloadBase)*preloadSlotSize
	var s [preloadSlotSize]byte
	if n, _ := t.f.ReadAt(s[:], off); n != len(s) {
		return "", false
	}
	st := binary.LittleEndian.Uint32(s[0:])
	if st == 0 || st&1 != 0 {
		return "", false
	}
	var again [4]byte
	if n, _ := t.f.ReadAt(again[:], off); n != len(again) || binary.LittleEndian.Uint32(again[:]) != st {
		return "", false
	}
	n := int(s[8])
	if n > 253 || !validSlotName(s[9:9+n]) {
		return "", false
	}
	// Mark the slot used, for the library's reuse rule; a mark less than
	// a minute old (the rule counts in ten minutes) is left as it is.
	if now := monoSeconds(); now-binary.LittleEndian.Uint32(s[4:]) >= 60 {
		var used [4]byte
		binary.LittleEndian.PutUint32(used[:], now)
		t.f.WriteAt(used[:], off+4)
	}
	return string(s[9 : 9+n]), true
}

// monoSeconds is CLOCK_MONOTONIC in seconds, the library's clock: read
// once, then advanced with the monotonic clock of time.Now (the same
// clock, read without a system call).
func monoSeconds() uint32 {
	return monoBase + uint32((time.Since(monoStart)+monoFrac)/time.Second)
}

var monoBase, monoFrac, monoStart = func() (uint32, time.Duration, time.Time) {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint32(ts.Sec), time.Duration(ts.Nsec), time.Now()
}()

// close closes the table and removes the directory. Programs that still
// run keep their mappings; new ones do without the fast path.
func (t *preloadTable) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.f != nil {
		t.f.Close()
		t.f = nil
	}
	os.RemoveAll(t.dir)
}

// envValue returns the last value of key in env.
func envValue(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}
