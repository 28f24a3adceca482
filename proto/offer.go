package proto

// An AcceptOffer is the value of an ACCEPT_OFFER frame: the gateway, on
// the control connection of a LISTEN, offers an incoming connection. The
// client takes it with a TAKE request carrying Token on a new connection,
// or refuses it with REJECT_OFFER.
//
//	+-------------+-------+----------------+------------+
//	| Listener ID | Token | Caller address | Expires in |
//	+-------------+-------+----------------+------------+
//	|   varint    |  16   |    Variable    |   varint   |
//	+-------------+-------+----------------+------------+
type AcceptOffer struct {
	ListenerID uint64
	Token      Token
	Caller     Addr
	// ExpiresMillis is how long the offer stands, in milliseconds from
	// when the gateway sent it.
	ExpiresMillis uint64
}

// FrameType returns FrameAcceptOffer.
func (AcceptOffer) FrameType() FrameType { return FrameAcceptOffer }

// AppendBinary appends the ACCEPT_OFFER value. It fails with ErrTooLong
// for a number over MaxVarint or a domain name over 255 bytes.
func (o AcceptOffer) AppendBinary(b []byte) ([]byte, error) {
	e := encoder{b: b}
	e.varint(o.ListenerID)
	e.bytes(o.Token[:])
	e.addr(o.Caller)
	e.varint(o.ExpiresMillis)
	return e.result(b)
}

// ParseAcceptOffer decodes an ACCEPT_OFFER value. It fails with
// ErrAddressType for an unknown ATYP and with ErrMalformed for bytes after
// the last field.
func ParseAcceptOffer(b []byte) (AcceptOffer, error) {
	d := decoder{b: b}
	var o AcceptOffer
	o.ListenerID = d.varint()
	d.read(o.Token[:])
	o.Caller = d.addr()
	o.ExpiresMillis = d.varint()
	if err := d.end(); err != nil {
		return AcceptOffer{}, err
	}
	return o, nil
}

// A RejectOffer is the value of a REJECT_OFFER frame: the client refuses
// an offered connection, which the gateway then closes.
//
//	+-------+
//	| Token |
//	+-------+
//	|  16   |
//	+-------+
type RejectOffer struct {
	Token Token
}

// FrameType returns FrameRejectOffer.
func (RejectOffer) FrameType() FrameType { return FrameRejectOffer }

// AppendBinary appends the REJECT_OFFER value.
func (o RejectOffer) AppendBinary(b []byte) ([]byte, error) {
	return append(b, o.Token[:]...), nil
}

// ParseRejectOffer decodes a REJECT_OFFER value, exactly 16 bytes.
func ParseRejectOffer(b []byte) (RejectOffer, error) {
	d := decoder{b: b}
	var o RejectOffer
	d.read(o.Token[:])
	if err := d.end(); err != nil {
		return RejectOffer{}, err
	}
	return o, nil
}
