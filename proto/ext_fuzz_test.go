package proto

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
	"testing/iotest"
)

// sentinel reports whether err is one of the parsers' sentinel errors.
func sentinel(err error) bool {
	for _, s := range []error{ErrShortBuffer, ErrVersion, ErrAddressType, ErrMalformed, ErrTooLong, ErrAuthMethod} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// draftSeeds returns the frame values of the draft vectors of frame type
// t, for the corpus of t's parser.
func draftSeeds(tb testing.TB, t FrameType) [][]byte {
	tb.Helper()
	var out [][]byte
	for _, v := range draftVectors {
		m, ok := v.msg.(Message)
		if !ok || m.FrameType() != t {
			continue
		}
		b, err := m.AppendBinary(nil)
		if err != nil {
			tb.Fatalf("%s: %v", v.name, err)
		}
		out = append(out, b)
	}
	return out
}

// draftFrames returns every draft vector that is a frame, whole.
func draftFrames(tb testing.TB) [][]byte {
	tb.Helper()
	var out [][]byte
	for _, v := range draftVectors {
		switch v.msg.(type) {
		case Message, Frame:
			b, err := encodeVector(v.msg)
			if err != nil {
				tb.Fatalf("%s: %v", v.name, err)
			}
			out = append(out, b)
		}
	}
	return out
}

// fuzzValue is the round-trip fuzz body of a parser of whole frame
// values: no panic; on error the zero value and a sentinel; otherwise the
// value re-encodes to exactly the input, and that parses to a deep-equal
// value.
func fuzzValue[T message](f *testing.F, parse func([]byte) (T, error), t FrameType, vs []vector[T]) {
	for _, s := range draftSeeds(f, t) {
		f.Add(s)
	}
	for _, s := range seeds(f, vs) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkValue(t, parse, b)
	})
}

func checkValue[T message](t *testing.T, parse func([]byte) (T, error), b []byte) {
	t.Helper()
	v, err := parse(b)
	if err != nil {
		var zero T
		if !reflect.DeepEqual(v, zero) {
			t.Fatalf("parse(%x) = %#v, %v: want the zero value on error", b, v, err)
		}
		if !sentinel(err) {
			t.Fatalf("parse(%x): unexpected error %v", b, err)
		}
		return
	}
	enc, err := v.AppendBinary(nil)
	if err != nil {
		t.Fatalf("parse(%x) = %#v, which does not encode: %v", b, v, err)
	}
	if !bytes.Equal(enc, b) {
		t.Fatalf("parse(%x) = %#v, re-encodes as %x", b, v, enc)
	}
	v2, err := parse(enc)
	if err != nil || !reflect.DeepEqual(v, v2) {
		t.Fatalf("round trip: parse(%x) = %#v, %v; want %#v", enc, v2, err, v)
	}
}

func FuzzParseVarint(f *testing.F) {
	for _, s := range []string{"00", "3f", "4040", "7fff", "80004000", "bfffffff", "c000000040000000", "ffffffffffffffff", "4025", "c2197c5eff14e88c"} {
		f.Add(mustHex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, n, err := ParseVarint(b)
		if err != nil {
			if v != 0 || n != 0 || !(errors.Is(err, ErrShortBuffer) || errors.Is(err, ErrMalformed)) {
				t.Fatalf("ParseVarint(%x) = %d, %d, %v", b, v, n, err)
			}
			return
		}
		if n < 1 || n > 8 || n > len(b) || v > MaxVarint || VarintLen(v) != n {
			t.Fatalf("ParseVarint(%x) = %d, %d", b, v, n)
		}
		enc, err := AppendVarint(nil, v)
		if err != nil || !bytes.Equal(enc, b[:n]) {
			t.Fatalf("AppendVarint(%d) = %x, %v; parsed from %x", v, enc, err, b[:n])
		}
	})
}

func FuzzParseFrame(f *testing.F) {
	for _, s := range draftFrames(f) {
		f.Add(s)
	}
	for _, s := range seeds(f, frameVectors) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, n, err := ParseFrame(b)
		if err != nil {
			if n != 0 || !reflect.DeepEqual(fr, Frame{}) || !sentinel(err) {
				t.Fatalf("ParseFrame(%x) = %#v, %d, %v", b, fr, n, err)
			}
			return
		}
		if n <= 0 || n > len(b) || len(fr.Value) > MaxFrameLen {
			t.Fatalf("ParseFrame(%x) n = %d, value %d bytes", b, n, len(fr.Value))
		}
		enc, err := fr.AppendBinary(nil)
		if err != nil || !bytes.Equal(enc, b[:n]) {
			t.Fatalf("ParseFrame(%x) = %#v, re-encodes as %x, %v", b, fr, enc, err)
		}
		for i := range n {
			if _, _, err := ParseFrame(b[:i]); !errors.Is(err, ErrShortBuffer) {
				t.Fatalf("ParseFrame(%x), a prefix of a valid frame: %v", b[:i], err)
			}
		}
	})
}

// FuzzReadFrame checks that the stream wrapper agrees with ParseFrame:
// same frame, exactly the frame consumed, errors of the matching kind,
// and the value in buf when it fits.
func FuzzReadFrame(f *testing.F) {
	for _, s := range draftFrames(f) {
		f.Add(s, false, uint16(0))
		f.Add(s, true, uint16(64))
	}
	for _, s := range seeds(f, frameVectors) {
		f.Add(s, true, uint16(8))
	}
	f.Fuzz(func(t *testing.T, b []byte, oneByte bool, bufLen uint16) {
		src := bytes.NewReader(b)
		var r io.Reader = src
		if oneByte {
			r = iotest.OneByteReader(src)
		}
		buf := make([]byte, bufLen)
		got, rerr := ReadFrame(r, buf)
		want, n, perr := ParseFrame(b)
		consumed := len(b) - src.Len()
		switch {
		case perr == nil:
			if rerr != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("ReadFrame(%x) = %#v, %v; ParseFrame gives %#v", b, got, rerr, want)
			}
			if consumed != n {
				t.Fatalf("ReadFrame(%x) consumed %d bytes, the frame is %d", b, consumed, n)
			}
			if len(got.Value) > 0 && len(got.Value) <= len(buf) && &got.Value[0] != &buf[0] {
				t.Fatalf("ReadFrame(%x) did not use the %d-byte buffer for %d bytes", b, len(buf), len(got.Value))
			}
			return
		case rerr == nil:
			t.Fatalf("ReadFrame(%x) = %#v; ParseFrame fails with %v", b, got, perr)
		}
		var pe *ParseError
		if !errors.As(rerr, &pe) {
			t.Fatalf("ReadFrame(%x) error %v is not a *ParseError", b, rerr)
		}
		if !reflect.DeepEqual(got, Frame{}) {
			t.Fatalf("ReadFrame(%x) = %#v on error, want the zero Frame", b, got)
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			if consumed != len(b) || pe.Offset != len(b) {
				t.Fatalf("ReadFrame(%x) = %v after %d of %d bytes, offset %d", b, rerr, consumed, len(b), pe.Offset)
			}
			if (len(b) == 0) != !errors.Is(rerr, io.ErrUnexpectedEOF) {
				t.Fatalf("ReadFrame(%x) = %v: want io.EOF only for an empty stream", b, rerr)
			}
			return
		}
		if errors.Is(perr, ErrShortBuffer) || !errors.Is(rerr, perr) {
			t.Fatalf("ReadFrame(%x) error %v, ParseFrame error %v", b, rerr, perr)
		}
		if consumed > 16 {
			t.Fatalf("ReadFrame(%x) read %d bytes before failing with %v", b, consumed, rerr)
		}
	})
}

func FuzzParseOptions(f *testing.F) {
	for _, v := range draftVectors {
		var o Options
		switch m := v.msg.(type) {
		case Hello:
			o = m.Options
		case HelloAck:
			o = m.Options
		case ExtRequest:
			o = m.Options
		case ExtReply:
			o = m.Options
		case Close:
			o = m.Options
		}
		if b, err := o.AppendBinary(nil); err == nil && len(b) > 0 {
			f.Add(b)
		}
	}
	for _, s := range seeds(f, optionsVectors) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := ParseOptions(b)
		if err == nil {
			// The typed helpers never panic on what the parser accepts.
			o.Family()
			o.Connected()
			o.HopLimit()
			o.Diagnostic()
			o.ReservedPorts()
			o.Limits()
			o.OfferTimeout()
			o.PublicAddrs()
			o.IdleTimeout()
			o.Proof()
			o.Attach()
			o.AttachOffset()
			_ = o.String() + o.GoString()
		}
		checkValue(t, ParseOptions, b)
	})
}

func FuzzParseHello(f *testing.F) {
	fuzzValue(f, ParseHello, FrameHello, helloVectors)
}

func FuzzParseHelloAck(f *testing.F) {
	fuzzValue(f, ParseHelloAck, FrameHelloAck, helloAckVectors)
}

func FuzzParseExtRequest(f *testing.F) {
	fuzzValue(f, ParseExtRequest, FrameRequest, extRequestVectors)
}

// FuzzParseExtReply fuzzes the command a reply answers too.
func FuzzParseExtReply(f *testing.F) {
	for _, v := range draftVectors {
		if r, ok := v.msg.(ExtReply); ok {
			b, err := r.AppendBinary(nil)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b, byte(r.Command))
		}
	}
	for cmd, vs := range extReplyVectors {
		for _, s := range seeds(f, vs) {
			f.Add(s, byte(cmd))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte, cmd byte) {
		r, err := ParseExtReply(b, Command(cmd))
		if err == nil && r.Command != Command(cmd) {
			t.Fatalf("ParseExtReply(%x, %#x).Command = %v", b, cmd, r.Command)
		}
		checkValue(t, func(b []byte) (ExtReply, error) { return ParseExtReply(b, Command(cmd)) }, b)
	})
}

func FuzzParseAcceptOffer(f *testing.F) {
	fuzzValue(f, ParseAcceptOffer, FrameAcceptOffer, acceptOfferVectors)
}

func FuzzParseRoutes(f *testing.F) {
	fuzzValue(f, ParseRoutes, FrameRoutes, routesVectors)
}

func FuzzParseDatagram(f *testing.F) {
	fuzzValue(f, ParseDatagram, FrameDatagram, datagramVectors)
}

// FuzzParseSmall covers the fixed-size messages, REJECT_OFFER,
// STREAM_ACK, PING and PONG; the first byte picks the parser.
func FuzzParseSmall(f *testing.F) {
	add := func(kind byte, seeds [][]byte) {
		for _, s := range seeds {
			f.Add(append([]byte{kind}, s...))
		}
	}
	add(0, append(draftSeeds(f, FrameRejectOffer), seeds(f, rejectOfferVectors)...))
	add(1, append(draftSeeds(f, FrameStreamAck), seeds(f, streamAckVectors)...))
	add(2, append(draftSeeds(f, FramePing), seeds(f, pingVectors)...))
	add(3, append(draftSeeds(f, FramePong), seeds(f, pongVectors)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		switch v := b[1:]; b[0] % 4 {
		case 0:
			checkValue(t, ParseRejectOffer, v)
		case 1:
			checkValue(t, ParseStreamAck, v)
		case 2:
			checkValue(t, ParsePing, v)
		case 3:
			checkValue(t, ParsePong, v)
		}
	})
}

func FuzzParseClose(f *testing.F) {
	fuzzValue(f, ParseClose, FrameClose, closeVectors)
}
