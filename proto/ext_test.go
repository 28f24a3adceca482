package proto

import (
	"bytes"
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// Every extension message is an encoding.BinaryAppender and a Message.
var (
	_ encoding.BinaryAppender = Frame{}
	_ encoding.BinaryAppender = Options{}
	_ Message                 = Hello{}
	_ Message                 = HelloAck{}
	_ Message                 = ExtRequest{}
	_ Message                 = ExtReply{}
	_ Message                 = AcceptOffer{}
	_ Message                 = RejectOffer{}
	_ Message                 = Routes{}
	_ Message                 = Datagram{}
	_ Message                 = StreamAck{}
	_ Message                 = Ping{}
	_ Message                 = Pong{}
	_ Message                 = Close{}
)

// testParseValue runs golden vectors through a parser of whole frame
// values and its encoder: decode, re-encode byte for byte, and every
// truncation. A truncated value either fails with ErrShortBuffer or, where
// it ends between options or inside a payload, is itself a valid value
// that re-encodes to exactly those bytes; from at bytes on, a malformed
// vector fails with wantErr.
func testParseValue[T message](t *testing.T, parse func([]byte) (T, error), vs []vector[T]) {
	t.Helper()
	for _, tt := range vs {
		t.Run(tt.name, func(t *testing.T) {
			in := mustHex(t, tt.in)
			got, err := parse(in)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("parse(%s) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if err != nil {
				var zero T
				if !reflect.DeepEqual(got, zero) {
					t.Errorf("parse(%s) = %#v on error; want the zero value", tt.in, got)
				}
			} else {
				checkDecoded(t, tt, in, got)
			}

			at := tt.at
			if at == 0 {
				at = len(in)
			}
			for i := range len(in) {
				p := in[:i]
				v, err := parse(p)
				switch {
				case i >= at:
					if !errors.Is(err, tt.wantErr) {
						t.Errorf("parse(%x) error = %v, want %v", p, err, tt.wantErr)
					}
				case err == nil:
					if enc, err := v.AppendBinary(nil); err != nil || !bytes.Equal(enc, p) {
						t.Errorf("parse(%x), a prefix, = %#v, which re-encodes as %x, %v", p, v, enc, err)
					}
				case !errors.Is(err, ErrShortBuffer):
					t.Errorf("parse(%x), a prefix, error = %v, want %v or a valid value", p, err, ErrShortBuffer)
				}
			}
		})
	}
}

func TestParseVarint(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    uint64
		wantErr error
	}{
		// RFC 9000 appendix A.1.
		{name: "rfc9000_8byte", in: "c2 19 7c 5e ff 14 e8 8c", want: 151288809941952652},
		{name: "rfc9000_4byte", in: "9d 7f 3e 7d", want: 494878333},
		{name: "rfc9000_2byte", in: "7b bd", want: 15293},
		{name: "rfc9000_1byte", in: "25", want: 37},
		{name: "zero", in: "00", want: 0},
		{name: "max_1byte", in: "3f", want: 63},
		{name: "min_2byte", in: "40 40", want: 64},
		{name: "max_2byte", in: "7f ff", want: 16383},
		{name: "min_4byte", in: "80 00 40 00", want: 16384},
		{name: "max_4byte", in: "bf ff ff ff", want: 1<<30 - 1},
		{name: "min_8byte", in: "c0 00 00 00 40 00 00 00", want: 1 << 30},
		{name: "max", in: "ff ff ff ff ff ff ff ff", want: MaxVarint},

		// RFC 9000 accepts these; we require the shortest form.
		{name: "rfc9000_not_shortest", in: "40 25", wantErr: ErrMalformed},
		{name: "zero_2byte", in: "40 00", wantErr: ErrMalformed},
		{name: "zero_4byte", in: "80 00 00 00", wantErr: ErrMalformed},
		{name: "zero_8byte", in: "c0 00 00 00 00 00 00 00", wantErr: ErrMalformed},
		{name: "max_2byte_in_4", in: "80 00 3f ff", wantErr: ErrMalformed},
		{name: "max_4byte_in_8", in: "c0 00 00 00 3f ff ff ff", wantErr: ErrMalformed},

		{name: "empty", in: "", wantErr: ErrShortBuffer},
		{name: "short_2byte", in: "40", wantErr: ErrShortBuffer},
		{name: "short_4byte", in: "80 00 40", wantErr: ErrShortBuffer},
		{name: "short_8byte", in: "c0 00 00 00 40 00 00", wantErr: ErrShortBuffer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := mustHex(t, tt.in)
			got, n, err := ParseVarint(append(in, 0xee)) // a byte after it stays unread
			if tt.wantErr == ErrShortBuffer {
				got, n, err = ParseVarint(in)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseVarint(%s) error = %v, want %v", tt.in, err, tt.wantErr)
			}
			if err != nil {
				if got != 0 || n != 0 {
					t.Errorf("ParseVarint(%s) = %d, %d on error", tt.in, got, n)
				}
				return
			}
			if got != tt.want || n != len(in) {
				t.Errorf("ParseVarint(%s) = %d, %d; want %d, %d", tt.in, got, n, tt.want, len(in))
			}
			if l := VarintLen(got); l != len(in) {
				t.Errorf("VarintLen(%d) = %d, want %d", got, l, len(in))
			}
			enc, err := AppendVarint([]byte{0xaa}, got)
			if err != nil || !bytes.Equal(enc, append([]byte{0xaa}, in...)) {
				t.Errorf("AppendVarint(%d) = % x, %v; want aa %s", got, enc, err, tt.in)
			}
			for i := range len(in) {
				if _, _, err := ParseVarint(in[:i]); !errors.Is(err, ErrShortBuffer) {
					t.Errorf("ParseVarint(%x) error = %v, want %v", in[:i], err, ErrShortBuffer)
				}
			}
		})
	}
}

func TestAppendVarintTooLong(t *testing.T) {
	for _, v := range []uint64{MaxVarint + 1, 1 << 63, math.MaxUint64} {
		pre := []byte{1, 2}
		b, err := AppendVarint(pre, v)
		if !errors.Is(err, ErrTooLong) || !bytes.Equal(b, pre) {
			t.Errorf("AppendVarint(%d) = % x, %v; want 01 02, %v", v, b, err, ErrTooLong)
		}
		if l := VarintLen(v); l != 0 {
			t.Errorf("VarintLen(%d) = %d, want 0", v, l)
		}
	}
}

// Every boundary value round-trips through the shortest encoding.
func TestVarintBoundaries(t *testing.T) {
	for _, v := range []uint64{0, 63, 64, 16383, 16384, 1<<30 - 1, 1 << 30, MaxVarint - 1, MaxVarint} {
		b, err := AppendVarint(nil, v)
		if err != nil {
			t.Fatal(err)
		}
		got, n, err := ParseVarint(b)
		if err != nil || got != v || n != len(b) || n != VarintLen(v) {
			t.Errorf("%d: % x → %d, %d, %v", v, b, got, n, err)
		}
	}
}

func TestIsGREASE(t *testing.T) {
	maxN := (uint64(MaxVarint) - 0x21) / 0x1f
	tests := []struct {
		v    uint64
		want bool
	}{
		{0x21, true}, {0x40, true}, {0x5f, true}, {0x1f*1000 + 0x21, true}, {0x1f*maxN + 0x21, true},
		{0, false}, {0x01, false}, {0x0c, false}, {0x20, false}, {0x22, false}, {0x3f, false}, {0x41, false},
	}
	for _, tt := range tests {
		if got := IsGREASE(tt.v); got != tt.want {
			t.Errorf("IsGREASE(%#x) = %v, want %v", tt.v, got, tt.want)
		}
	}
}

var (
	maxFrameValueHex = strings.Repeat("00", MaxFrameLen)
	ipv6DocHex       = "20010db8000000000000000000000001" // 2001:db8::1
)

var frameVectors = []vector[Frame]{
	{name: "empty_value", in: "0a 00", want: Frame{Type: FramePing}},
	{name: "ping", in: "0a 08 0001020304050607", want: Frame{Type: FramePing, Value: mustHexStatic("0001020304050607")}},
	{name: "grease_2byte_type", in: "40 5f 03 00ff7f", want: Frame{Type: 0x5f, Value: []byte{0, 0xff, 0x7f}}},
	{name: "unknown_type_8byte", in: "c0 00 00 00 40 00 00 00 01 ff", want: Frame{Type: 1 << 30, Value: []byte{0xff}}},
	{name: "len_2byte", in: "08 40 40 " + strings.Repeat("ab", 64), want: Frame{Type: FrameDatagram, Value: bytes.Repeat([]byte{0xab}, 64)}},
	{name: "max_len", in: "08 80 01 00 40 " + maxFrameValueHex, want: Frame{Type: FrameDatagram, Value: make([]byte, MaxFrameLen)}},

	{name: "len_over_max", in: "08 80 01 00 41", wantErr: ErrTooLong, at: 5},
	{name: "len_huge", in: "08 ff ff ff ff ff ff ff ff", wantErr: ErrTooLong, at: 9},
	{name: "len_huge_after_grease_type", in: "40 5f c0 00 00 01 00 00 00 00", wantErr: ErrTooLong, at: 10},
	{name: "type_not_shortest", in: "40 01 00", wantErr: ErrMalformed, at: 2},
	{name: "len_not_shortest", in: "01 40 00", wantErr: ErrMalformed, at: 3},
}

// mustHexStatic is mustHex for package-level tables.
func mustHexStatic(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func TestParseFrame(t *testing.T) {
	testParse(t, ParseFrame, frameVectors)
}

func TestReadFrame(t *testing.T) {
	// Not max_len: every truncation of it would allocate 64 KiB four
	// times over.
	var vs []vector[Frame]
	for _, v := range frameVectors {
		if v.name != "max_len" {
			vs = append(vs, v)
		}
	}
	testRead(t, func(r io.Reader) (Frame, error) { return ReadFrame(r, nil) }, vs)
}

// ReadFrame refuses a long Length before it reads or allocates the value.
func TestReadFrameTooLong(t *testing.T) {
	in := mustHex(t, "08 ff ff ff ff ff ff ff ff")
	in = append(in, make([]byte, 100)...)
	src := bytes.NewReader(in)
	_, err := ReadFrame(src, nil)
	var pe *ParseError
	if !errors.As(err, &pe) || !errors.Is(err, ErrTooLong) || pe.Offset != 9 {
		t.Fatalf("ReadFrame error = %v, want a *ParseError wrapping %v at offset 9", err, ErrTooLong)
	}
	if read := len(in) - src.Len(); read != 9 {
		t.Errorf("ReadFrame read %d bytes, want the 9 of the header", read)
	}
	allocs := testing.AllocsPerRun(100, func() {
		ReadFrame(bytes.NewReader(in), nil)
	})
	if allocs > 3 {
		t.Errorf("ReadFrame of a too-long frame: %v allocations, want at most 3", allocs)
	}
}

func TestReadFrameBuffer(t *testing.T) {
	in := mustHex(t, "0a 08 0001020304050607 0b 08 0001020304050607")
	buf := make([]byte, 16)
	r := bytes.NewReader(in)
	f, err := ReadFrame(r, buf)
	if err != nil {
		t.Fatal(err)
	}
	if &f.Value[0] != &buf[0] {
		t.Error("ReadFrame did not read into buf, which is large enough")
	}
	f2, err := ReadFrame(r, buf[:0:4])
	if err != nil {
		t.Fatal(err)
	}
	if &f2.Value[0] == &buf[0] {
		t.Error("ReadFrame read 8 bytes into a 4-byte buffer")
	}
	if f2.Type != FramePong || !bytes.Equal(f2.Value, in[12:]) {
		t.Errorf("second frame = %v % x", f2.Type, f2.Value)
	}
	if _, err := ReadFrame(r, buf); !errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("ReadFrame at the end: %v, want io.EOF", err)
	}
}

// ParseFrame refuses a long Length without allocating, whatever follows.
func TestParseFrameNoAlloc(t *testing.T) {
	for _, in := range []string{"08 ff ff ff ff ff ff ff ff", "08 80 01 00 41 00", "0a 08 0001020304050607"} {
		b := mustHex(t, in)
		allocs := testing.AllocsPerRun(100, func() { ParseFrame(b) })
		if allocs != 0 {
			t.Errorf("ParseFrame(%s): %v allocations, want 0", in, allocs)
		}
	}
}

// A receiver reads frames in a loop and skips the types it does not know:
// GREASE frames among them.
func TestFrameStreamSkipsGREASE(t *testing.T) {
	in := mustHex(t, "21 00  40 5f 03 00ff7f  0a 08 0001020304050607  43 e3 02 0102")
	var types []FrameType
	for b := in; len(b) > 0; {
		f, n, err := ParseFrame(b)
		if err != nil {
			t.Fatal(err)
		}
		b = b[n:]
		if IsGREASE(uint64(f.Type)) {
			continue
		}
		types = append(types, f.Type)
	}
	if want := []FrameType{FramePing, 0x3e3}; !reflect.DeepEqual(types, want) {
		t.Errorf("frames = %v, want %v", types, want)
	}
}

func TestFrameTypeString(t *testing.T) {
	tests := []struct {
		t    FrameType
		want string
	}{
		{FrameHello, "HELLO"}, {FrameHelloAck, "HELLO_ACK"}, {FrameRequest, "REQUEST"}, {FrameReply, "REPLY"},
		{FrameAcceptOffer, "ACCEPT_OFFER"}, {FrameRejectOffer, "REJECT_OFFER"}, {FrameRoutes, "ROUTES"},
		{FrameDatagram, "DATAGRAM"}, {FrameStreamAck, "STREAM_ACK"}, {FramePing, "PING"}, {FramePong, "PONG"},
		{FrameClose, "CLOSE"}, {0x21, "GREASE(0x21)"}, {0x0d, "frame(0xd)"},
	}
	for _, tt := range tests {
		if got := tt.t.String(); got != tt.want {
			t.Errorf("FrameType(%#x).String() = %q, want %q", uint64(tt.t), got, tt.want)
		}
	}
}

func TestAppendFrame(t *testing.T) {
	tests := []struct {
		name string
		msg  Message
		want string
	}{
		{name: "ping", msg: Ping{Opaque: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}}, want: "0a 08 0102030405060708"},
		{name: "close_1byte", msg: Close{Reason: ReplyGeneralFailure}, want: "0c 01 01"},
		{name: "datagram_63", msg: Datagram{AssocID: 1, Addr: ap("192.0.2.1:53"), Payload: make([]byte, 63-8)}, want: "08 3f 01 01 c0000201 0035" + strings.Repeat("00", 55)},
		{name: "datagram_64", msg: Datagram{AssocID: 1, Addr: ap("192.0.2.1:53"), Payload: make([]byte, 64-8)}, want: "08 4040 01 01 c0000201 0035" + strings.Repeat("00", 56)},
		{name: "datagram_16384", msg: Datagram{AssocID: 1, Addr: ap("192.0.2.1:53"), Payload: make([]byte, 16384-8)}, want: "08 80004000 01 01 c0000201 0035" + strings.Repeat("00", 16376)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pre := []byte{0xaa, 0xbb}
			b, err := AppendFrame(pre, tt.msg)
			want := append([]byte{0xaa, 0xbb}, mustHex(t, tt.want)...)
			if err != nil || !bytes.Equal(b, want) {
				t.Fatalf("AppendFrame = % x, %v; want % x", b, err, want)
			}
			var w writeRecorder
			if err := WriteFrame(&w, tt.msg); err != nil || len(w.writes) != 1 || !bytes.Equal(w.writes[0], want[2:]) {
				t.Errorf("WriteFrame: %d writes, %v", len(w.writes), err)
			}
		})
	}

	// The longest DATAGRAM the frame limit allows: a 65535-byte payload
	// with an IPv6 address and an 8-byte association ID.
	g := Datagram{AssocID: MaxVarint, Addr: ap("[2001:db8::1]:53"), Payload: make([]byte, 65535)}
	b, err := AppendFrame(nil, g)
	if err != nil {
		t.Fatalf("largest datagram: %v", err)
	}
	f, n, err := ParseFrame(b)
	if err != nil || n != len(b) {
		t.Fatalf("ParseFrame: %d, %v", n, err)
	}
	if g2, err := ParseDatagram(f.Value); err != nil || !reflect.DeepEqual(g2, g) {
		t.Errorf("ParseDatagram: %v", err)
	}
}

func TestAppendFrameErrors(t *testing.T) {
	pre := []byte{1, 2, 3}
	tests := []struct {
		name    string
		msg     Message
		wantErr error
	}{
		{name: "value_too_long", msg: Datagram{Addr: ap("192.0.2.1:53"), Payload: make([]byte, MaxFrameLen)}, wantErr: ErrTooLong},
		{name: "message_error", msg: Hello{Auth: MethodGSSAPI}, wantErr: ErrAuthMethod},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := AppendFrame(pre, tt.msg)
			if !errors.Is(err, tt.wantErr) || !bytes.Equal(b, pre) {
				t.Errorf("AppendFrame = % x, %v; want 01 02 03, %v", b, err, tt.wantErr)
			}
			var w writeRecorder
			if err := WriteFrame(&w, tt.msg); !errors.Is(err, tt.wantErr) || len(w.writes) != 0 {
				t.Errorf("WriteFrame: %d writes, %v; want none, %v", len(w.writes), err, tt.wantErr)
			}
		})
	}
	if b, err := (Frame{Type: FramePing, Value: make([]byte, MaxFrameLen+1)}).AppendBinary(pre); !errors.Is(err, ErrTooLong) || !bytes.Equal(b, pre) {
		t.Errorf("Frame.AppendBinary of a long value = %v", err)
	}
	if b, err := (Frame{Type: MaxVarint + 1}).AppendBinary(pre); !errors.Is(err, ErrTooLong) || !bytes.Equal(b, pre) {
		t.Errorf("Frame.AppendBinary of a huge type = %v", err)
	}
}

var (
	proofHex   = allBytesHex(32) // 00 01 … 1f
	proofValue = Proof(mustHexStatic(allBytesHex(32)))
	tokenHex   = "00112233445566778899aabbccddeeff"
	tokenValue = Token(mustHexStatic(tokenHex))
	sessionHex = "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
	sessionVal = SessionID(mustHexStatic(sessionHex))
	diag1025   = strings.Repeat("61", MaxDiagnosticLen+1)
)

var optionsVectors = []vector[Options]{
	{name: "empty", in: "", want: nil},
	{name: "family", in: "01 01 02", want: Options{{Kind: OptionFamily, Value: []byte{2}}}},
	{name: "connected", in: "02 07 01 c0000201 0050", want: Options{{Kind: OptionConnected, Value: mustHexStatic("01c00002010050")}}},
	{name: "hop_limit", in: "03 01 08", want: Options{{Kind: OptionHopLimit, Value: []byte{8}}}},
	{name: "diagnostic", in: "04 05 68656c6c6f", want: Options{{Kind: OptionDiagnostic, Value: []byte("hello")}}},
	{name: "diagnostic_empty", in: "04 00", want: Options{{Kind: OptionDiagnostic}}},
	{name: "diagnostic_max", in: "04 4400 " + strings.Repeat("61", MaxDiagnosticLen), want: Options{{Kind: OptionDiagnostic, Value: bytes.Repeat([]byte("a"), MaxDiagnosticLen)}}},
	{name: "reserved_ports", in: "05 05 5f90 41bb 16", want: Options{{Kind: OptionReservedPorts, Value: mustHexStatic("5f9041bb16")}}},
	{name: "reserved_ports_max", in: "05 04 8000ffff", want: Options{{Kind: OptionReservedPorts, Value: mustHexStatic("8000ffff")}}},
	{name: "limits", in: "06 07 04 10 08 80100000", want: Options{{Kind: OptionLimits, Value: mustHexStatic("04100880100000")}}},
	{name: "offer_timeout", in: "07 02 6710", want: Options{{Kind: OptionOfferTimeout, Value: mustHexStatic("6710")}}},
	{name: "public_addr_twice", in: "08 07 01 c6336407 1f90 08 13 04 20010db8000000000000000000000007 1f90", want: Options{
		{Kind: OptionPublicAddr, Value: mustHexStatic("01c63364071f90")},
		{Kind: OptionPublicAddr, Value: mustHexStatic("0420010db80000000000000000000000071f90")},
	}},
	{name: "idle_timeout", in: "09 02 412c", want: Options{{Kind: OptionIdleTimeout, Value: mustHexStatic("412c")}}},
	{name: "proof", in: "0a 20 " + proofHex, want: Options{{Kind: OptionProof, Value: mustHexStatic(proofHex)}}},
	{name: "attach_request", in: "0b 31 " + sessionHex + " 00 " + proofHex, want: Options{{Kind: OptionAttach, Value: mustHexStatic(sessionHex + "00" + proofHex)}}},
	{name: "attach_request_8byte", in: "0b 38 " + sessionHex + " c000000100000000 " + proofHex, want: Options{{Kind: OptionAttach, Value: mustHexStatic(sessionHex + "c000000100000000" + proofHex)}}},
	{name: "attach_reply", in: "0b 02 5000", want: Options{{Kind: OptionAttach, Value: mustHexStatic("5000")}}},
	{name: "attach_reply_8byte", in: "0b 08 c000000100000000", want: Options{{Kind: OptionAttach, Value: mustHexStatic("c000000100000000")}}},
	{name: "unknown_kind_kept", in: "30 03 616263", want: Options{{Kind: 0x30, Value: []byte("abc")}}},
	{name: "unknown_kind_repeats", in: "30 00 30 01 ff", want: Options{{Kind: 0x30}, {Kind: 0x30, Value: []byte{0xff}}}},
	{name: "grease_kinds", in: "21 00 21 01 ff 40 40 00", want: Options{{Kind: 0x21}, {Kind: 0x21, Value: []byte{0xff}}, {Kind: 0x40}}},
	{name: "unknown_kind_8byte", in: "ff ffffffffffffff 00", want: Options{{Kind: MaxVarint}}},
	// An unknown kind may hold anything a known kind may not.
	{name: "unknown_kind_bad_utf8", in: "0c 02 c328", want: Options{{Kind: 0x0c, Value: []byte{0xc3, 0x28}}}},
	{name: "order_kept", in: "09 01 05 01 01 00", want: Options{{Kind: OptionIdleTimeout, Value: []byte{5}}, {Kind: OptionFamily, Value: []byte{0}}}},
	{name: "max_total", in: "30 7ffd " + strings.Repeat("00", MaxOptionsLen-3), want: Options{{Kind: 0x30, Value: make([]byte, MaxOptionsLen-3)}}},

	{name: "total_too_long", in: "30 7ffe " + strings.Repeat("00", MaxOptionsLen-2), wantErr: ErrTooLong, at: MaxOptionsLen + 1},
	{name: "len_over_max", in: "30 80004001", wantErr: ErrTooLong, at: 5},
	{name: "len_huge", in: "30 ffffffffffffffff", wantErr: ErrTooLong, at: 9},
	{name: "kind_not_shortest", in: "40 01 00", wantErr: ErrMalformed, at: 2},
	{name: "len_not_shortest", in: "01 40 01 02", wantErr: ErrMalformed, at: 3},
	{name: "duplicate_family", in: "01 01 00 01 01 00", wantErr: ErrMalformed, at: 6},
	{name: "duplicate_proof", in: "0a 20 " + proofHex + " 0a 20 " + proofHex, wantErr: ErrMalformed, at: 68},
	{name: "duplicate_after_other", in: "03 01 08 09 01 05 03 01 08", wantErr: ErrMalformed, at: 9},
	{name: "family_unknown_value", in: "01 01 05", wantErr: ErrMalformed, at: 3},
	{name: "family_long", in: "01 02 0000", wantErr: ErrMalformed, at: 4},
	{name: "family_empty", in: "01 00", wantErr: ErrMalformed, at: 2},
	{name: "hop_limit_empty", in: "03 00", wantErr: ErrMalformed, at: 2},
	{name: "hop_limit_long", in: "03 02 0808", wantErr: ErrMalformed, at: 4},
	{name: "connected_trailing", in: "02 08 01 c0000201 0050 00", wantErr: ErrMalformed, at: 10},
	{name: "connected_short", in: "02 05 01 c0000201", wantErr: ErrMalformed, at: 7},
	{name: "connected_empty", in: "02 00", wantErr: ErrMalformed, at: 2},
	{name: "connected_atyp", in: "02 07 02 c0000201 0050", wantErr: ErrAddressType, at: 9},
	{name: "public_addr_empty_fqdn", in: "08 04 03 00 0050", wantErr: ErrMalformed, at: 6},
	{name: "diagnostic_bad_utf8", in: "04 02 c328", wantErr: ErrMalformed, at: 4},
	{name: "diagnostic_too_long", in: "04 4401 " + diag1025, wantErr: ErrTooLong, at: 3 + MaxDiagnosticLen + 1},
	{name: "reserved_port_too_big", in: "05 04 80010000", wantErr: ErrMalformed, at: 6},
	{name: "reserved_port_zero", in: "05 03 5f90 00", wantErr: ErrMalformed, at: 5},
	{name: "reserved_port_cut", in: "05 01 40", wantErr: ErrMalformed, at: 3},
	{name: "reserved_port_not_shortest", in: "05 02 4016", wantErr: ErrMalformed, at: 4},
	{name: "limits_three", in: "06 03 041008", wantErr: ErrMalformed, at: 5},
	{name: "limits_five", in: "06 05 0410080000", wantErr: ErrMalformed, at: 7},
	{name: "limits_not_shortest", in: "06 05 04 10 08 4000", wantErr: ErrMalformed, at: 7},
	{name: "offer_timeout_empty", in: "07 00", wantErr: ErrMalformed, at: 2},
	{name: "idle_timeout_trailing", in: "09 02 0500", wantErr: ErrMalformed, at: 4},
	{name: "proof_short", in: "0a 1f " + allBytesHex(31), wantErr: ErrMalformed, at: 33},
	{name: "proof_long", in: "0a 21 " + allBytesHex(33), wantErr: ErrMalformed, at: 35},
	{name: "attach_empty", in: "0b 00", wantErr: ErrMalformed, at: 2},
	{name: "attach_reply_trailing", in: "0b 02 0500", wantErr: ErrMalformed, at: 4},
	{name: "attach_reply_not_shortest", in: "0b 02 4005", wantErr: ErrMalformed, at: 4},
	{name: "attach_request_short_proof", in: "0b 30 " + sessionHex + " 00 " + allBytesHex(31), wantErr: ErrMalformed, at: 50},
	{name: "attach_request_trailing", in: "0b 32 " + sessionHex + " 00 " + proofHex + " 00", wantErr: ErrMalformed, at: 52},
	{name: "attach_9_bytes", in: "0b 09 c00000010000000000", wantErr: ErrMalformed, at: 11},
	{name: "attach_twice", in: "0b 01 00 0b 01 00", wantErr: ErrMalformed, at: 6},
}

func TestParseOptions(t *testing.T) {
	testParseValue(t, ParseOptions, optionsVectors)
}

func TestOptionsHelpers(t *testing.T) {
	conn := mustOption(ConnectedOption(ap("[2001:db8::10]:443")))
	lim := mustOption(LimitsOption(Limits{MaxListeners: 4, MaxPendingOffers: 16, MaxUDPAssocs: 8, ReplayBufferBytes: 1 << 20}))
	pub1 := mustOption(PublicAddrOption(ap("198.51.100.7:8080")))
	pub2 := mustOption(PublicAddrOption(Addr{FQDN: "gw.example.org", Port: 8080}))
	o := Options{
		FamilyOption(FamilyIPv6Only), conn, HopLimitOption(7), DiagnosticOption("hi"),
		ReservedPortsOption([]uint16{22, 8080, 65535}), lim, OfferTimeoutOption(1500 * time.Millisecond),
		pub1, pub2, IdleTimeoutOption(90 * time.Second), ProofOption(proofValue),
		{Kind: 0x21, Value: []byte{1}},
	}
	b, err := o.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseOptions(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p, o) {
		t.Fatalf("round trip:\n%#v\nwant\n%#v", p, o)
	}
	if f, ok := p.Family(); !ok || f != FamilyIPv6Only {
		t.Errorf("Family() = %v, %v", f, ok)
	}
	if a, ok := p.Connected(); !ok || a != ap("[2001:db8::10]:443") {
		t.Errorf("Connected() = %v, %v", a, ok)
	}
	if h, ok := p.HopLimit(); !ok || h != 7 {
		t.Errorf("HopLimit() = %v, %v", h, ok)
	}
	if s, ok := p.Diagnostic(); !ok || s != "hi" {
		t.Errorf("Diagnostic() = %q, %v", s, ok)
	}
	if ports, ok := p.ReservedPorts(); !ok || !reflect.DeepEqual(ports, []uint16{22, 8080, 65535}) {
		t.Errorf("ReservedPorts() = %v, %v", ports, ok)
	}
	if l, ok := p.Limits(); !ok || l != (Limits{4, 16, 8, 1 << 20}) {
		t.Errorf("Limits() = %+v, %v", l, ok)
	}
	if d, ok := p.OfferTimeout(); !ok || d != 1500*time.Millisecond {
		t.Errorf("OfferTimeout() = %v, %v", d, ok)
	}
	if d, ok := p.IdleTimeout(); !ok || d != 90*time.Second {
		t.Errorf("IdleTimeout() = %v, %v", d, ok)
	}
	if got := p.PublicAddrs(); !reflect.DeepEqual(got, []Addr{ap("198.51.100.7:8080"), {FQDN: "gw.example.org", Port: 8080}}) {
		t.Errorf("PublicAddrs() = %v", got)
	}
	if pr, ok := p.Proof(); !ok || pr != proofValue {
		t.Errorf("Proof() mismatch, ok = %v", ok)
	}
	if _, ok := p.Attach(); ok {
		t.Error("Attach() reports an option")
	}
	att := Attach{SessionID: sessionVal, Offset: 812, Proof: proofValue}
	if a, ok := (Options{mustOption(AttachOption(att))}).Attach(); !ok || a != att {
		t.Errorf("Attach() = %v, %v", a, ok)
	}
	if _, ok := (Options{mustOption(AttachOption(att))}).AttachOffset(); ok {
		t.Error("AttachOffset() of the request form reports an offset")
	}
	if n, ok := (Options{mustOption(AttachReplyOption(4096))}).AttachOffset(); !ok || n != 4096 {
		t.Errorf("AttachOffset() = %v, %v", n, ok)
	}
	if _, ok := (Options{mustOption(AttachReplyOption(4096))}).Attach(); ok {
		t.Error("Attach() of the reply form reports an attach")
	}
	if _, err := AttachOption(Attach{Offset: MaxVarint + 1}); !errors.Is(err, ErrTooLong) {
		t.Errorf("AttachOption(huge offset) error = %v", err)
	}
	if _, err := AttachReplyOption(MaxVarint + 1); !errors.Is(err, ErrTooLong) {
		t.Errorf("AttachReplyOption(huge offset) error = %v", err)
	}
	if opt, ok := p.Get(0x21); !ok || !bytes.Equal(opt.Value, []byte{1}) {
		t.Errorf("Get(0x21) = %v, %v", opt, ok)
	}

	// Absent, or malformed in an Options built by hand: not ok, no panic.
	for _, o := range []Options{nil, {{Kind: OptionFamily}, {Kind: OptionConnected}, {Kind: OptionHopLimit}, {Kind: OptionDiagnostic, Value: []byte{0xff}},
		{Kind: OptionReservedPorts, Value: []byte{0x40}}, {Kind: OptionLimits}, {Kind: OptionOfferTimeout}, {Kind: OptionPublicAddr},
		{Kind: OptionIdleTimeout, Value: []byte{0x40}}, {Kind: OptionProof, Value: []byte{1}}}} {
		_, ok1 := o.Family()
		_, ok2 := o.Connected()
		_, ok3 := o.HopLimit()
		_, ok4 := o.Diagnostic()
		_, ok5 := o.ReservedPorts()
		_, ok6 := o.Limits()
		_, ok7 := o.OfferTimeout()
		_, ok8 := o.IdleTimeout()
		_, ok9 := o.Proof()
		if ok1 || ok2 || ok3 || ok4 || ok5 || ok6 || ok7 || ok8 || ok9 || o.PublicAddrs() != nil {
			t.Errorf("helpers of %v report an option", o)
		}
	}

	// Durations: negative is zero, huge saturates.
	if v := OfferTimeoutOption(-time.Second).Value; !bytes.Equal(v, []byte{0}) {
		t.Errorf("OfferTimeoutOption(-1s) = % x, want 00", v)
	}
	huge := Options{{Kind: OptionOfferTimeout, Value: mustHex(t, "ffffffffffffffff")}}
	if d, ok := huge.OfferTimeout(); !ok || d != math.MaxInt64 {
		t.Errorf("OfferTimeout of 2^62-1 ms = %v, %v; want saturation", d, ok)
	}

	// DiagnosticOption always makes a well-formed option.
	long := DiagnosticOption(strings.Repeat("é", MaxDiagnosticLen)) // 2 bytes each
	if len(long.Value) != MaxDiagnosticLen || checkOption(OptionDiagnostic, long.Value) != nil {
		t.Errorf("DiagnosticOption(long) has %d bytes", len(long.Value))
	}
	odd := DiagnosticOption("a" + strings.Repeat("é", MaxDiagnosticLen))
	if len(odd.Value) != MaxDiagnosticLen-1 || checkOption(OptionDiagnostic, odd.Value) != nil {
		t.Errorf("DiagnosticOption cut inside a character: %d bytes", len(odd.Value))
	}
	if bad := DiagnosticOption("a\xffb"); string(bad.Value) != "a\uFFFDb" {
		t.Errorf("DiagnosticOption(invalid UTF-8) = %q", bad.Value)
	}
	if e := DiagnosticOption(""); e.Value != nil {
		t.Errorf("DiagnosticOption(\"\") = %#v, want a nil value", e)
	}

	if _, err := LimitsOption(Limits{ReplayBufferBytes: MaxVarint + 1}); !errors.Is(err, ErrTooLong) {
		t.Errorf("LimitsOption(huge) error = %v, want %v", err, ErrTooLong)
	}
	if _, err := ConnectedOption(Addr{FQDN: strings.Repeat("x", 256)}); !errors.Is(err, ErrTooLong) {
		t.Errorf("ConnectedOption(long name) error = %v, want %v", err, ErrTooLong)
	}
	if _, err := PublicAddrOption(Addr{FQDN: strings.Repeat("x", 256)}); !errors.Is(err, ErrTooLong) {
		t.Errorf("PublicAddrOption(long name) error = %v, want %v", err, ErrTooLong)
	}
}

func TestOptionsAppendBinaryErrors(t *testing.T) {
	tests := []struct {
		name    string
		o       Options
		wantErr error
	}{
		{name: "duplicate_family", o: Options{FamilyOption(0), FamilyOption(1)}, wantErr: ErrMalformed},
		{name: "bad_family", o: Options{FamilyOption(9)}, wantErr: ErrMalformed},
		{name: "bad_proof", o: Options{{Kind: OptionProof, Value: []byte{1}}}, wantErr: ErrMalformed},
		{name: "diagnostic_too_long", o: Options{{Kind: OptionDiagnostic, Value: make([]byte, MaxDiagnosticLen+1)}}, wantErr: ErrTooLong},
		{name: "value_too_long", o: Options{{Kind: 0x30, Value: make([]byte, MaxOptionsLen+1)}}, wantErr: ErrTooLong},
		{name: "total_too_long", o: Options{{Kind: 0x30, Value: make([]byte, 10000)}, {Kind: 0x31, Value: make([]byte, 10000)}}, wantErr: ErrTooLong},
		{name: "kind_too_big", o: Options{{Kind: MaxVarint + 1}}, wantErr: ErrTooLong},
		{name: "too_many_ports", o: Options{ReservedPortsOption(slices.Repeat([]uint16{1}, MaxOptionsLen))}, wantErr: ErrTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pre := []byte{1, 2, 3}
			b, err := tt.o.AppendBinary(pre)
			if !errors.Is(err, tt.wantErr) || !bytes.Equal(b, pre) {
				t.Errorf("AppendBinary = % x…, %v; want 01 02 03, %v", b[:min(len(b), 8)], err, tt.wantErr)
			}
		})
	}
}

func TestOptionString(t *testing.T) {
	o := Options{FamilyOption(FamilyPreferIPv6), DiagnosticOption("no route"), ProofOption(Proof(mustHex(t, strings.Repeat("5a", 32)))), {Kind: 0x21}}
	if got, want := o.String(), `[FAMILY=02 DIAGNOSTIC="no route" PROOF=REDACTED GREASE(0x21)=]`; got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		for _, v := range []any{o, o[2]} {
			s := fmt.Sprintf(verb, v)
			if strings.Contains(s, "ZZZZ") || strings.Contains(s, "5a5a") || strings.Contains(s, "90, 90") {
				t.Errorf("Sprintf(%q, %T) = %s: leaks the proof", verb, v, s)
			}
		}
	}
	if got, want := (Option{Kind: OptionHopLimit, Value: []byte{8}}).GoString(), `proto.Option{Kind:0x3, Value:[]byte("\b")}`; got != want {
		t.Errorf("GoString() = %s, want %s", got, want)
	}
	if got, want := Options(nil).GoString(), "proto.Options(nil)"; got != want {
		t.Errorf("GoString() = %s, want %s", got, want)
	}
}

func TestSecretsHidden(t *testing.T) {
	secret := Proof(mustHex(t, strings.Repeat("5a", 32))) // "ZZZZ…"
	token := Token(mustHex(t, strings.Repeat("5a", 16)))  // "ZZZZ…"
	values := []any{
		Hello{Methods: []Method{MethodUserPass}, Auth: MethodUserPass, Username: "alice", Password: "ZZZZhunter2"},
		ExtRequest{Command: CommandTake, Token: token, Options: Options{ProofOption(secret)}},
		ExtRequest{Command: CommandResume, Proof: secret},
		ExtRequest{Command: CommandConnect, Options: Options{mustOption(AttachOption(Attach{Proof: secret}))}},
		Attach{Proof: secret},
		ExtReply{Command: CommandResume, Proof: secret},
		AcceptOffer{Token: token},
		RejectOffer{Token: token},
		token, secret,
	}
	for _, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X"} {
			s := fmt.Sprintf(verb, v)
			if strings.Contains(s, "ZZZZ") || strings.Contains(s, "hunter2") || strings.Contains(strings.ToLower(s), "5a5a") ||
				strings.Contains(s, "0x5a, 0x5a") {
				t.Errorf("Sprintf(%q, %T) = %s: leaks a secret", verb, v, s)
			}
		}
	}
	h := Hello{Methods: []Method{MethodNoAuth, MethodExtensions}, Auth: MethodUserPass, Username: "alice", Password: "x"}
	if got, want := h.String(), `HELLO methods=[no-auth socks6-extensions] auth=username/password user="alice" password=REDACTED options=[]`; got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
	if got, want := h.GoString(), `proto.Hello{Methods:[]proto.Method{0x0, 0xc6}, Auth:0x2, Username:"alice", Password:REDACTED, Options:proto.Options(nil)}`; got != want {
		t.Errorf("GoString() = %s, want %s", got, want)
	}
	if got, want := sessionVal.String(), sessionHex; got != want {
		t.Errorf("SessionID.String() = %s, want %s", got, want)
	}
}

var helloVectors = []vector[Hello]{
	{name: "alpn_none", in: "01 00 00", want: Hello{Auth: MethodNoAuth}},
	{name: "transcript_none", in: "01 02 00c6 00", want: Hello{Methods: []Method{MethodNoAuth, MethodExtensions}, Auth: MethodNoAuth}},
	{name: "userpass", in: "01 03 0002c6 02 05 616c696365 06 736563726574", want: Hello{Methods: []Method{0, 2, 0xc6}, Auth: MethodUserPass, Username: "alice", Password: "secret"}},
	{name: "userpass_empty", in: "01 00 02 00 00", want: Hello{Auth: MethodUserPass}},
	{name: "userpass_max", in: "01 00 02 " + user255Hex + " " + pass255Hex, want: Hello{Auth: MethodUserPass, Username: user255, Password: pass255}},
	{name: "methods_max", in: "01 ff " + allBytesHex(255) + " 00", want: Hello{Methods: allMethods(255), Auth: MethodNoAuth}},
	{name: "options", in: "01 00 00 09 02 412c 21 00", want: Hello{Auth: MethodNoAuth, Options: Options{IdleTimeoutOption(300 * time.Second), {Kind: 0x21}}}},

	{name: "version0", in: "00 00 00", wantErr: ErrVersion, at: 1},
	{name: "version2", in: "02 00 00", wantErr: ErrVersion, at: 1},
	{name: "version5", in: "05 01 00", wantErr: ErrVersion, at: 1}, // a greeting where HELLO was expected
	{name: "auth_gssapi", in: "01 00 01", wantErr: ErrAuthMethod, at: 3},
	{name: "auth_ext", in: "01 00 c6 01 02 03", wantErr: ErrAuthMethod, at: 3},
	{name: "duplicate_option", in: "01 00 00 03 01 08 03 01 08", wantErr: ErrMalformed, at: 9},
	{name: "options_too_long", in: "01 00 00 30 7ffe " + strings.Repeat("00", MaxOptionsLen-2), wantErr: ErrTooLong, at: 3 + MaxOptionsLen + 1},
}

func TestParseHello(t *testing.T) {
	testParseValue(t, ParseHello, helloVectors)
}

var helloAckVectors = []vector[HelloAck]{
	{name: "ok", in: "00 01 1f 80004000 " + sessionHex, want: HelloAck{Version: 1, Features: 0x1f, MaxFrameLen: 16384, SessionID: sessionVal}},
	{name: "min_frame_len", in: "00 01 00 4400 " + sessionHex, want: HelloAck{Version: 1, MaxFrameLen: 1024, SessionID: sessionVal}},
	{name: "max_frame_len", in: "00 01 00 8000ffff " + sessionHex, want: HelloAck{Version: 1, MaxFrameLen: 65535, SessionID: sessionVal}},
	{name: "unknown_features_kept", in: "00 01 c000010000000001 4400 " + sessionHex, want: HelloAck{Version: 1, Features: 1<<40 | FeatureListen, MaxFrameLen: 1024, SessionID: sessionVal}},
	{name: "options", in: "00 01 3f 4400 " + sessionHex + " 05 02 5f90 06 04 01020304", want: HelloAck{Version: 1, Features: 0x3f, MaxFrameLen: 1024, SessionID: sessionVal,
		Options: Options{ReservedPortsOption([]uint16{8080}), mustOption(LimitsOption(Limits{1, 2, 3, 4}))}}},
	{name: "auth_failed", in: "01 01 00 80004000 " + strings.Repeat("00", 16), want: HelloAck{Status: HelloAuthFailed, Version: 1, MaxFrameLen: 16384}},
	{name: "transcript_mismatch", in: "03 01 00 80004000 " + strings.Repeat("00", 16), want: HelloAck{Status: HelloTranscriptMismatch, Version: 1, MaxFrameLen: 16384}},
	// With "version unsupported" the Version is the gateway's highest.
	{name: "version_unsupported_v1", in: "02 01 00 80004000 " + strings.Repeat("00", 16), want: HelloAck{Status: HelloVersionUnsupported, Version: 1, MaxFrameLen: 16384}},
	{name: "version_unsupported_v3", in: "02 03 00 80004000 " + strings.Repeat("00", 16) + " 04 02 6869", want: HelloAck{Status: HelloVersionUnsupported, Version: 3, MaxFrameLen: 16384,
		Options: Options{DiagnosticOption("hi")}}},

	{name: "version0", in: "00 00 00 4400", wantErr: ErrVersion, at: 2},
	{name: "version2", in: "00 02 00 4400", wantErr: ErrVersion, at: 2},
	{name: "version2_auth_failed", in: "01 02 00 4400", wantErr: ErrVersion, at: 2},
	{name: "version0_unsupported", in: "02 00 00 4400", wantErr: ErrVersion, at: 2},
	{name: "status_unknown", in: "04 01 00 4400", wantErr: ErrMalformed, at: 2},
	{name: "frame_len_1023", in: "00 01 00 43ff " + sessionHex, wantErr: ErrMalformed, at: 5},
	{name: "frame_len_65536", in: "00 01 00 80010000 " + sessionHex, wantErr: ErrMalformed, at: 7},
	{name: "frame_len_zero", in: "00 01 00 00 " + sessionHex, wantErr: ErrMalformed, at: 4},
	{name: "features_not_shortest", in: "00 01 4001 4400 " + sessionHex, wantErr: ErrMalformed, at: 4},
	{name: "bad_option", in: "00 01 00 4400 " + sessionHex + " 01 01 07", wantErr: ErrMalformed, at: 24},
}

func TestParseHelloAck(t *testing.T) {
	testParseValue(t, ParseHelloAck, helloAckVectors)
}

var extRequestVectors = []vector[ExtRequest]{
	{name: "connect_name", in: "01 01 00 03 0b 6578616d706c652e636f6d 01bb 01 01 02 03 01 08", want: ExtRequest{ID: 1, Command: CommandConnect,
		Addr: Addr{FQDN: "example.com", Port: 443}, Options: Options{FamilyOption(FamilyPreferIPv6), HopLimitOption(8)}}},
	{name: "connect_ipv4", in: "01 01 00 01 c0000201 0050", want: ExtRequest{ID: 1, Command: CommandConnect, Addr: ap("192.0.2.1:80")}},
	{name: "connect_attach", in: "05 01 00 01 c0000201 0050 0b 32 " + sessionHex + " 4b00 " + proofHex, want: ExtRequest{ID: 5, Command: CommandConnect, Addr: ap("192.0.2.1:80"),
		Options: Options{mustOption(AttachOption(Attach{SessionID: sessionVal, Offset: 2816, Proof: proofValue}))}}},
	{name: "connect_ipv6", in: "01 01 00 04 " + ipv6DocHex + " 01bb", want: ExtRequest{ID: 1, Command: CommandConnect, Addr: ap("[2001:db8::1]:443")}},
	{name: "bind", in: "06 02 00 01 c6336401 1f90", want: ExtRequest{ID: 6, Command: CommandBind, Addr: ap("198.51.100.1:8080")}},
	{name: "udp_associate", in: "06 03 00 01 00000000 0000", want: ExtRequest{ID: 6, Command: CommandUDPAssociate, Addr: vecNoAddr}},
	{name: "listen_exact", in: "02 10 01 01 00000000 1f90 07 02 6710", want: ExtRequest{ID: 2, Command: CommandListen, Exact: true, Addr: ap("0.0.0.0:8080"),
		Options: Options{OfferTimeoutOption(10 * time.Second)}}},
	{name: "listen_dual_stack", in: "03 10 02 04 " + strings.Repeat("00", 16) + " 0000", want: ExtRequest{ID: 3, Command: CommandListen, DualStack: true, Addr: ap("[::]:0")}},
	{name: "listen_both_flags", in: "03 10 03 01 00000000 0000", want: ExtRequest{ID: 3, Command: CommandListen, Exact: true, DualStack: true, Addr: vecNoAddr}},
	{name: "take", in: "04 11 00 01 00000000 0000 " + tokenHex, want: ExtRequest{ID: 4, Command: CommandTake, Addr: vecNoAddr, Token: tokenValue}},
	{name: "take_proof", in: "04 11 00 01 00000000 0000 " + tokenHex + " 0a 20 " + proofHex, want: ExtRequest{ID: 4, Command: CommandTake, Addr: vecNoAddr, Token: tokenValue,
		Options: Options{ProofOption(proofValue)}}},
	{name: "udp", in: "05 12 00 01 00000000 0000", want: ExtRequest{ID: 5, Command: CommandUDP, Addr: vecNoAddr}},
	{name: "resolve", in: "412c 13 00 03 0b 6578616d706c652e6f7267 0000", want: ExtRequest{ID: 300, Command: CommandResolve, Addr: Addr{FQDN: "example.org"}}},
	{name: "resume", in: "01 14 00 01 00000000 0000 " + sessionHex + " 00 " + proofHex, want: ExtRequest{ID: 1, Command: CommandResume, Addr: vecNoAddr,
		SessionID: sessionVal, Proof: proofValue}},
	{name: "resume_generation_4byte", in: "01 14 00 01 00000000 0000 " + sessionHex + " 80010000 " + proofHex + " 09 01 05", want: ExtRequest{ID: 1, Command: CommandResume, Addr: vecNoAddr,
		SessionID: sessionVal, Generation: 65536, Proof: proofValue, Options: Options{IdleTimeoutOption(5 * time.Second)}}},
	// An unknown command has no command data: its options parse, and
	// the gateway answers ReplyCommandNotSupported.
	{name: "unknown_command", in: "07 7f 00 01 00000000 0000 09 02 412c", want: ExtRequest{ID: 7, Command: 0x7f, Addr: vecNoAddr, Options: Options{IdleTimeoutOption(300 * time.Second)}}},
	{name: "id_max", in: "ffffffffffffffff 01 00 01 c0000201 0050", want: ExtRequest{ID: MaxVarint, Command: CommandConnect, Addr: ap("192.0.2.1:80")}},

	{name: "id_not_shortest", in: "4001 01 00 01 c0000201 0050", wantErr: ErrMalformed, at: 2},
	{name: "connect_flags", in: "01 01 01 01 c0000201 0050", wantErr: ErrMalformed, at: 3},
	{name: "take_flags", in: "01 11 02 01 00000000 0000 " + tokenHex, wantErr: ErrMalformed, at: 3},
	{name: "listen_unknown_flag", in: "01 10 04 01 00000000 0000", wantErr: ErrMalformed, at: 3},
	{name: "listen_high_flag", in: "01 10 81 01 00000000 0000", wantErr: ErrMalformed, at: 3},
	{name: "atyp_unknown", in: "01 01 00 02 c0000201 0050", wantErr: ErrAddressType, at: 4},
	{name: "fqdn_empty", in: "01 01 00 03 00 0050", wantErr: ErrMalformed, at: 5},
	{name: "resume_generation_not_shortest", in: "01 14 00 01 00000000 0000 " + sessionHex + " 4000 " + proofHex, wantErr: ErrMalformed, at: 28},
	{name: "bad_option", in: "01 01 00 01 c0000201 0050 03 00", wantErr: ErrMalformed, at: 12},
	{name: "attach_reply_form", in: "01 01 00 01 c0000201 0050 0b 01 00", wantErr: ErrMalformed},
}

func TestParseExtRequest(t *testing.T) {
	testParseValue(t, ParseExtRequest, extRequestVectors)
}

// extReplyVectors are keyed by the command of the request they answer.
var extReplyVectors = map[Command][]vector[ExtReply]{
	CommandConnect: {
		{name: "connected", in: "01 00 04 " + ipv6DocHex + " c000 02 13 04 20010db8000000000000000000000010 01bb", want: ExtReply{ID: 1, Command: CommandConnect,
			Addr: ap("[2001:db8::1]:49152"), Options: Options{mustOption(ConnectedOption(ap("[2001:db8::10]:443")))}}},
		{name: "refused", in: "08 05 01 00000000 0000 04 07 72656675736564", want: ExtReply{ID: 8, Code: ReplyConnectionRefused, Command: CommandConnect, Addr: vecNoAddr,
			Options: Options{DiagnosticOption("refused")}}},
		{name: "not_served", in: "08 e5 01 00000000 0000", want: ExtReply{ID: 8, Code: ReplyNotServed, Command: CommandConnect, Addr: vecNoAddr}},
		{name: "attach", in: "05 00 01 c0000201 c001 0b 02 5000", want: ExtReply{ID: 5, Command: CommandConnect, Addr: ap("192.0.2.1:49153"),
			Options: Options{mustOption(AttachReplyOption(4096))}}},
		{name: "attach_request_form", in: "05 00 01 c0000201 c001 0b 31 " + sessionHex + " 00 " + proofHex, wantErr: ErrMalformed},
		{name: "atyp_unknown", in: "08 00 05", wantErr: ErrAddressType, at: 3},
	},
	CommandListen: {
		{name: "listen", in: "02 00 01 00000000 1f90 01 08 07 01 c6336407 1f90 08 13 04 20010db8000000000000000000000007 1f90", want: ExtReply{ID: 2, Command: CommandListen,
			Addr: ap("0.0.0.0:8080"), ListenerID: 1, Options: Options{mustOption(PublicAddrOption(ap("198.51.100.7:8080"))), mustOption(PublicAddrOption(ap("[2001:db8::7]:8080")))}}},
		{name: "listen_id_8byte", in: "02 00 01 00000000 1f90 c000000100000000", want: ExtReply{ID: 2, Command: CommandListen, Addr: ap("0.0.0.0:8080"), ListenerID: 1 << 32}},
		// A failure carries no reply data: 01 is an option kind here.
		{name: "port_unavailable", in: "02 e2 01 00000000 0000 01 01 00", want: ExtReply{ID: 2, Code: ReplyPortUnavailable, Command: CommandListen, Addr: vecNoAddr,
			Options: Options{FamilyOption(FamilyAny)}}},
		{name: "listen_id_not_shortest", in: "02 00 01 00000000 1f90 4001", wantErr: ErrMalformed, at: 11},
	},
	CommandTake: {
		{name: "take", in: "01 00 01 cb007105 c738", want: ExtReply{ID: 1, Command: CommandTake, Addr: ap("203.0.113.5:51000")}},
		{name: "token_invalid", in: "01 e1 01 00000000 0000", want: ExtReply{ID: 1, Code: ReplyTokenInvalid, Command: CommandTake, Addr: vecNoAddr}},
	},
	CommandUDP: {
		{name: "udp", in: "05 00 01 00000000 0000 07", want: ExtReply{ID: 5, Command: CommandUDP, Addr: vecNoAddr, AssocID: 7}},
		{name: "udp_options", in: "05 00 01 00000000 0000 412c 09 01 3c", want: ExtReply{ID: 5, Command: CommandUDP, Addr: vecNoAddr, AssocID: 300,
			Options: Options{IdleTimeoutOption(time.Minute)}}},
	},
	CommandResolve: {
		{name: "resolve", in: "412c 00 01 00000000 0000 02 0000012c 01 c000020a 0000012c 04 20010db8000000000000000000000010", want: ExtReply{ID: 300, Command: CommandResolve,
			Addr: vecNoAddr, Answers: []ResolveAnswer{{TTL: 300, Addr: ip("192.0.2.10")}, {TTL: 300, Addr: ip("2001:db8::10")}}}},
		{name: "resolve_mapped_stays_16", in: "01 00 01 00000000 0000 01 ffffffff 04 00000000000000000000ffffc000020a", want: ExtReply{ID: 1, Command: CommandResolve,
			Addr: vecNoAddr, Answers: []ResolveAnswer{{TTL: math.MaxUint32, Addr: ip16("::ffff:192.0.2.10")}}}},
		{name: "resolve_none", in: "01 00 01 00000000 0000 00", want: ExtReply{ID: 1, Command: CommandResolve, Addr: vecNoAddr}},
		{name: "name_not_found", in: "01 e6 01 00000000 0000", want: ExtReply{ID: 1, Code: ReplyNameNotFound, Command: CommandResolve, Addr: vecNoAddr}},
		// An answer is at least 9 bytes, so the ATYP is checked once
		// the count fits.
		{name: "answer_fqdn", in: "01 00 01 00000000 0000 01 0000012c 03 0b 6578616d706c652e6f7267", wantErr: ErrAddressType, at: 19},
		{name: "answer_atyp_zero", in: "01 00 01 00000000 0000 01 0000012c 00 c000020a", wantErr: ErrAddressType},
		// The count is checked against what is left before anything
		// is allocated.
		{name: "count_cannot_fit", in: "01 00 01 00000000 0000 02 0000012c 01 c000020a", wantErr: ErrShortBuffer},
		{name: "count_huge", in: "01 00 01 00000000 0000 ffffffffffffffff 0000012c 01 c000020a", wantErr: ErrShortBuffer},
	},
	CommandResume: {
		{name: "resume", in: "01 00 01 00000000 0000 01 " + proofHex, want: ExtReply{ID: 1, Command: CommandResume, Addr: vecNoAddr, Generation: 1, Proof: proofValue}},
		{name: "resume_rejected", in: "01 e4 01 00000000 0000", want: ExtReply{ID: 1, Code: ReplyResumeRejected, Command: CommandResume, Addr: vecNoAddr}},
	},
	Command(0x7f): {
		{name: "unknown_command", in: "01 00 01 00000000 0000 09 01 05", want: ExtReply{ID: 1, Command: 0x7f, Addr: vecNoAddr, Options: Options{IdleTimeoutOption(5 * time.Second)}}},
	},
}

func TestParseExtReply(t *testing.T) {
	for cmd, vs := range extReplyVectors {
		t.Run(cmd.String(), func(t *testing.T) {
			testParseValue(t, func(b []byte) (ExtReply, error) { return ParseExtReply(b, cmd) }, vs)
		})
	}
}

// Control characters are valid UTF-8, so a DIAGNOSTIC may carry them;
// the receiver quotes the text when it logs it.
func TestDiagnosticControl(t *testing.T) {
	r, err := ParseExtReply(mustHex(t, "08 05 01 00000000 0000 04 08 726566757365640a"), CommandConnect)
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := r.Options.Diagnostic(); !ok || s != "refused\n" {
		t.Errorf("Diagnostic() = %q, %v", s, ok)
	}
}

func TestParseExtReplyNoAlloc(t *testing.T) {
	b := mustHex(t, "01 00 01 00000000 0000 ffffffffffffffff 0000012c 01 c000020a")
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := ParseExtReply(b, CommandResolve); !errors.Is(err, ErrShortBuffer) {
			t.Fatalf("error = %v", err)
		}
	})
	if allocs != 0 {
		t.Errorf("ParseExtReply with a huge count: %v allocations, want 0", allocs)
	}
}

var acceptOfferVectors = []vector[AcceptOffer]{
	{name: "ipv4", in: "01 " + tokenHex + " 01 cb007105 c738 6710", want: AcceptOffer{ListenerID: 1, Token: tokenValue, Caller: ap("203.0.113.5:51000"), ExpiresMillis: 10000}},
	{name: "ipv6_8byte", in: "ffffffffffffffff " + tokenHex + " 04 " + ipv6DocHex + " 0050 c000000100000000", want: AcceptOffer{ListenerID: MaxVarint, Token: tokenValue,
		Caller: ap("[2001:db8::1]:80"), ExpiresMillis: 1 << 32}},
	{name: "fqdn", in: "02 " + tokenHex + " 03 0b 6578616d706c652e6f7267 0050 00", want: AcceptOffer{ListenerID: 2, Token: tokenValue, Caller: Addr{FQDN: "example.org", Port: 80}}},

	{name: "trailing", in: "01 " + tokenHex + " 01 cb007105 c738 6710 00", wantErr: ErrMalformed},
	{name: "atyp_unknown", in: "01 " + tokenHex + " 02 cb007105 c738 6710", wantErr: ErrAddressType, at: 18},
	{name: "expires_not_shortest", in: "01 " + tokenHex + " 01 cb007105 c738 4000", wantErr: ErrMalformed, at: 26},
}

func TestParseAcceptOffer(t *testing.T) {
	testParseValue(t, ParseAcceptOffer, acceptOfferVectors)
}

var rejectOfferVectors = []vector[RejectOffer]{
	{name: "token", in: tokenHex, want: RejectOffer{Token: tokenValue}},
	{name: "long", in: tokenHex + "00", wantErr: ErrMalformed},
}

func TestParseRejectOffer(t *testing.T) {
	testParseValue(t, ParseRejectOffer, rejectOfferVectors)
}

var routesVectors = []vector[Routes]{
	{name: "full", in: "03 00 02 04 c0000200 c00002ff 00 06 20010db8000000000000000000000000 20010db80000ffffffffffffffffffff 06 02 0b 6578616d706c652e636f6d 0d 2a2e6578616d706c652e6f7267",
		want: Routes{Generation: 3, Ranges: []IPRange{
			{Start: ip("192.0.2.0"), End: ip("192.0.2.255")},
			{Start: ip("2001:db8::"), End: ip("2001:db8:0:ffff:ffff:ffff:ffff:ffff"), Protocol: 6},
		}, Domains: []string{"example.com", "*.example.org"}}},
	{name: "empty", in: "00 00 00 00", want: Routes{}},
	{name: "default_route", in: "01 01 00 00", want: Routes{Generation: 1, DefaultRoute: true}},
	{name: "one_address", in: "05 00 01 04 c0000201 c0000201 11 00", want: Routes{Generation: 5, Ranges: []IPRange{{Start: ip("192.0.2.1"), End: ip("192.0.2.1"), Protocol: 17}}}},
	{name: "mapped_v6", in: "05 00 01 06 00000000000000000000ffffc0000200 00000000000000000000ffffc00002ff 00 00", want: Routes{Generation: 5,
		Ranges: []IPRange{{Start: ip16("::ffff:192.0.2.0"), End: ip16("::ffff:192.0.2.255")}}}},
	{name: "domain_max", in: "05 00 00 01 " + fqdn255Hex, want: Routes{Generation: 5, Domains: []string{fqdn255}}},

	{name: "generation_not_shortest", in: "4000 00 00 00", wantErr: ErrMalformed, at: 2},
	{name: "flags_unknown", in: "01 02 00 00", wantErr: ErrMalformed, at: 2},
	{name: "flags_high", in: "01 81 00 00", wantErr: ErrMalformed, at: 2},
	// The count is checked first: a range is at least 10 bytes.
	{name: "ip_version_5", in: "01 00 01 05 c0000200 c00002ff 00 00", wantErr: ErrMalformed, at: 13},
	{name: "ip_version_0", in: "01 00 01 00 c0000200 c00002ff 00 00", wantErr: ErrMalformed, at: 13},
	{name: "start_after_end", in: "01 00 01 04 c00002ff c0000200 00 00", wantErr: ErrMalformed, at: 13},
	{name: "domain_empty", in: "01 00 00 01 00 00", wantErr: ErrMalformed},
	{name: "trailing", in: "01 00 00 00 00", wantErr: ErrMalformed},
	{name: "range_count_cannot_fit", in: "01 00 02 04 c0000200 c00002ff 00 00", wantErr: ErrShortBuffer},
	{name: "range_count_huge", in: "01 00 ffffffffffffffff 00", wantErr: ErrShortBuffer},
	{name: "domain_count_huge", in: "01 00 00 ffffffffffffffff 0161", wantErr: ErrShortBuffer},
}

func TestParseRoutes(t *testing.T) {
	testParseValue(t, ParseRoutes, routesVectors)
}

func TestParseRoutesNoAlloc(t *testing.T) {
	for _, in := range []string{"01 00 ffffffffffffffff 00", "01 00 00 ffffffffffffffff 0161", "01 00 4000 " + strings.Repeat("00", 100)} {
		b := mustHex(t, in)
		allocs := testing.AllocsPerRun(100, func() {
			if _, err := ParseRoutes(b); err == nil {
				t.Fatal("no error")
			}
		})
		if allocs != 0 {
			t.Errorf("ParseRoutes(%.30s…): %v allocations, want 0", in, allocs)
		}
	}
}

func TestRoutesAppendBinaryErrors(t *testing.T) {
	tests := []struct {
		name    string
		r       Routes
		wantErr error
	}{
		{name: "invalid_start", r: Routes{Ranges: []IPRange{{End: ip("192.0.2.1")}}}, wantErr: ErrMalformed},
		{name: "invalid_end", r: Routes{Ranges: []IPRange{{Start: ip("192.0.2.1")}}}, wantErr: ErrMalformed},
		{name: "mixed_families", r: Routes{Ranges: []IPRange{{Start: ip("192.0.2.1"), End: ip("2001:db8::1")}}}, wantErr: ErrMalformed},
		{name: "mapped_and_v4", r: Routes{Ranges: []IPRange{{Start: ip16("::ffff:192.0.2.1"), End: ip("192.0.2.2")}}}, wantErr: ErrMalformed},
		{name: "start_after_end", r: Routes{Ranges: []IPRange{{Start: ip("192.0.2.2"), End: ip("192.0.2.1")}}}, wantErr: ErrMalformed},
		{name: "empty_domain", r: Routes{Domains: []string{""}}, wantErr: ErrMalformed},
		{name: "long_domain", r: Routes{Domains: []string{strings.Repeat("a", 256)}}, wantErr: ErrTooLong},
		{name: "generation_too_big", r: Routes{Generation: MaxVarint + 1}, wantErr: ErrTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pre := []byte{1}
			if b, err := tt.r.AppendBinary(pre); !errors.Is(err, tt.wantErr) || !bytes.Equal(b, pre) {
				t.Errorf("AppendBinary = % x, %v; want 01, %v", b, err, tt.wantErr)
			}
		})
	}
	if v := (IPRange{Start: ip("2001:db8::1")}).Version(); v != 6 {
		t.Errorf("Version() = %d, want 6", v)
	}
	if v := (IPRange{}).Version(); v != 0 {
		t.Errorf("Version() of the zero range = %d, want 0", v)
	}
}

var datagramVectors = []vector[Datagram]{
	{name: "ipv4", in: "07 01 c0000235 0035 68656c6c6f", want: Datagram{AssocID: 7, Addr: ap("192.0.2.53:53"), Payload: []byte("hello")}},
	{name: "empty", in: "07 04 20010db8000000000000000000000053 0035", want: Datagram{AssocID: 7, Addr: ap("[2001:db8::53]:53")}},
	{name: "fqdn", in: "412c 03 0b 6578616d706c652e6f7267 0035 00", want: Datagram{AssocID: 300, Addr: Addr{FQDN: "example.org", Port: 53}, Payload: []byte{0}}},

	{name: "atyp_unknown", in: "07 00 c0000235 0035", wantErr: ErrAddressType, at: 2},
	{name: "fqdn_empty", in: "07 03 00 0035", wantErr: ErrMalformed, at: 3},
	{name: "assoc_not_shortest", in: "4007 01 c0000235 0035", wantErr: ErrMalformed, at: 2},
}

func TestParseDatagram(t *testing.T) {
	testParseValue(t, ParseDatagram, datagramVectors)
}

var streamAckVectors = []vector[StreamAck]{
	{name: "ack", in: "01 80100000", want: StreamAck{StreamID: 1, Offset: 1 << 20}},
	{name: "zero", in: "00 00", want: StreamAck{}},
	{name: "max", in: "ffffffffffffffff ffffffffffffffff", want: StreamAck{StreamID: MaxVarint, Offset: MaxVarint}},

	{name: "trailing", in: "01 01 00", wantErr: ErrMalformed},
	{name: "offset_not_shortest", in: "01 4001", wantErr: ErrMalformed, at: 3},
}

func TestParseStreamAck(t *testing.T) {
	testParseValue(t, ParseStreamAck, streamAckVectors)
}

var pingVectors = []vector[Ping]{
	{name: "ping", in: "0001020304050607", want: Ping{Opaque: [8]byte{0, 1, 2, 3, 4, 5, 6, 7}}},
	{name: "long", in: "000102030405060708", wantErr: ErrMalformed},
}

var pongVectors = []vector[Pong]{
	{name: "pong", in: "ffffffffffffffff", want: Pong{Opaque: [8]byte{255, 255, 255, 255, 255, 255, 255, 255}}},
	{name: "long", in: "000102030405060708", wantErr: ErrMalformed},
}

func TestParsePingPong(t *testing.T) {
	testParseValue(t, ParsePing, pingVectors)
	testParseValue(t, ParsePong, pongVectors)
	p := Ping{Opaque: [8]byte{1}}
	if Pong(p).Opaque != p.Opaque {
		t.Error("Pong(ping) does not echo")
	}
}

var closeVectors = []vector[Close]{
	{name: "bare", in: "01", want: Close{Reason: ReplyGeneralFailure}},
	{name: "diagnostic", in: "00 04 14 736572766572207368757474696e6720646f776e", want: Close{Options: Options{DiagnosticOption("server shutting down")}}},
	{name: "unknown_reason", in: "c0", want: Close{Reason: 0xc0}},

	{name: "bad_option", in: "00 04 01 ff", wantErr: ErrMalformed, at: 4},
}

func TestParseClose(t *testing.T) {
	testParseValue(t, ParseClose, closeVectors)
}

// Encoders refuse what the parsers would refuse, and leave b alone.
func TestExtAppendBinaryErrors(t *testing.T) {
	long := strings.Repeat("x", 256)
	tests := []struct {
		name    string
		msg     message
		wantErr error
	}{
		{name: "hello_too_many_methods", msg: Hello{Methods: make([]Method, 256)}, wantErr: ErrTooLong},
		{name: "hello_auth_gssapi", msg: Hello{Auth: MethodGSSAPI}, wantErr: ErrAuthMethod},
		{name: "hello_user_too_long", msg: Hello{Auth: MethodUserPass, Username: long}, wantErr: ErrTooLong},
		{name: "hello_password_too_long", msg: Hello{Auth: MethodUserPass, Password: long}, wantErr: ErrTooLong},
		{name: "hello_bad_option", msg: Hello{Options: Options{{Kind: OptionHopLimit}}}, wantErr: ErrMalformed},
		{name: "hello_ack_status", msg: HelloAck{Status: 4}, wantErr: ErrMalformed},
		{name: "hello_ack_version", msg: HelloAck{Version: 2}, wantErr: ErrVersion},
		{name: "request_attach_reply_form", msg: ExtRequest{Options: Options{mustOption(AttachReplyOption(0))}}, wantErr: ErrMalformed},
		{name: "reply_attach_request_form", msg: ExtReply{Options: Options{mustOption(AttachOption(Attach{}))}}, wantErr: ErrMalformed},
		{name: "hello_ack_frame_len", msg: HelloAck{MaxFrameLen: 1023}, wantErr: ErrMalformed},
		{name: "hello_ack_features", msg: HelloAck{Features: 1 << 63}, wantErr: ErrTooLong},
		{name: "request_id", msg: ExtRequest{ID: MaxVarint + 1}, wantErr: ErrTooLong},
		{name: "request_fqdn", msg: ExtRequest{Addr: Addr{FQDN: long}}, wantErr: ErrTooLong},
		{name: "request_generation", msg: ExtRequest{Command: CommandResume, Generation: 1 << 62}, wantErr: ErrTooLong},
		{name: "request_duplicate_option", msg: ExtRequest{Options: Options{HopLimitOption(1), HopLimitOption(2)}}, wantErr: ErrMalformed},
		{name: "reply_invalid_answer", msg: ExtReply{Command: CommandResolve, Answers: []ResolveAnswer{{}}}, wantErr: ErrMalformed},
		{name: "reply_listener_id", msg: ExtReply{Command: CommandListen, ListenerID: 1 << 62}, wantErr: ErrTooLong},
		{name: "accept_offer_caller", msg: AcceptOffer{Caller: Addr{FQDN: long}}, wantErr: ErrTooLong},
		{name: "accept_offer_expires", msg: AcceptOffer{ExpiresMillis: 1 << 62}, wantErr: ErrTooLong},
		{name: "datagram_fqdn", msg: Datagram{Addr: Addr{FQDN: long}}, wantErr: ErrTooLong},
		{name: "stream_ack_offset", msg: StreamAck{Offset: 1 << 62}, wantErr: ErrTooLong},
		{name: "close_bad_option", msg: Close{Options: Options{{Kind: OptionProof}}}, wantErr: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pre := []byte{1, 2, 3}
			b, err := tt.msg.AppendBinary(pre)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("AppendBinary error = %v, want %v", err, tt.wantErr)
			}
			if !bytes.Equal(b, pre) {
				t.Errorf("AppendBinary returned % x on error, want its argument unchanged", b)
			}
		})
	}
}

// The encoders write only the fields the command (and, for a reply, the
// code) carries, and zero for what the caller left out.
func TestExtEncoderDefaults(t *testing.T) {
	tests := []struct {
		name string
		msg  Message
		want string
	}{
		{name: "request_zero", msg: ExtRequest{}, want: "00 00 00 01 00000000 0000"},
		{name: "request_connect_ignores_listen_fields", msg: ExtRequest{Command: CommandConnect, Exact: true, DualStack: true, Token: tokenValue, Generation: 5},
			want: "00 01 00 01 00000000 0000"},
		{name: "reply_failure_drops_data", msg: ExtReply{Code: ReplyGeneralFailure, Command: CommandListen, ListenerID: 9}, want: "00 01 01 00000000 0000"},
		{name: "hello_ack_default_frame_len", msg: HelloAck{}, want: "00 01 00 80004000" + strings.Repeat("00", 16)},
		{name: "hello_ack_version_unsupported", msg: HelloAck{Status: HelloVersionUnsupported, Version: 7}, want: "02 07 00 80004000" + strings.Repeat("00", 16)},
		{name: "hello_noauth_drops_credentials", msg: Hello{Username: "a", Password: "b"}, want: "01 00 00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.msg.AppendBinary(nil)
			if want := mustHex(t, tt.want); err != nil || !bytes.Equal(b, want) {
				t.Errorf("AppendBinary = % x, %v; want % x", b, err, want)
			}
		})
	}
}

func TestExtEnumString(t *testing.T) {
	tests := []struct {
		v    fmt.Stringer
		want string
	}{
		{MethodExtensions, "socks6-extensions"},
		{CommandListen, "listen"}, {CommandTake, "take"}, {CommandUDP, "udp"}, {CommandResolve, "resolve"}, {CommandResume, "resume"},
		{ReplyAuthRequired, "authentication required"}, {ReplyTokenInvalid, "token invalid"}, {ReplyPortUnavailable, "port unavailable"},
		{ReplyQuotaExceeded, "quota exceeded"}, {ReplyResumeRejected, "resume rejected"}, {ReplyNotServed, "not served"},
		{ReplyNameNotFound, "name not found"}, {ReplyNameServerFailure, "name server failure"}, {ReplyTimeout, "timed out"},
		{ReplyRejectedByListener, "rejected by listener"}, {ReplyHopLimitExceeded, "hop limit exceeded"},
		{ReplyMalformedRequest, "malformed request"}, {ReplyCode(0xec), "reply(0xec)"},
		{OptionFamily, "FAMILY"}, {OptionConnected, "CONNECTED"}, {OptionHopLimit, "HOP_LIMIT"}, {OptionDiagnostic, "DIAGNOSTIC"},
		{OptionReservedPorts, "RESERVED_PORTS"}, {OptionLimits, "LIMITS"}, {OptionOfferTimeout, "OFFER_TIMEOUT"},
		{OptionPublicAddr, "PUBLIC_ADDR"}, {OptionIdleTimeout, "IDLE_TIMEOUT"}, {OptionProof, "PROOF"},
		{OptionAttach, "ATTACH"}, {OptionKind(0x40), "GREASE(0x40)"}, {OptionKind(0x0c), "option(0xc)"},
		{FamilyAny, "any"}, {FamilyPreferIPv4, "prefer-ipv4"}, {FamilyPreferIPv6, "prefer-ipv6"}, {FamilyIPv4Only, "ipv4-only"},
		{FamilyIPv6Only, "ipv6-only"}, {Family(5), "family(5)"},
		{HelloOK, "ok"}, {HelloAuthFailed, "authentication failed"}, {HelloVersionUnsupported, "version unsupported"},
		{HelloTranscriptMismatch, "transcript mismatch"}, {HelloStatus(9), "status(0x9)"},
		{Features(0), "none"}, {FeatureListen | FeatureResume, "listen|resume"},
		{FeatureListen | FeatureUDP | FeatureResolve | FeatureRoutes | FeatureResume | FeatureChain, "listen|udp|resolve|routes|resume|chain"},
		{Features(1<<40 | 1), "listen|0x10000000000"},
	}
	for _, tt := range tests {
		if got := tt.v.String(); got != tt.want {
			t.Errorf("%T(%v).String() = %q, want %q", tt.v, tt.v, got, tt.want)
		}
	}
	if !(FeatureListen | FeatureUDP).Has(FeatureUDP) || FeatureUDP.Has(FeatureUDP|FeatureListen) {
		t.Error("Features.Has is wrong")
	}
	for k := OptionKind(0); k < 0x40; k++ {
		want := k == OptionPublicAddr || k == 0 || k > OptionAttach
		if got := k.Repeatable(); got != want {
			t.Errorf("%v.Repeatable() = %v, want %v", k, got, want)
		}
	}
}

// The AllocsPerRun budget of the hot paths: parsing a DATAGRAM and a
// STREAM_ACK, and framing a DATAGRAM into a buffer with room, allocate
// nothing.
func TestExtAllocs(t *testing.T) {
	g := mustHex(t, "07 01 c0000235 0035 68656c6c6f")
	ack := mustHex(t, "01 80100000")
	var dg Message = Datagram{AssocID: 7, Addr: ap("192.0.2.53:53"), Payload: []byte("hello")}
	buf := make([]byte, 0, 64)
	tests := []struct {
		name string
		f    func()
	}{
		{name: "parse_datagram", f: func() { ParseDatagram(g) }},
		{name: "parse_stream_ack", f: func() { ParseStreamAck(ack) }},
		{name: "append_frame_datagram", f: func() { AppendFrame(buf[:0], dg) }},
	}
	for _, tt := range tests {
		if a := testing.AllocsPerRun(100, tt.f); a != 0 {
			t.Errorf("%s: %v allocations, want 0", tt.name, a)
		}
	}
}
