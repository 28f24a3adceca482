//go:build linux && amd64

package socksify

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

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
// library and the table's file, which it maps.
type preloadTable struct {
	dir string
	lib string // the library's path
	mp  string // the table's path

	mu  sync.RWMutex // guards mem against close
	mem []byte       // the table, mapped MAP_SHARED; nil once closed
}

// errPreloadOff says why the fast path is not used; it is not an error
// of Start's.
var errPreloadOff = errors.New("socksify: preload fast path off")

// startPreload writes the library and an empty table to a new private
// directory and maps the table. It returns errPreloadOff (wrapped, with
// the reason) when the name service configuration rules the fast path
// out, and another error when something failed.
func startPreload(prefer6 bool, env []string) (*preloadTable, error) {
	f, err := os.Open("/etc/nsswitch.conf")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errPreloadOff, err)
	}
	ok := nsswitchAllowsPreload(f)
	f.Close()
	if !ok {
		return nil, fmt.Errorf("%w: /etc/nsswitch.conf's hosts line is not files before dns, or names another source", errPreloadOff)
	}
	mindots := 1
	if rf, err := os.Open("/etc/resolv.conf"); err == nil {
		mindots = resolvMinDots(rf, envValue(env, "RES_OPTIONS"), envValue(env, "LOCALDOMAIN"))
		rf.Close()
	}
	dir, err := os.MkdirTemp("", "socksify-")
	if err != nil {
		return nil, err
	}
	t := &preloadTable{dir: dir, lib: filepath.Join(dir, preloadLibName), mp: filepath.Join(dir, "names")}
	fail := func(err error) (*preloadTable, error) {
		t.close()
		return nil, err
	}
	// Traversable, not listable, by a program that changes its user;
	// such a program finds the table unwritable and does without.
	if err := os.Chmod(dir, 0o711); err != nil {
		return fail(err)
	}
	if err := os.WriteFile(t.lib, preloadLib, 0o755); err != nil {
		return fail(err)
	}
	if err := checkExecMappable(t.lib); err != nil {
		return fail(fmt.Errorf("%w: %s cannot be mapped executable (a noexec file system?): %v", errPreloadOff, dir, err))
	}
	mf, err := os.OpenFile(t.mp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fail(err)
	}
	defer mf.Close()
	if err := mf.Truncate(preloadMapSize); err != nil {
		return fail(err)
	}
	if t.mem, err = unix.Mmap(int(mf.Fd()), 0, preloadMapSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != nil {
		return fail(err)
	}
	encodePreloadHeader(t.mem, prefer6, mindots)
	return t, nil
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
// the name was copied, or is odd (being written), gives no name.
func (t *preloadTable) name(idx uint32) (string, bool) {
	if idx < preloadBase || idx >= preloadBase+preloadSlots {
		return "", false
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.mem == nil {
		return "", false
	}
	off := preloadHdrSize + int(idx-preloadBase)*preloadSlotSize
	s := t.mem[off : off+preloadSlotSize : off+preloadSlotSize]
	state := (*uint32)(unsafe.Pointer(&s[0]))
	st := atomic.LoadUint32(state)
	if st == 0 || st&1 != 0 {
		return "", false
	}
	var buf [253]byte
	n := int(s[8])
	if n > len(buf) {
		return "", false
	}
	copy(buf[:n], s[9:9+n])
	if atomic.LoadUint32(state) != st || !validSlotName(buf[:n]) {
		return "", false
	}
	atomic.StoreUint32((*uint32)(unsafe.Pointer(&s[4])), monoSeconds())
	return string(buf[:n]), true
}

// monoSeconds is CLOCK_MONOTONIC in seconds, the library's clock.
func monoSeconds() uint32 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint32(ts.Sec)
}

// close unmaps the table and removes the directory. Programs that still
// run keep their mappings; new ones do without the fast path.
func (t *preloadTable) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mem != nil {
		unix.Munmap(t.mem)
		t.mem = nil
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
