package proto

// MaxVarint is the largest value a variable-length integer holds, 2^62-1.
const MaxVarint = 1<<62 - 1

// A varint is a QUIC variable-length integer (RFC 9000 section 16): the
// two high bits of the first byte give the length, the rest of the bits
// are the value in network byte order.
//
//	+------+--------+-------------+-----------------------+
//	| 2MSB | Length | Usable Bits | Range                 |
//	+------+--------+-------------+-----------------------+
//	| 00   | 1      | 6           | 0-63                  |
//	| 01   | 2      | 14          | 0-16383               |
//	| 10   | 4      | 30          | 0-1073741823          |
//	| 11   | 8      | 62          | 0-4611686018427387903 |
//	+------+--------+-------------+-----------------------+
//
// Unlike RFC 9000, the extensions require the shortest encoding, so that
// every value has one encoding and decoding and re-encoding a message
// gives back the same bytes.

// VarintLen returns the length of the shortest encoding of v, or 0 if v is
// larger than MaxVarint.
func VarintLen(v uint64) int {
	switch {
	case v <= 63:
		return 1
	case v <= 16383:
		return 2
	case v <= 1073741823:
		return 4
	case v <= MaxVarint:
		return 8
	}
	return 0
}

// AppendVarint appends the shortest encoding of v. It fails with
// ErrTooLong if v is larger than MaxVarint.
func AppendVarint(b []byte, v uint64) ([]byte, error) {
	switch VarintLen(v) {
	case 1:
		return append(b, byte(v)), nil
	case 2:
		return append(b, 0x40|byte(v>>8), byte(v)), nil
	case 4:
		return append(b, 0x80|byte(v>>24), byte(v>>16), byte(v>>8), byte(v)), nil
	case 8:
		return append(b, 0xc0|byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32),
			byte(v>>24), byte(v>>16), byte(v>>8), byte(v)), nil
	}
	return b, ErrTooLong
}

// ParseVarint decodes a variable-length integer from the front of b. It
// fails with ErrShortBuffer if b ends first and with ErrMalformed if the
// encoding is longer than it needs to be.
func ParseVarint(b []byte) (uint64, int, error) {
	if len(b) < 1 {
		return 0, 0, ErrShortBuffer
	}
	n := varintLenPrefix(b[0])
	if len(b) < n {
		return 0, 0, ErrShortBuffer
	}
	v := uint64(b[0] & 0x3f)
	for _, c := range b[1:n] {
		v = v<<8 | uint64(c)
	}
	if VarintLen(v) != n {
		return 0, 0, ErrMalformed
	}
	return v, n, nil
}

// varintLenPrefix returns the length of the varint whose first byte is c.
func varintLenPrefix(c byte) int { return 1 << (c >> 6) }
