package proto

import (
	"errors"
	"io"
	"strconv"
)

// Frame length limits.
const (
	// MaxFrameLen is the longest frame value proto accepts: a DATAGRAM
	// with a 65535-byte payload, its association ID and an IPv6 or
	// long-name address. Parsers refuse a longer Length with ErrTooLong
	// before they look for the value.
	MaxFrameLen = 65600
	// DefaultMaxFrameLen is the frame length limit for every type but
	// DATAGRAM until HELLO_ACK says otherwise.
	DefaultMaxFrameLen = 16384
	// MinNegotiatedFrameLen and MaxNegotiatedFrameLen bound the Max frame
	// length field of HELLO_ACK. Enforcing the negotiated limit is the
	// endpoints' job, not proto's.
	MinNegotiatedFrameLen = 1024
	MaxNegotiatedFrameLen = 65535
)

// A FrameType is the Type field of a frame.
type FrameType uint64

// Frame types of the SOCKS6 extensions. A receiver skips a frame whose
// type it does not know.
const (
	FrameHello       FrameType = 0x01 // client → gateway, the first frame
	FrameHelloAck    FrameType = 0x02 // gateway → client
	FrameRequest     FrameType = 0x03 // client → gateway
	FrameReply       FrameType = 0x04 // gateway → client
	FrameAcceptOffer FrameType = 0x05 // gateway → client, on a LISTEN control connection
	FrameRejectOffer FrameType = 0x06 // client → gateway
	FrameRoutes      FrameType = 0x07 // gateway → client
	FrameDatagram    FrameType = 0x08 // both ways, after UDP
	FrameStreamAck   FrameType = 0x09 // both ways, on resumable sessions
	FramePing        FrameType = 0x0A
	FramePong        FrameType = 0x0B
	FrameClose       FrameType = 0x0C
)

// String returns the frame type's name as the draft spells it
// ("HELLO_ACK"), "GREASE(0x…)" for a GREASE type, or the code in hex.
func (t FrameType) String() string {
	switch t {
	case FrameHello:
		return "HELLO"
	case FrameHelloAck:
		return "HELLO_ACK"
	case FrameRequest:
		return "REQUEST"
	case FrameReply:
		return "REPLY"
	case FrameAcceptOffer:
		return "ACCEPT_OFFER"
	case FrameRejectOffer:
		return "REJECT_OFFER"
	case FrameRoutes:
		return "ROUTES"
	case FrameDatagram:
		return "DATAGRAM"
	case FrameStreamAck:
		return "STREAM_ACK"
	case FramePing:
		return "PING"
	case FramePong:
		return "PONG"
	case FrameClose:
		return "CLOSE"
	}
	if IsGREASE(uint64(t)) {
		return "GREASE(0x" + strconv.FormatUint(uint64(t), 16) + ")"
	}
	return "frame(0x" + strconv.FormatUint(uint64(t), 16) + ")"
}

// IsGREASE reports whether v is a GREASE frame type or option kind,
// 0x1f * N + 0x21 (RFC 9170). Senders use such values, with arbitrary
// contents, to keep receivers honest about skipping what they do not know.
func IsGREASE(v uint64) bool {
	return v >= 0x21 && (v-0x21)%0x1f == 0
}

// A Frame is one control message on a framed connection: its type and
// its undecoded value. The Parse function of the type's message decodes
// the value.
//
//	+----------------+------------------+-----------------+
//	| Type (varint)  | Length (varint)  | Value (Length)  |
//	+----------------+------------------+-----------------+
type Frame struct {
	Type  FrameType
	Value []byte // nil when Length is zero
}

// AppendBinary appends the encoded frame. It fails with ErrTooLong if the
// type is larger than MaxVarint or the value longer than MaxFrameLen.
func (f Frame) AppendBinary(b []byte) ([]byte, error) {
	if len(f.Value) > MaxFrameLen {
		return b, ErrTooLong
	}
	e := encoder{b: b}
	e.varint(uint64(f.Type))
	e.varint(uint64(len(f.Value)))
	e.bytes(f.Value)
	return e.result(b)
}

// ParseFrame decodes a frame from the front of b. The Value aliases b. It
// fails with ErrTooLong as soon as it has a Length over MaxFrameLen,
// whatever follows; with ErrMalformed for a varint that is not in its
// shortest form; and with ErrShortBuffer if b ends before the value does.
func ParseFrame(b []byte) (Frame, int, error) {
	d := decoder{b: b}
	t := d.varint()
	l := d.varint()
	if d.err != nil {
		return Frame{}, 0, d.err
	}
	if l > MaxFrameLen {
		return Frame{}, 0, ErrTooLong
	}
	v := d.bytes(int(l))
	if d.err != nil {
		return Frame{}, 0, d.err
	}
	if l == 0 {
		v = nil
	}
	return Frame{Type: FrameType(t), Value: v}, len(b) - len(d.b), nil
}

// ReadFrame reads exactly one frame from r and nothing after it: the
// varints a byte at a time where their first byte says how long they are,
// then the value in one io.ReadFull. The value is read into buf if it fits
// (Frame.Value then aliases buf) and into a new slice of exactly Length
// bytes otherwise, which happens only after Length has been checked
// against MaxFrameLen. Errors are *ParseError values, wrapping io.EOF for
// a stream that ends before the first byte, io.ErrUnexpectedEOF for one
// that ends inside the frame, or a sentinel error as from ParseFrame.
func ReadFrame(r io.Reader, buf []byte) (Frame, error) {
	var hdr [16]byte // two varints of at most 8 bytes
	n := 0
	fill := func(want int) error {
		m, err := io.ReadFull(r, hdr[n:want])
		n += m
		if err != nil && errors.Is(err, io.EOF) && n > 0 {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	fail := func(err error) (Frame, error) {
		return Frame{}, &ParseError{Msg: "frame", Offset: n, Err: err}
	}

	if err := fill(1); err != nil {
		return fail(err)
	}
	tl := varintLenPrefix(hdr[0])
	if err := fill(tl); err != nil {
		return fail(err)
	}
	t, _, err := ParseVarint(hdr[:tl])
	if err != nil {
		return fail(err)
	}
	if err := fill(tl + 1); err != nil {
		return fail(err)
	}
	ll := varintLenPrefix(hdr[tl])
	if err := fill(tl + ll); err != nil {
		return fail(err)
	}
	l, _, err := ParseVarint(hdr[tl : tl+ll])
	if err != nil {
		return fail(err)
	}
	if l > MaxFrameLen {
		return fail(ErrTooLong)
	}
	if l == 0 {
		return Frame{Type: FrameType(t)}, nil
	}
	var v []byte
	if int(l) <= cap(buf) {
		v = buf[:l]
	} else {
		v = make([]byte, l)
	}
	m, err := io.ReadFull(r, v)
	if err != nil {
		n += m
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fail(err)
	}
	return Frame{Type: FrameType(t), Value: v}, nil
}

// A Message is the decoded value of one frame type. Its AppendBinary
// appends the value only; [AppendFrame] and [WriteFrame] add the Type and
// Length that make it a frame.
type Message interface {
	FrameType() FrameType
	AppendBinary(b []byte) ([]byte, error)
}

// AppendFrame appends m as a complete frame: its type, the length of its
// value, and the value. It fails with ErrTooLong if the value is longer
// than MaxFrameLen, and with m's error if m does not encode; on error it
// returns b unchanged.
func AppendFrame(b []byte, m Message) ([]byte, error) {
	start := len(b)
	out, err := m.AppendBinary(b)
	if err != nil {
		return b, err
	}
	vl := len(out) - start
	if vl > MaxFrameLen {
		return b, ErrTooLong
	}
	t := uint64(m.FrameType())
	tl := VarintLen(t)
	if tl == 0 {
		return b, ErrTooLong
	}
	hl := tl + VarintLen(uint64(vl))
	// Make room for the header in front of the value and move it up.
	out = append(out, make([]byte, hl)...)
	copy(out[start+hl:], out[start:start+vl])
	h, _ := AppendVarint(out[start:start], t)
	AppendVarint(h, uint64(vl))
	return out, nil
}

// WriteFrame writes m to w as one frame, in one Write call. Use it, not
// [Write], for extension messages: Write would send the value without its
// frame header.
func WriteFrame(w io.Writer, m Message) error {
	b, err := AppendFrame(nil, m)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}
