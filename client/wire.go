package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/socks6/socks6/proto"
)

// aLongTimeAgo is a deadline in the past: setting it makes blocked I/O
// return at once.
var aLongTimeAgo = time.Unix(1, 0)

// watch makes blocking I/O on c honour ctx until stop is called: it sets
// ctx's deadline on c, and moves the deadline into the past when ctx
// ends. stop clears the deadline and returns nil, or returns ctx's error
// if ctx ended while watched, in which case c's deadline may be in the
// past and the caller must close c.
func watch(ctx context.Context, c net.Conn) (stop func() error) {
	if d, ok := ctx.Deadline(); ok {
		c.SetDeadline(d)
	}
	fired := make(chan struct{})
	stopAfter := context.AfterFunc(ctx, func() {
		c.SetDeadline(aLongTimeAgo)
		close(fired)
	})
	return func() error {
		if !stopAfter() {
			<-fired
			return ctx.Err()
		}
		c.SetDeadline(time.Time{})
		return nil
	}
}

// readFrame reads exactly one frame from r. It refuses a Length over
// limit (over proto.MaxFrameLen for DATAGRAM) before it reads or
// allocates the value, as draft-socks6-extensions-00 ("Frame Size
// Limits") requires, and it reads the value into a new slice, so the
// frame does not alias any buffer. I/O errors come back as they are
// (io.EOF before the first byte, io.ErrUnexpectedEOF inside the frame);
// a bad header is a *protocolError.
func readFrame(r io.Reader, limit int) (proto.Frame, error) {
	var hdr [8]byte
	t, err := readVarint(r, hdr[:], true)
	if err != nil {
		return proto.Frame{}, err
	}
	l, err := readVarint(r, hdr[:], false)
	if err != nil {
		return proto.Frame{}, err
	}
	ft := proto.FrameType(t)
	if ft == proto.FrameDatagram {
		limit = proto.MaxFrameLen
	}
	if l > uint64(limit) {
		return proto.Frame{}, malformed(ft.String()+" frame", fmt.Errorf("length %d over the limit %d: %w", l, limit, proto.ErrTooLong))
	}
	f := proto.Frame{Type: ft}
	if l == 0 {
		return f, nil
	}
	f.Value = make([]byte, l)
	if _, err := io.ReadFull(r, f.Value); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return proto.Frame{}, err
	}
	return f, nil
}

// readVarint reads one variable-length integer from r into b (8 bytes),
// a byte at first and then as many as the first byte announces, so that
// it never reads past the integer.
func readVarint(r io.Reader, b []byte, first bool) (uint64, error) {
	if _, err := io.ReadFull(r, b[:1]); err != nil {
		if !first && errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	n := 1 << (b[0] >> 6)
	if _, err := io.ReadFull(r, b[1:n]); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	v, _, err := proto.ParseVarint(b[:n])
	if err != nil {
		return 0, malformed("frame header", err)
	}
	return v, nil
}

// encodeFrame returns m as a frame, refusing a value longer than limit
// (the Max Frame Length the gateway announced).
func encodeFrame(m proto.Message, limit int) ([]byte, error) {
	v, err := m.AppendBinary(nil)
	if err != nil {
		return nil, err
	}
	if len(v) > limit {
		return nil, fmt.Errorf("socks: %v frame of %d bytes is over the gateway's limit of %d: %w", m.FrameType(), len(v), limit, proto.ErrTooLong)
	}
	return proto.Frame{Type: m.FrameType(), Value: v}.AppendBinary(nil)
}

// writeMalformedClose answers a protocol error on a framed connection
// with CLOSE 0xEB (draft-socks6-extensions-00, "Error Handling"), on a
// best-effort basis: the connection is closed next whatever happens.
// c's deadline, set from the caller's context, bounds the write.
func writeMalformedClose(c net.Conn, err error) {
	if isProtocolError(err) {
		proto.WriteFrame(c, proto.Close{Reason: proto.ReplyMalformedRequest})
	}
}

// checkFrame checks the value of a frame of a known type that the client
// reads but does not act on (PING before a REPLY, PONG, ROUTES), so that
// a malformed one is treated as malformed rather than skipped.
func checkFrame(f proto.Frame) error {
	var err error
	switch f.Type {
	case proto.FramePing:
		_, err = proto.ParsePing(f.Value)
	case proto.FramePong:
		_, err = proto.ParsePong(f.Value)
	case proto.FrameRoutes:
		_, err = proto.ParseRoutes(f.Value)
	}
	if err != nil {
		return malformed(f.Type.String(), err)
	}
	return nil
}

// lastKnownFrame is the highest frame type draft-socks6-extensions-00
// defines. A receiver skips a frame of a higher, unknown type (including
// GREASE types); a known type in the wrong direction or state is
// malformed.
const lastKnownFrame = proto.FrameClose

// wrongFrame returns the error for a frame of a known type that has no
// place where it arrived.
func wrongFrame(f proto.Frame, where string) error {
	return malformed(f.Type.String(), fmt.Errorf("unexpected %s: %w", where, proto.ErrMalformed))
}
