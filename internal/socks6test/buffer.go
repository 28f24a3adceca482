package socks6test

import (
	"bytes"
	"sync"
)

// A Buffer is a bytes.Buffer that is safe for concurrent use: the
// standard output or error of a process a test runs, written by os/exec's
// copying goroutine while the test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
