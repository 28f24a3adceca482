package proto

import (
	"encoding/hex"
	"errors"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Option limits.
const (
	// MaxOptionsLen bounds the options of one message, Kind and Length
	// fields included.
	MaxOptionsLen = 16384
	// MaxDiagnosticLen bounds the text of a DIAGNOSTIC option.
	MaxDiagnosticLen = 1024
)

// An OptionKind is the Kind field of an option.
type OptionKind uint64

// Option kinds of the SOCKS6 extensions. A receiver ignores a kind it does
// not know, and [ParseOptions] keeps it so that it re-encodes exactly.
const (
	OptionFamily        OptionKind = 0x01 // REQUEST (CONNECT, UDP, RESOLVE): address families, see Family
	OptionConnected     OptionKind = 0x02 // REPLY (CONNECT): the address the gateway connected to
	OptionHopLimit      OptionKind = 0x03 // REQUEST: gateways the request may still cross
	OptionDiagnostic    OptionKind = 0x04 // HELLO_ACK, REPLY, CLOSE: UTF-8 text for humans
	OptionReservedPorts OptionKind = 0x05 // HELLO_ACK: the user's reserved ports
	OptionLimits        OptionKind = 0x06 // HELLO_ACK: the session's limits, see Limits
	OptionOfferTimeout  OptionKind = 0x07 // REQUEST and REPLY (LISTEN): offer lifetime in milliseconds
	OptionPublicAddr    OptionKind = 0x08 // REPLY (LISTEN, UDP): a public address; may repeat
	OptionIdleTimeout   OptionKind = 0x09 // HELLO_ACK (resume window); REQUEST and REPLY (UDP): seconds
	OptionProof         OptionKind = 0x0A // REQUEST (TAKE on a TLS session): a Proof
	OptionAttach        OptionKind = 0x0B // REQUEST and REPLY (CONNECT, TAKE): see Attach
)

// String returns the option kind's name as the draft spells it
// ("HOP_LIMIT"), "GREASE(0x…)" for a GREASE kind, or the code in hex.
func (k OptionKind) String() string {
	switch k {
	case OptionFamily:
		return "FAMILY"
	case OptionConnected:
		return "CONNECTED"
	case OptionHopLimit:
		return "HOP_LIMIT"
	case OptionDiagnostic:
		return "DIAGNOSTIC"
	case OptionReservedPorts:
		return "RESERVED_PORTS"
	case OptionLimits:
		return "LIMITS"
	case OptionOfferTimeout:
		return "OFFER_TIMEOUT"
	case OptionPublicAddr:
		return "PUBLIC_ADDR"
	case OptionIdleTimeout:
		return "IDLE_TIMEOUT"
	case OptionProof:
		return "PROOF"
	case OptionAttach:
		return "ATTACH"
	}
	if IsGREASE(uint64(k)) {
		return "GREASE(0x" + strconv.FormatUint(uint64(k), 16) + ")"
	}
	return "option(0x" + strconv.FormatUint(uint64(k), 16) + ")"
}

// known reports whether proto knows k's value format.
func (k OptionKind) known() bool { return k >= OptionFamily && k <= OptionAttach }

// Repeatable reports whether an option of kind k may appear more than once
// in a message: PUBLIC_ADDR, and any kind proto does not know (it cannot
// tell whether a later revision lets it repeat).
func (k OptionKind) Repeatable() bool { return k == OptionPublicAddr || !k.known() }

// An Option is one option as it appears on the wire. Value holds the
// undecoded bytes; the methods of [Options] decode the kinds proto knows.
//
//	+----------------+------------------+-----------------+
//	| Kind (varint)  | Length (varint)  | Value (Length)  |
//	+----------------+------------------+-----------------+
//
// Its String and GoString methods hide the value of a PROOF option and
// of an ATTACH option of a REQUEST, which holds a proof.
type Option struct {
	Kind  OptionKind
	Value []byte // nil when Length is zero
}

// secret reports whether o's value holds a proof.
func (o Option) secret() bool {
	return o.Kind == OptionProof || o.Kind == OptionAttach && attachForm(o.Value) != attachReply
}

// String returns "KIND=value": the text of a DIAGNOSTIC, REDACTED for a
// value that holds a proof, and the value in hex otherwise.
func (o Option) String() string {
	if o.secret() {
		return o.Kind.String() + "=REDACTED"
	}
	if o.Kind == OptionDiagnostic {
		return o.Kind.String() + "=" + strconv.Quote(string(o.Value))
	}
	return o.Kind.String() + "=" + hex.EncodeToString(o.Value)
}

// GoString returns o as Go syntax, hiding a value that holds a proof.
func (o Option) GoString() string {
	v := "REDACTED"
	if !o.secret() {
		v = "[]byte(" + strconv.Quote(string(o.Value)) + ")"
		if o.Value == nil {
			v = "nil"
		}
	}
	return "proto.Option{Kind:0x" + strconv.FormatUint(uint64(o.Kind), 16) + ", Value:" + v + "}"
}

// Options is the list of options at the end of a HELLO, HELLO_ACK,
// REQUEST, REPLY or CLOSE value, in wire order. A parsed Options holds
// well-formed values for every kind proto knows, at most one of each
// except PUBLIC_ADDR.
type Options []Option

// String returns the options as [KIND=value …], hiding proofs.
func (o Options) String() string {
	var s strings.Builder
	s.WriteByte('[')
	for i, opt := range o {
		if i > 0 {
			s.WriteByte(' ')
		}
		s.WriteString(opt.String())
	}
	s.WriteByte(']')
	return s.String()
}

// GoString returns the options as Go syntax, hiding proofs.
func (o Options) GoString() string {
	if o == nil {
		return "proto.Options(nil)"
	}
	var s strings.Builder
	s.WriteString("proto.Options{")
	for i, opt := range o {
		if i > 0 {
			s.WriteString(", ")
		}
		s.WriteString(opt.GoString())
	}
	s.WriteByte('}')
	return s.String()
}

// ParseOptions decodes all of b as a sequence of options. It fails with
// ErrTooLong if b is longer than MaxOptionsLen or an option's Length is,
// with ErrShortBuffer if b ends inside an option, and with ErrMalformed
// (ErrTooLong, ErrAddressType) for a known kind with a bad value or a
// non-repeatable kind that appears twice. Option values alias b. It
// returns nil for an empty b.
func ParseOptions(b []byte) (Options, error) {
	if len(b) > MaxOptionsLen {
		return nil, ErrTooLong
	}
	// First pass: check everything and count, so that the one
	// allocation has the right size.
	n := 0
	var seen uint32
	for d := (decoder{b: b}); len(d.b) > 0; n++ {
		k, v, err := parseOption(&d)
		if err != nil {
			return nil, err
		}
		if k.known() && !k.Repeatable() {
			if seen&(1<<k) != 0 {
				return nil, ErrMalformed
			}
			seen |= 1 << k
		}
		if err := checkOption(k, v); err != nil {
			return nil, err
		}
	}
	if n == 0 {
		return nil, nil
	}
	o := make(Options, 0, n)
	for d := (decoder{b: b}); len(d.b) > 0; {
		k, v, _ := parseOption(&d)
		o = append(o, Option{Kind: k, Value: v})
	}
	return o, nil
}

// parseOption reads one option's kind and value from d.
func parseOption(d *decoder) (OptionKind, []byte, error) {
	k := d.varint()
	l := d.varint()
	if d.err != nil {
		return 0, nil, d.err
	}
	if l > MaxOptionsLen {
		return 0, nil, ErrTooLong
	}
	v := d.bytes(int(l))
	if d.err != nil {
		return 0, nil, d.err
	}
	if l == 0 {
		v = nil
	}
	return OptionKind(k), v, nil
}

// checkOption checks the value of an option of a kind proto knows.
// Inside an option, whose Length says where it ends, running out of bytes
// is ErrMalformed, not ErrShortBuffer.
func checkOption(k OptionKind, v []byte) error {
	var err error
	switch k {
	case OptionFamily:
		if len(v) != 1 || v[0] > byte(FamilyIPv6Only) {
			return ErrMalformed
		}
	case OptionHopLimit:
		if len(v) != 1 {
			return ErrMalformed
		}
	case OptionConnected, OptionPublicAddr:
		var n int
		if _, n, err = ParseAddr(v); err == nil && n != len(v) {
			err = ErrMalformed
		}
	case OptionDiagnostic:
		if len(v) > MaxDiagnosticLen {
			return ErrTooLong
		}
		if !utf8.Valid(v) {
			return ErrMalformed
		}
	case OptionReservedPorts:
		d := decoder{b: v}
		for len(d.b) > 0 && d.err == nil {
			if p := d.varint(); d.err == nil && (p == 0 || p > math.MaxUint16) {
				d.fail(ErrMalformed)
			}
		}
		err = d.err
	case OptionLimits:
		d := decoder{b: v}
		for range 4 {
			d.varint()
		}
		err = d.end()
	case OptionOfferTimeout, OptionIdleTimeout:
		d := decoder{b: v}
		d.varint()
		err = d.end()
	case OptionProof:
		if len(v) != len(Proof{}) {
			return ErrMalformed
		}
	case OptionAttach:
		if attachForm(v) == 0 {
			return ErrMalformed
		}
	}
	if errors.Is(err, ErrShortBuffer) {
		err = ErrMalformed
	}
	return err
}

// AppendBinary appends the encoded options. It fails as ParseOptions
// would on the result: with ErrTooLong if they exceed MaxOptionsLen, and
// with ErrMalformed for a bad value of a known kind or a non-repeatable
// kind given twice.
func (o Options) AppendBinary(b []byte) ([]byte, error) {
	var seen uint32
	e := encoder{b: b}
	for _, opt := range o {
		k := opt.Kind
		if k.known() && !k.Repeatable() {
			if seen&(1<<k) != 0 {
				return b, ErrMalformed
			}
			seen |= 1 << k
		}
		if err := checkOption(k, opt.Value); err != nil {
			return b, err
		}
		if len(opt.Value) > MaxOptionsLen {
			return b, ErrTooLong
		}
		e.varint(uint64(k))
		e.varint(uint64(len(opt.Value)))
		e.bytes(opt.Value)
		if e.err == nil && len(e.b)-len(b) > MaxOptionsLen {
			return b, ErrTooLong
		}
	}
	return e.result(b)
}

// Get returns the first option of kind k.
func (o Options) Get(k OptionKind) (Option, bool) {
	for _, opt := range o {
		if opt.Kind == k {
			return opt, true
		}
	}
	return Option{}, false
}

// value returns the value of the first option of kind k if it is well
// formed. (Options built by hand may hold anything.)
func (o Options) value(k OptionKind) ([]byte, bool) {
	opt, ok := o.Get(k)
	if !ok || checkOption(k, opt.Value) != nil {
		return nil, false
	}
	return opt.Value, true
}

// A Family is the value of a FAMILY option: which address families the
// gateway may try for a name, and in which order.
type Family uint8

// Families.
const (
	FamilyAny        Family = 0 // Happy Eyeballs v2 order (RFC 8305), the default
	FamilyPreferIPv4 Family = 1
	FamilyPreferIPv6 Family = 2
	FamilyIPv4Only   Family = 3
	FamilyIPv6Only   Family = 4
)

// String returns the family's name, or its code if unknown.
func (f Family) String() string {
	switch f {
	case FamilyAny:
		return "any"
	case FamilyPreferIPv4:
		return "prefer-ipv4"
	case FamilyPreferIPv6:
		return "prefer-ipv6"
	case FamilyIPv4Only:
		return "ipv4-only"
	case FamilyIPv6Only:
		return "ipv6-only"
	}
	return "family(" + strconv.Itoa(int(f)) + ")"
}

// FamilyOption returns a FAMILY option.
func FamilyOption(f Family) Option {
	return Option{Kind: OptionFamily, Value: []byte{byte(f)}}
}

// Family returns the value of the FAMILY option.
func (o Options) Family() (Family, bool) {
	v, ok := o.value(OptionFamily)
	if !ok {
		return 0, false
	}
	return Family(v[0]), true
}

// ConnectedOption returns a CONNECTED option. It fails with ErrTooLong for
// a domain name over 255 bytes.
func ConnectedOption(a Addr) (Option, error) {
	return addrOption(OptionConnected, a)
}

func addrOption(k OptionKind, a Addr) (Option, error) {
	v, err := a.AppendBinary(make([]byte, 0, a.EncodedLen()))
	if err != nil {
		return Option{}, err
	}
	return Option{Kind: k, Value: v}, nil
}

// Connected returns the address in the CONNECTED option.
func (o Options) Connected() (Addr, bool) {
	v, ok := o.value(OptionConnected)
	if !ok {
		return Addr{}, false
	}
	a, _, _ := ParseAddr(v)
	return a, true
}

// HopLimitOption returns a HOP_LIMIT option.
func HopLimitOption(n uint8) Option {
	return Option{Kind: OptionHopLimit, Value: []byte{n}}
}

// HopLimit returns the value of the HOP_LIMIT option.
func (o Options) HopLimit() (uint8, bool) {
	v, ok := o.value(OptionHopLimit)
	if !ok {
		return 0, false
	}
	return v[0], true
}

// DiagnosticOption returns a DIAGNOSTIC option carrying s. Invalid UTF-8
// in s is replaced with U+FFFD, and text past MaxDiagnosticLen bytes is
// cut at a character boundary, so the option is always well formed.
func DiagnosticOption(s string) Option {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) > MaxDiagnosticLen {
		i := MaxDiagnosticLen
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		s = s[:i]
	}
	var v []byte
	if s != "" {
		v = []byte(s)
	}
	return Option{Kind: OptionDiagnostic, Value: v}
}

// Diagnostic returns the text of the DIAGNOSTIC option. It is for humans
// only: log it (quoted), never act on it.
func (o Options) Diagnostic() (string, bool) {
	v, ok := o.value(OptionDiagnostic)
	return string(v), ok
}

// ReservedPortsOption returns a RESERVED_PORTS option. Port 0 is not a
// port; the option does not encode with it.
func ReservedPortsOption(ports []uint16) Option {
	var v []byte
	for _, p := range ports {
		v, _ = AppendVarint(v, uint64(p))
	}
	return Option{Kind: OptionReservedPorts, Value: v}
}

// ReservedPorts returns the ports in the RESERVED_PORTS option.
func (o Options) ReservedPorts() ([]uint16, bool) {
	v, ok := o.value(OptionReservedPorts)
	if !ok {
		return nil, false
	}
	// Each port takes at least one byte, so len(v) bounds the count.
	ports := make([]uint16, 0, len(v))
	for d := (decoder{b: v}); len(d.b) > 0; {
		ports = append(ports, uint16(d.varint()))
	}
	return ports, true
}

// Limits is the value of a LIMITS option: the session's limits, as the
// gateway enforces them.
type Limits struct {
	MaxListeners      uint64
	MaxPendingOffers  uint64
	MaxUDPAssocs      uint64
	ReplayBufferBytes uint64
}

// LimitsOption returns a LIMITS option. It fails with ErrTooLong if a
// limit is larger than MaxVarint.
func LimitsOption(l Limits) (Option, error) {
	e := encoder{}
	for _, x := range [...]uint64{l.MaxListeners, l.MaxPendingOffers, l.MaxUDPAssocs, l.ReplayBufferBytes} {
		e.varint(x)
	}
	if e.err != nil {
		return Option{}, e.err
	}
	return Option{Kind: OptionLimits, Value: e.b}, nil
}

// Limits returns the value of the LIMITS option.
func (o Options) Limits() (Limits, bool) {
	v, ok := o.value(OptionLimits)
	if !ok {
		return Limits{}, false
	}
	d := decoder{b: v}
	return Limits{
		MaxListeners:      d.varint(),
		MaxPendingOffers:  d.varint(),
		MaxUDPAssocs:      d.varint(),
		ReplayBufferBytes: d.varint(),
	}, true
}

// OfferTimeoutOption returns an OFFER_TIMEOUT option of d, in whole
// milliseconds; a negative d counts as zero.
func OfferTimeoutOption(d time.Duration) Option {
	return durationOption(OptionOfferTimeout, d, time.Millisecond)
}

// OfferTimeout returns the value of the OFFER_TIMEOUT option. A value too
// large for a time.Duration saturates.
func (o Options) OfferTimeout() (time.Duration, bool) {
	return o.duration(OptionOfferTimeout, time.Millisecond)
}

// IdleTimeoutOption returns an IDLE_TIMEOUT option of d, in whole seconds;
// a negative d counts as zero.
func IdleTimeoutOption(d time.Duration) Option {
	return durationOption(OptionIdleTimeout, d, time.Second)
}

// IdleTimeout returns the value of the IDLE_TIMEOUT option. A value too
// large for a time.Duration saturates.
func (o Options) IdleTimeout() (time.Duration, bool) {
	return o.duration(OptionIdleTimeout, time.Second)
}

func durationOption(k OptionKind, d, unit time.Duration) Option {
	n := uint64(max(d, 0) / unit)
	v, _ := AppendVarint(nil, n) // at most 2^63/10^6 < MaxVarint
	return Option{Kind: k, Value: v}
}

func (o Options) duration(k OptionKind, unit time.Duration) (time.Duration, bool) {
	v, ok := o.value(k)
	if !ok {
		return 0, false
	}
	n, _, _ := ParseVarint(v)
	if n > uint64(math.MaxInt64/unit) {
		return math.MaxInt64, true
	}
	return time.Duration(n) * unit, true
}

// PublicAddrOption returns a PUBLIC_ADDR option. It fails with ErrTooLong
// for a domain name over 255 bytes.
func PublicAddrOption(a Addr) (Option, error) {
	return addrOption(OptionPublicAddr, a)
}

// PublicAddrs returns the addresses of every PUBLIC_ADDR option, in order.
func (o Options) PublicAddrs() []Addr {
	var addrs []Addr
	for _, opt := range o {
		if opt.Kind != OptionPublicAddr || checkOption(opt.Kind, opt.Value) != nil {
			continue
		}
		a, _, _ := ParseAddr(opt.Value)
		addrs = append(addrs, a)
	}
	return addrs
}

// ProofOption returns a PROOF option.
func ProofOption(p Proof) Option {
	return Option{Kind: OptionProof, Value: append([]byte(nil), p[:]...)}
}

// Proof returns the value of the PROOF option.
func (o Options) Proof() (Proof, bool) {
	v, ok := o.value(OptionProof)
	if !ok {
		return Proof{}, false
	}
	return Proof(v), true
}

// An Attach is the value of an ATTACH option in a REQUEST (CONNECT or
// TAKE on a TLS session): it attaches the new stream to a session so that
// the stream can be resumed, or re-attaches an orphaned one. In the REPLY
// the option holds only an offset; see [AttachReplyOption].
//
//	+------------+--------+-------+
//	| Session ID | Offset | Proof |
//	+------------+--------+-------+
//	|     16     | varint |  32   |
//	+------------+--------+-------+
type Attach struct {
	SessionID SessionID
	// Offset is how many bytes of the stream the client has received
	// from the gateway: 0 for a new stream.
	Offset uint64
	Proof  Proof
}

// The two layouts of an ATTACH value.
const (
	attachRequest = 1
	attachReply   = 2
)

// attachForm returns which layout v has, or 0 for neither. They cannot be
// confused: the reply form is one varint (at most 8 bytes), the request
// form at least 49 bytes.
func attachForm(v []byte) int {
	d := decoder{b: v}
	if len(v) > 8 {
		var sid SessionID
		d.read(sid[:])
		d.varint()
		var p Proof
		d.read(p[:])
		if d.end() == nil {
			return attachRequest
		}
		return 0
	}
	d.varint()
	if d.end() == nil {
		return attachReply
	}
	return 0
}

// AttachOption returns the ATTACH option of a REQUEST. It fails with
// ErrTooLong if the offset is larger than MaxVarint.
func AttachOption(a Attach) (Option, error) {
	e := encoder{b: make([]byte, 0, 16+8+32)}
	e.bytes(a.SessionID[:])
	e.varint(a.Offset)
	e.bytes(a.Proof[:])
	if e.err != nil {
		return Option{}, e.err
	}
	return Option{Kind: OptionAttach, Value: e.b}, nil
}

// AttachReplyOption returns the ATTACH option of a REPLY: how many bytes
// of the stream the gateway has received from the client. It fails with
// ErrTooLong if the offset is larger than MaxVarint.
func AttachReplyOption(offset uint64) (Option, error) {
	v, err := AppendVarint(nil, offset)
	if err != nil {
		return Option{}, err
	}
	return Option{Kind: OptionAttach, Value: v}, nil
}

// Attach returns the value of an ATTACH option in the REQUEST form.
func (o Options) Attach() (Attach, bool) {
	v, ok := o.value(OptionAttach)
	if !ok || attachForm(v) != attachRequest {
		return Attach{}, false
	}
	var a Attach
	d := decoder{b: v}
	d.read(a.SessionID[:])
	a.Offset = d.varint()
	d.read(a.Proof[:])
	return a, true
}

// AttachOffset returns the offset of an ATTACH option in the REPLY form.
func (o Options) AttachOffset() (uint64, bool) {
	v, ok := o.value(OptionAttach)
	if !ok || attachForm(v) != attachReply {
		return 0, false
	}
	n, _, _ := ParseVarint(v)
	return n, true
}

// checkAttach checks that an ATTACH option, if o has one, has the layout
// of the frame it is in.
func (o Options) checkAttach(form int) error {
	if opt, ok := o.Get(OptionAttach); ok && attachForm(opt.Value) != form {
		return ErrMalformed
	}
	return nil
}
