package proto

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
	"testing/iotest"
)

// fuzzParse is the round-trip fuzz body shared by every parser: no
// panic; a parsed value re-encodes, and that encoding parses to a
// deep-equal value; the encoding equals the consumed input after canon
// (nil: the encoding is canonical); the parse does not depend on bytes
// past the message, and every shorter prefix is ErrShortBuffer.
func fuzzParse[T message](f *testing.F, parse func([]byte) (T, int, error), canon func([]byte) []byte, vs []vector[T]) {
	for _, s := range seeds(f, vs) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, n, err := parse(b)
		if err != nil {
			var zero T
			if n != 0 || !reflect.DeepEqual(v, zero) {
				t.Fatalf("parse(%x) = %#v, %d, %v: want the zero value and 0 on error", b, v, n, err)
			}
			if !errors.Is(err, ErrShortBuffer) && !errors.Is(err, ErrVersion) &&
				!errors.Is(err, ErrAddressType) && !errors.Is(err, ErrMalformed) {
				t.Fatalf("parse(%x): unexpected error %v", b, err)
			}
			return
		}
		if n <= 0 || n > len(b) {
			t.Fatalf("parse(%x) n = %d, out of range", b, n)
		}
		msg := b[:n]
		enc, err := v.AppendBinary(nil)
		if err != nil {
			t.Fatalf("parse(%x) = %#v, which does not encode: %v", msg, v, err)
		}
		want := msg
		if canon != nil {
			want = canon(msg)
		}
		if !bytes.Equal(enc, want) {
			t.Fatalf("parse(%x) = %#v, re-encodes as %x", msg, v, enc)
		}
		v2, n2, err := parse(enc)
		if err != nil || n2 != len(enc) || !reflect.DeepEqual(v, v2) {
			t.Fatalf("round trip: parse(%x) = %#v, %d, %v; want %#v, %d", enc, v2, n2, err, v, len(enc))
		}
		if v3, n3, err := parse(msg); err != nil || n3 != n || !reflect.DeepEqual(v, v3) {
			t.Fatalf("parse(b[:n]) = %#v, %d, %v; want %#v, %d (depends on bytes past the message)", v3, n3, err, v, n)
		}
		for i := range n {
			if _, _, err := parse(msg[:i]); !errors.Is(err, ErrShortBuffer) {
				t.Fatalf("parse(%x), a prefix of valid %x: error %v, want %v", msg[:i], msg, err, ErrShortBuffer)
			}
		}
	})
}

// zeroRSV is the canonical form of a Request or Reply: the encoder writes
// RSV as zero whatever the parser accepted.
func zeroRSV(b []byte) []byte {
	c := append([]byte(nil), b...)
	c[2] = 0
	return c
}

func FuzzParseAddr(f *testing.F) {
	fuzzParse(f, ParseAddr, nil, addrVectors)
}

func FuzzParseGreeting(f *testing.F) {
	fuzzParse(f, ParseGreeting, nil, greetingVectors)
}

func FuzzParseMethodSelection(f *testing.F) {
	fuzzParse(f, ParseMethodSelection, nil, methodSelectionVectors)
}

func FuzzParseUserPassRequest(f *testing.F) {
	fuzzParse(f, ParseUserPassRequest, nil, userPassRequestVectors)
}

func FuzzParseUserPassReply(f *testing.F) {
	fuzzParse(f, ParseUserPassReply, nil, userPassReplyVectors)
}

func FuzzParseRequest(f *testing.F) {
	fuzzParse(f, ParseRequest, zeroRSV, requestVectors)
}

func FuzzParseReply(f *testing.F) {
	fuzzParse(f, ParseReply, zeroRSV, replyVectors)
}

func FuzzParseUDPHeader(f *testing.F) {
	fuzzParse(f, ParseUDPHeader, nil, udpHeaderVectors)
}

// FuzzReadRequest checks that the stream wrapper agrees with the slice
// parser: same value, exactly the message consumed, and errors of the
// matching kind.
func FuzzReadRequest(f *testing.F) {
	for _, s := range seeds(f, requestVectors) {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, b []byte, oneByte bool) {
		src := bytes.NewReader(b)
		var r io.Reader = src
		if oneByte {
			r = iotest.OneByteReader(src)
		}
		got, rerr := ReadRequest(r)
		want, n, perr := ParseRequest(b)
		consumed := len(b) - src.Len()
		switch {
		case perr == nil:
			if rerr != nil || got != want {
				t.Fatalf("ReadRequest(%x) = %#v, %v; ParseRequest gives %#v", b, got, rerr, want)
			}
			if consumed != n {
				t.Fatalf("ReadRequest(%x) consumed %d bytes, the message is %d", b, consumed, n)
			}
			return
		case rerr == nil:
			t.Fatalf("ReadRequest(%x) = %#v; ParseRequest fails with %v", b, got, perr)
		}
		var pe *ParseError
		if !errors.As(rerr, &pe) {
			t.Fatalf("ReadRequest(%x) error %v is not a *ParseError", b, rerr)
		}
		if got != (Request{}) {
			t.Fatalf("ReadRequest(%x) = %#v on error, want the zero Request", b, got)
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			// The stream ended before the wrapper had the message, or
			// before it had read far enough to see what the slice
			// parser saw (it reads in whole fields).
			if consumed != len(b) {
				t.Fatalf("ReadRequest(%x) = %v after %d of %d bytes", b, rerr, consumed, len(b))
			}
			if (len(b) == 0) != !errors.Is(rerr, io.ErrUnexpectedEOF) {
				t.Fatalf("ReadRequest(%x) = %v: want io.EOF only for an empty stream", b, rerr)
			}
			return
		}
		if errors.Is(perr, ErrShortBuffer) {
			t.Fatalf("ReadRequest(%x) = %v; the input is only short", b, rerr)
		}
		if !errors.Is(rerr, perr) {
			t.Fatalf("ReadRequest(%x) error %v, ParseRequest error %v", b, rerr, perr)
		}
	})
}
