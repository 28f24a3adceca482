package proto

import (
	"errors"
	"io"
)

// The Read functions read exactly one message from r and nothing after it.
// They read in pieces whose lengths come from the bytes already read, so
// they never block waiting for bytes the peer did not send. A stream that
// ends early yields a *ParseError wrapping io.ErrUnexpectedEOF (or io.EOF
// before the first byte); malformed input a *ParseError wrapping the
// parser's sentinel.

// maxMsgLen bounds every message the Read functions assemble:
// the longest is a username/password request (1+1+255+1+255).
const maxMsgLen = 1 + 1 + MaxUserPassLen + 1 + MaxUserPassLen

// readMsg grows a message in buf by reading exactly the bytes parse asks
// for. need returns how many bytes the message needs in total given what
// is in b so far, or an error.
func readMsg(r io.Reader, msg string, need func(b []byte) (int, error)) ([]byte, error) {
	var buf [maxMsgLen]byte
	n := 0
	for {
		want, err := need(buf[:n])
		if err != nil {
			return nil, &ParseError{Msg: msg, Offset: n, Err: err}
		}
		if want <= n {
			return buf[:n], nil
		}
		if want > len(buf) {
			return nil, &ParseError{Msg: msg, Offset: n, Err: ErrTooLong}
		}
		m, err := io.ReadFull(r, buf[n:want])
		n += m
		if err != nil {
			if errors.Is(err, io.EOF) && n > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, &ParseError{Msg: msg, Offset: n, Err: err}
		}
	}
}

// addrNeed returns the length of the address that starts at b[0], given
// the bytes of it so far.
func addrNeed(b []byte) (int, error) {
	if len(b) < 1 {
		return 1, nil
	}
	switch AddrType(b[0]) {
	case AddrTypeIPv4:
		return 1 + 4 + 2, nil
	case AddrTypeIPv6:
		return 1 + 16 + 2, nil
	case AddrTypeFQDN:
		if len(b) < 2 {
			return 2, nil
		}
		if b[1] == 0 {
			return 0, ErrMalformed
		}
		return 2 + int(b[1]) + 2, nil
	}
	return 0, ErrAddressType
}

// headNeed returns the length of a message made of a fixed head of h bytes
// (whose first byte is the version v) followed by an address.
func headNeed(v byte, h int) func(b []byte) (int, error) {
	return func(b []byte) (int, error) {
		if len(b) >= 1 && b[0] != v {
			return 0, ErrVersion
		}
		if len(b) < h {
			return h, nil
		}
		n, err := addrNeed(b[h:])
		return h + n, err
	}
}

// ReadGreeting reads a Greeting from r.
func ReadGreeting(r io.Reader) (Greeting, error) {
	b, err := readMsg(r, "greeting", func(b []byte) (int, error) {
		// Check VER as soon as it is in: a peer that speaks something
		// else (HTTP, TLS) must not make us wait for 2+b[1] bytes.
		if len(b) >= 1 && b[0] != Version5 {
			return 0, ErrVersion
		}
		if len(b) < 2 {
			return 2, nil
		}
		return 2 + int(b[1]), nil
	})
	if err != nil {
		return Greeting{}, err
	}
	g, _, err := ParseGreeting(b)
	if err != nil {
		return Greeting{}, &ParseError{Msg: "greeting", Err: err}
	}
	return g, nil
}

// ReadMethodSelection reads a MethodSelection from r.
func ReadMethodSelection(r io.Reader) (MethodSelection, error) {
	b, err := readMsg(r, "method selection", fixedNeed(2))
	if err != nil {
		return MethodSelection{}, err
	}
	m, _, err := ParseMethodSelection(b)
	if err != nil {
		return MethodSelection{}, &ParseError{Msg: "method selection", Err: err}
	}
	return m, nil
}

func fixedNeed(n int) func([]byte) (int, error) {
	return func([]byte) (int, error) { return n, nil }
}

// ReadUserPassRequest reads a UserPassRequest from r.
func ReadUserPassRequest(r io.Reader) (UserPassRequest, error) {
	b, err := readMsg(r, "username/password request", func(b []byte) (int, error) {
		if len(b) >= 1 && b[0] != UserPassVersion {
			return 0, ErrVersion
		}
		if len(b) < 2 {
			return 2, nil
		}
		ul := int(b[1])
		if len(b) < 3+ul {
			return 3 + ul, nil
		}
		return 3 + ul + int(b[2+ul]), nil
	})
	if err != nil {
		return UserPassRequest{}, err
	}
	u, _, err := ParseUserPassRequest(b)
	if err != nil {
		return UserPassRequest{}, &ParseError{Msg: "username/password request", Err: err}
	}
	return u, nil
}

// ReadUserPassReply reads a UserPassReply from r.
func ReadUserPassReply(r io.Reader) (UserPassReply, error) {
	b, err := readMsg(r, "username/password reply", fixedNeed(2))
	if err != nil {
		return UserPassReply{}, err
	}
	u, _, err := ParseUserPassReply(b)
	if err != nil {
		return UserPassReply{}, &ParseError{Msg: "username/password reply", Err: err}
	}
	return u, nil
}

// ReadRequest reads a Request from r.
func ReadRequest(r io.Reader) (Request, error) {
	b, err := readMsg(r, "request", headNeed(Version5, 3))
	if err != nil {
		return Request{}, err
	}
	q, _, err := ParseRequest(b)
	if err != nil {
		return Request{}, &ParseError{Msg: "request", Err: err}
	}
	return q, nil
}

// ReadReply reads a Reply from r.
func ReadReply(r io.Reader) (Reply, error) {
	b, err := readMsg(r, "reply", headNeed(Version5, 3))
	if err != nil {
		return Reply{}, err
	}
	q, _, err := ParseReply(b)
	if err != nil {
		return Reply{}, &ParseError{Msg: "reply", Err: err}
	}
	return q, nil
}

// Write appends m's encoding to a small stack buffer and writes it to w in
// one call, so that a message never goes out in pieces.
func Write(w io.Writer, m interface {
	AppendBinary([]byte) ([]byte, error)
}) error {
	var buf [maxMsgLen]byte
	b, err := m.AppendBinary(buf[:0])
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}
