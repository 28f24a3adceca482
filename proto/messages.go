package proto

import "strconv"

// A Greeting is the client's first message: the methods it offers
// (RFC 1928 section 3).
//
//	+-----+----------+----------+
//	| VER | NMETHODS | METHODS  |
//	+-----+----------+----------+
//	|  1  |    1     | 1 to 255 |
//	+-----+----------+----------+
type Greeting struct {
	Methods []Method
}

// AppendBinary appends the encoded greeting.
func (g Greeting) AppendBinary(b []byte) ([]byte, error) {
	if len(g.Methods) == 0 {
		return b, ErrMalformed
	}
	if len(g.Methods) > MaxMethods {
		return b, ErrTooLong
	}
	b = append(b, Version5, byte(len(g.Methods)))
	for _, m := range g.Methods {
		b = append(b, byte(m))
	}
	return b, nil
}

// Offers reports whether g offers method m.
func (g Greeting) Offers(m Method) bool {
	for _, x := range g.Methods {
		if x == m {
			return true
		}
	}
	return false
}

// ParseGreeting decodes a greeting from the front of b. NMETHODS must not
// be zero.
func ParseGreeting(b []byte) (Greeting, int, error) {
	if len(b) < 2 {
		if len(b) == 1 && b[0] != Version5 {
			return Greeting{}, 0, ErrVersion
		}
		return Greeting{}, 0, ErrShortBuffer
	}
	if b[0] != Version5 {
		return Greeting{}, 0, ErrVersion
	}
	n := int(b[1])
	if n == 0 {
		return Greeting{}, 0, ErrMalformed
	}
	if len(b) < 2+n {
		return Greeting{}, 0, ErrShortBuffer
	}
	g := Greeting{Methods: make([]Method, n)}
	for i := range n {
		g.Methods[i] = Method(b[2+i])
	}
	return g, 2 + n, nil
}

// A MethodSelection is the server's answer to a Greeting.
//
//	+-----+--------+
//	| VER | METHOD |
//	+-----+--------+
//	|  1  |   1    |
//	+-----+--------+
type MethodSelection struct {
	Method Method
}

// AppendBinary appends the encoded method selection.
func (m MethodSelection) AppendBinary(b []byte) ([]byte, error) {
	return append(b, Version5, byte(m.Method)), nil
}

// ParseMethodSelection decodes a method selection from the front of b.
func ParseMethodSelection(b []byte) (MethodSelection, int, error) {
	if len(b) < 2 {
		return MethodSelection{}, 0, ErrShortBuffer
	}
	if b[0] != Version5 {
		return MethodSelection{}, 0, ErrVersion
	}
	return MethodSelection{Method: Method(b[1])}, 2, nil
}

// A UserPassRequest carries a username and password (RFC 1929 section 2).
// Its String and GoString methods hide the password, so no fmt verb
// prints it. (proto does not import log/slog; log the Username field, not
// the value.)
//
//	+-----+------+----------+------+----------+
//	| VER | ULEN |  UNAME   | PLEN |  PASSWD  |
//	+-----+------+----------+------+----------+
//	|  1  |  1   | 1 to 255 |  1   | 1 to 255 |
//	+-----+------+----------+------+----------+
//
// Empty fields are accepted on parse (some clients send an empty password)
// and left to the authenticator to refuse.
type UserPassRequest struct {
	Username string
	Password string
}

// AppendBinary appends the encoded request.
func (u UserPassRequest) AppendBinary(b []byte) ([]byte, error) {
	if len(u.Username) > MaxUserPassLen || len(u.Password) > MaxUserPassLen {
		return b, ErrTooLong
	}
	b = append(b, UserPassVersion, byte(len(u.Username)))
	b = append(b, u.Username...)
	b = append(b, byte(len(u.Password)))
	return append(b, u.Password...), nil
}

// String hides the password so that a UserPassRequest printed by mistake
// leaks nothing.
func (u UserPassRequest) String() string { return "user=" + u.Username + " password=REDACTED" }

// GoString hides the password from the %#v verb too.
func (u UserPassRequest) GoString() string {
	return "proto.UserPassRequest{Username:" + strconv.Quote(u.Username) + ", Password:REDACTED}"
}

// ParseUserPassRequest decodes a username/password request from the front
// of b.
func ParseUserPassRequest(b []byte) (UserPassRequest, int, error) {
	if len(b) < 2 {
		if len(b) == 1 && b[0] != UserPassVersion {
			return UserPassRequest{}, 0, ErrVersion
		}
		return UserPassRequest{}, 0, ErrShortBuffer
	}
	if b[0] != UserPassVersion {
		return UserPassRequest{}, 0, ErrVersion
	}
	ul := int(b[1])
	if len(b) < 2+ul+1 {
		return UserPassRequest{}, 0, ErrShortBuffer
	}
	pl := int(b[2+ul])
	if len(b) < 3+ul+pl {
		return UserPassRequest{}, 0, ErrShortBuffer
	}
	return UserPassRequest{
		Username: string(b[2 : 2+ul]),
		Password: string(b[3+ul : 3+ul+pl]),
	}, 3 + ul + pl, nil
}

// A UserPassReply is the server's answer to a UserPassRequest.
//
//	+-----+--------+
//	| VER | STATUS |
//	+-----+--------+
//	|  1  |   1    |
//	+-----+--------+
type UserPassReply struct {
	Status uint8 // UserPassSuccess or any other value for failure
}

// AppendBinary appends the encoded reply.
func (u UserPassReply) AppendBinary(b []byte) ([]byte, error) {
	return append(b, UserPassVersion, u.Status), nil
}

// ParseUserPassReply decodes a username/password reply from the front of b.
func ParseUserPassReply(b []byte) (UserPassReply, int, error) {
	if len(b) < 2 {
		return UserPassReply{}, 0, ErrShortBuffer
	}
	if b[0] != UserPassVersion {
		return UserPassReply{}, 0, ErrVersion
	}
	return UserPassReply{Status: b[1]}, 2, nil
}

// A Request is a client's command (RFC 1928 section 4).
//
//	+-----+-----+-------+------+----------+----------+
//	| VER | CMD |  RSV  | ATYP | DST.ADDR | DST.PORT |
//	+-----+-----+-------+------+----------+----------+
//	|  1  |  1  | X'00' |  1   | Variable |    2     |
//	+-----+-----+-------+------+----------+----------+
//
// The parser ignores RSV, as most servers do, because some old clients
// send garbage there.
type Request struct {
	Command Command
	Addr    Addr
}

// AppendBinary appends the encoded request.
func (r Request) AppendBinary(b []byte) ([]byte, error) {
	out, err := r.Addr.AppendBinary(append(b, Version5, byte(r.Command), 0))
	if err != nil {
		return b, err
	}
	return out, nil
}

// ParseRequest decodes a request from the front of b. An unknown command is
// not an error here: the server answers it with "command not supported".
func ParseRequest(b []byte) (Request, int, error) {
	if len(b) < 1 {
		return Request{}, 0, ErrShortBuffer
	}
	if b[0] != Version5 {
		return Request{}, 0, ErrVersion
	}
	if len(b) < 4 {
		return Request{}, 0, ErrShortBuffer
	}
	a, n, err := ParseAddr(b[3:])
	if err != nil {
		return Request{}, 0, err
	}
	return Request{Command: Command(b[1]), Addr: a}, 3 + n, nil
}

// A Reply is the server's answer to a Request (RFC 1928 section 6). BIND
// sends two.
//
//	+-----+-----+-------+------+----------+----------+
//	| VER | REP |  RSV  | ATYP | BND.ADDR | BND.PORT |
//	+-----+-----+-------+------+----------+----------+
//	|  1  |  1  | X'00' |  1   | Variable |    2     |
//	+-----+-----+-------+------+----------+----------+
type Reply struct {
	Code ReplyCode
	Addr Addr
}

// AppendBinary appends the encoded reply.
func (r Reply) AppendBinary(b []byte) ([]byte, error) {
	out, err := r.Addr.AppendBinary(append(b, Version5, byte(r.Code), 0))
	if err != nil {
		return b, err
	}
	return out, nil
}

// ParseReply decodes a reply from the front of b.
func ParseReply(b []byte) (Reply, int, error) {
	if len(b) < 1 {
		return Reply{}, 0, ErrShortBuffer
	}
	if b[0] != Version5 {
		return Reply{}, 0, ErrVersion
	}
	if len(b) < 4 {
		return Reply{}, 0, ErrShortBuffer
	}
	a, n, err := ParseAddr(b[3:])
	if err != nil {
		return Reply{}, 0, err
	}
	return Reply{Code: ReplyCode(b[1]), Addr: a}, 3 + n, nil
}

// A UDPHeader prefixes every datagram relayed by UDP ASSOCIATE
// (RFC 1928 section 7). The payload follows it in the same datagram.
//
//	+-----+------+------+----------+----------+----------+
//	| RSV | FRAG | ATYP | DST.ADDR | DST.PORT |   DATA   |
//	+-----+------+------+----------+----------+----------+
//	|  2  |  1   |  1   | Variable |    2     | Variable |
//	+-----+------+------+----------+----------+----------+
type UDPHeader struct {
	Frag uint8 // fragment number; 0 is a whole datagram
	Addr Addr
}

// AppendBinary appends the encoded header (not the payload).
func (h UDPHeader) AppendBinary(b []byte) ([]byte, error) {
	out, err := h.Addr.AppendBinary(append(b, 0, 0, h.Frag))
	if err != nil {
		return b, err
	}
	return out, nil
}

// ParseUDPHeader decodes a UDP request header from the front of b; the
// payload is b[n:]. A nonzero RSV is malformed.
func ParseUDPHeader(b []byte) (UDPHeader, int, error) {
	if len(b) < 4 {
		return UDPHeader{}, 0, ErrShortBuffer
	}
	if b[0] != 0 || b[1] != 0 {
		return UDPHeader{}, 0, ErrMalformed
	}
	a, n, err := ParseAddr(b[3:])
	if err != nil {
		return UDPHeader{}, 0, err
	}
	return UDPHeader{Frag: b[2], Addr: a}, 3 + n, nil
}
