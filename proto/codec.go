package proto

// A decoder reads the fields of one frame value from the front of b. The
// first failure sticks: later reads return zero values, and err says what
// went wrong first. It never allocates.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
		d.b = nil
	}
}

func (d *decoder) varint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n, err := ParseVarint(d.b)
	if err != nil {
		d.fail(err)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.fail(ErrShortBuffer)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) u32() uint32 {
	var t [4]byte
	d.read(t[:])
	return uint32(t[0])<<24 | uint32(t[1])<<16 | uint32(t[2])<<8 | uint32(t[3])
}

// bytes returns the next n bytes, aliasing the input.
func (d *decoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.fail(ErrShortBuffer)
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

// read fills p from the input.
func (d *decoder) read(p []byte) {
	copy(p, d.bytes(len(p)))
}

func (d *decoder) addr() Addr {
	if d.err != nil {
		return Addr{}
	}
	a, n, err := ParseAddr(d.b)
	if err != nil {
		d.fail(err)
		return Addr{}
	}
	d.b = d.b[n:]
	return a
}

// count reads a varint count of items that each take at least size bytes,
// and fails with ErrShortBuffer if that many could not fit in what is
// left. The caller can then allocate count items safely.
func (d *decoder) count(size int) int {
	c := d.varint()
	if d.err != nil {
		return 0
	}
	if c > uint64(len(d.b)/size) {
		d.fail(ErrShortBuffer)
		return 0
	}
	return int(c)
}

// rest returns what is left, aliasing the input, or nil if nothing is.
func (d *decoder) rest() []byte {
	if d.err != nil || len(d.b) == 0 {
		return nil
	}
	p := d.b[:len(d.b):len(d.b)]
	d.b = nil
	return p
}

// options parses what is left as options.
func (d *decoder) options() Options {
	if d.err != nil {
		return nil
	}
	o, err := ParseOptions(d.b)
	if err != nil {
		d.fail(err)
		return nil
	}
	d.b = nil
	return o
}

// end returns the first error, or ErrMalformed if bytes are left over:
// fixed-layout values are not padded.
func (d *decoder) end() error {
	if d.err == nil && len(d.b) > 0 {
		return ErrMalformed
	}
	return d.err
}

// An encoder appends fields to b. The first failure sticks and later
// appends do nothing; the caller returns its original slice on error.
type encoder struct {
	b   []byte
	err error
}

func (e *encoder) fail(err error) {
	if e.err == nil {
		e.err = err
	}
}

func (e *encoder) varint(v uint64) {
	if e.err != nil {
		return
	}
	e.b, e.err = AppendVarint(e.b, v)
}

func (e *encoder) u8(c byte) {
	if e.err == nil {
		e.b = append(e.b, c)
	}
}

func (e *encoder) u32(v uint32) {
	if e.err == nil {
		e.b = append(e.b, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
}

func (e *encoder) bytes(p []byte) {
	if e.err == nil {
		e.b = append(e.b, p...)
	}
}

func (e *encoder) str(s string) {
	if e.err == nil {
		e.b = append(e.b, s...)
	}
}

func (e *encoder) addr(a Addr) {
	if e.err != nil {
		return
	}
	e.b, e.err = a.AppendBinary(e.b)
}

func (e *encoder) options(o Options) {
	if e.err != nil {
		return
	}
	e.b, e.err = o.AppendBinary(e.b)
}

// result returns the encoding, or orig and the error.
func (e *encoder) result(orig []byte) ([]byte, error) {
	if e.err != nil {
		return orig, e.err
	}
	return e.b, nil
}
