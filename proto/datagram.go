package proto

// A Datagram is the value of a DATAGRAM frame: one UDP datagram relayed
// inside the stream, after a successful UDP request. The payload is the
// rest of the frame, so an empty datagram is representable.
//
//	+----------------+----------+---------+
//	| Association ID | Address  | Payload |
//	+----------------+----------+---------+
//	|     varint     | Variable | to end  |
//	+----------------+----------+---------+
//
// Addr is the destination from client to gateway and the source from
// gateway to client.
type Datagram struct {
	AssocID uint64
	Addr    Addr
	Payload []byte // nil when empty; aliases the input when parsed
}

// FrameType returns FrameDatagram.
func (Datagram) FrameType() FrameType { return FrameDatagram }

// AppendBinary appends the DATAGRAM value. It fails with ErrTooLong for an
// AssocID over MaxVarint or a domain name over 255 bytes. AppendFrame
// refuses a datagram whose frame value exceeds MaxFrameLen.
func (g Datagram) AppendBinary(b []byte) ([]byte, error) {
	e := encoder{b: b}
	e.varint(g.AssocID)
	e.addr(g.Addr)
	e.bytes(g.Payload)
	return e.result(b)
}

// ParseDatagram decodes a DATAGRAM value. Payload aliases b.
func ParseDatagram(b []byte) (Datagram, error) {
	d := decoder{b: b}
	var g Datagram
	g.AssocID = d.varint()
	g.Addr = d.addr()
	g.Payload = d.rest()
	if d.err != nil {
		return Datagram{}, d.err
	}
	return g, nil
}

// A StreamAck is the value of a STREAM_ACK frame: how many bytes of a
// stream the sender has received, so that the peer can drop them from its
// replay buffer.
//
//	+-----------+--------+
//	| Stream ID | Offset |
//	+-----------+--------+
//	|  varint   | varint |
//	+-----------+--------+
type StreamAck struct {
	StreamID uint64
	Offset   uint64 // bytes of the stream received so far
}

// FrameType returns FrameStreamAck.
func (StreamAck) FrameType() FrameType { return FrameStreamAck }

// AppendBinary appends the STREAM_ACK value. It fails with ErrTooLong for
// a number over MaxVarint.
func (a StreamAck) AppendBinary(b []byte) ([]byte, error) {
	e := encoder{b: b}
	e.varint(a.StreamID)
	e.varint(a.Offset)
	return e.result(b)
}

// ParseStreamAck decodes a STREAM_ACK value.
func ParseStreamAck(b []byte) (StreamAck, error) {
	d := decoder{b: b}
	a := StreamAck{StreamID: d.varint(), Offset: d.varint()}
	if err := d.end(); err != nil {
		return StreamAck{}, err
	}
	return a, nil
}

// A Ping is the value of a PING frame: 8 opaque bytes that the peer
// echoes in a PONG.
type Ping struct {
	Opaque [8]byte
}

// FrameType returns FramePing.
func (Ping) FrameType() FrameType { return FramePing }

// AppendBinary appends the PING value.
func (p Ping) AppendBinary(b []byte) ([]byte, error) { return append(b, p.Opaque[:]...), nil }

// ParsePing decodes a PING value, exactly 8 bytes.
func ParsePing(b []byte) (Ping, error) {
	var p Ping
	err := parseOpaque(b, &p.Opaque)
	return p, err
}

// A Pong is the value of a PONG frame, the answer to a Ping: Pong(ping)
// is the answer.
type Pong struct {
	Opaque [8]byte
}

// FrameType returns FramePong.
func (Pong) FrameType() FrameType { return FramePong }

// AppendBinary appends the PONG value.
func (p Pong) AppendBinary(b []byte) ([]byte, error) { return append(b, p.Opaque[:]...), nil }

// ParsePong decodes a PONG value, exactly 8 bytes.
func ParsePong(b []byte) (Pong, error) {
	var p Pong
	err := parseOpaque(b, &p.Opaque)
	return p, err
}

func parseOpaque(b []byte, o *[8]byte) error {
	d := decoder{b: b}
	d.read(o[:])
	if err := d.end(); err != nil {
		*o = [8]byte{}
		return err
	}
	return nil
}

// A Close is the value of a CLOSE frame: the sender is ending the
// session, and says why.
//
//	+--------+---------+
//	| Reason | Options |
//	+--------+---------+
//	|   1    | to end  |
//	+--------+---------+
//
// Reason is a reply code (ReplySucceeded for a normal end); a DIAGNOSTIC
// option may explain it to a human.
type Close struct {
	Reason  ReplyCode
	Options Options
}

// FrameType returns FrameClose.
func (Close) FrameType() FrameType { return FrameClose }

// AppendBinary appends the CLOSE value. It fails as Options.AppendBinary
// does.
func (c Close) AppendBinary(b []byte) ([]byte, error) {
	e := encoder{b: b}
	e.u8(byte(c.Reason))
	e.options(c.Options)
	return e.result(b)
}

// ParseClose decodes a CLOSE value.
func ParseClose(b []byte) (Close, error) {
	d := decoder{b: b}
	c := Close{Reason: ReplyCode(d.u8())}
	c.Options = d.options()
	if d.err != nil {
		return Close{}, d.err
	}
	return c, nil
}
