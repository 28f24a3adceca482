package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/socks6/socks6/proto"
)

// Control connections: limits and errors.
const (
	// maxControlInflight caps a control connection's outstanding control
	// requests; more are answered with QuotaExceeded.
	maxControlInflight = 16
	// helloMaxLen is the largest HELLO a gateway must accept (the
	// draft's Pipelining section).
	helloMaxLen = 16384
)

var (
	// errControlDone ends a control connection that the client closed
	// in order (CLOSE, or EOF between frames).
	errControlDone = errors.New("control connection closed by the client")
	// errMalformed is a malformed frame or request: the gateway sends
	// CLOSE 0xEB and closes.
	errMalformed = &ReplyError{Code: proto.ReplyMalformedRequest, Err: errors.New("malformed frame")}
	// errAssocIdle ends a UDP association that carried no datagram for
	// its idle timeout.
	errAssocIdle = errors.New("UDP association idle")
)

// malformed wraps a protocol violation with its reply code.
func malformed(format string, args ...any) error {
	return &ReplyError{Code: proto.ReplyMalformedRequest, Err: fmt.Errorf(format, args...)}
}

// features returns the feature bits the gateway offers this session.
func (ss *session) features() proto.Features {
	f := proto.FeatureResolve | proto.FeatureUDP
	if !ss.st.Listen.Disabled && ss.st.Listen.listenersPerUser() > 0 {
		f |= proto.FeatureListen
	}
	if len(ss.st.Upstreams) > 0 {
		f |= proto.FeatureChain
	}
	return f
}

// consuming reports whether a REQUEST with cmd turns its connection into
// a data connection (or ends it).
func consuming(cmd proto.Command) bool {
	switch cmd {
	case proto.CommandConnect, proto.CommandBind, proto.CommandUDPAssociate, proto.CommandTake:
		return true
	}
	return false
}

// frameParser returns a parser for hsReader that refuses a frame longer
// than limit as soon as its Length is known, before buffering it. With
// datagrams, a DATAGRAM may be up to proto.MaxFrameLen whatever limit
// says (the draft's DATAGRAM section).
func frameParser(limit int, datagrams bool) func([]byte) (proto.Frame, int, error) {
	return func(b []byte) (proto.Frame, int, error) {
		t, tn, err := proto.ParseVarint(b)
		if err != nil {
			return proto.Frame{}, 0, err
		}
		l, _, err := proto.ParseVarint(b[tn:])
		if err != nil {
			return proto.Frame{}, 0, err
		}
		limit := limit
		if datagrams && proto.FrameType(t) == proto.FrameDatagram {
			limit = proto.MaxFrameLen
		}
		if l > uint64(limit) {
			return proto.Frame{}, 0, proto.ErrTooLong
		}
		return proto.ParseFrame(b)
	}
}

// writeFrame sends one frame on a control connection. Writes from the
// control loop and from request goroutines are serialized, and each has
// the handshake timeout as its deadline so that a client that stops
// reading cannot hold a goroutine. A failed write closes the connection.
func (ss *session) writeFrame(m proto.Message) error {
	b, err := proto.AppendFrame(nil, m)
	if err != nil {
		return err
	}
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	ss.c.SetWriteDeadline(time.Now().Add(ss.s.handshakeTimeout()))
	if _, err = ss.c.Write(b); err != nil {
		// Part of the frame may have gone out, and frames from other
		// goroutines (replies, datagrams) would follow it: the framing
		// is lost.
		hardClose(ss.c)
	}
	return err
}

// closeWith sends CLOSE with the code of err, for a malformed frame or a
// gateway error on a control connection.
func (ss *session) closeWith(err error) {
	ss.writeFrame(proto.Close{Reason: replyCode(err), Options: proto.Options{proto.DiagnosticOption(diagnostic(err))}})
}

// diagnostic is the text of a DIAGNOSTIC option: the reply code's meaning
// and, for protocol errors, what was wrong. It never names the gateway's
// upstream servers or internal addresses (the draft's rule for
// DIAGNOSTIC); resolver and dial errors are summarized by their code.
func diagnostic(err error) string {
	var re *ReplyError
	if errors.As(err, &re) && re.Code == proto.ReplyMalformedRequest {
		return re.Error()
	}
	return replyCode(err).String()
}

// hello runs the extension handshake after the gateway selected 0xC6:
// it reads HELLO, checks the transcript, authenticates and answers with
// HELLO_ACK. On failure the HELLO_ACK carries the status and the
// connection ends.
func (ss *session) hello(ctx context.Context, h *hsReader, g proto.Greeting) error {
	h.max = helloMaxLen + 16
	f, err := next(h, frameParser(helloMaxLen, false))
	if err != nil {
		if errors.Is(err, proto.ErrTooLong) || errors.Is(err, proto.ErrMalformed) {
			err = malformed("HELLO: %v", err)
			ss.closeWith(err)
		}
		return err
	}
	if f.Type != proto.FrameHello {
		err := malformed("first frame is %v, not HELLO", f.Type)
		ss.closeWith(err)
		return err
	}
	hl, err := proto.ParseHello(f.Value)
	switch {
	case errors.Is(err, proto.ErrVersion):
		ss.writeFrame(proto.HelloAck{Status: proto.HelloVersionUnsupported, Version: proto.ExtVersion})
		return fmt.Errorf("HELLO: %w", err)
	case errors.Is(err, proto.ErrAuthMethod):
		ss.helloFail(proto.HelloAuthFailed, "unknown authentication method")
		return fmt.Errorf("HELLO: %w", err)
	case err != nil:
		err = malformed("HELLO: %v", err)
		ss.closeWith(err)
		return err
	}
	if !sameMethods(hl.Methods, g.Methods) {
		ss.helloFail(proto.HelloTranscriptMismatch, "HELLO methods differ from the greeting")
		return errors.New("HELLO: transcript mismatch (greeting modified on the path?)")
	}
	if a := ss.st.Auth; a != nil {
		if hl.Auth != proto.MethodUserPass {
			ss.helloFail(proto.HelloAuthFailed, "username and password required")
			return errors.New("HELLO without credentials")
		}
		ss.user = hl.Username
		if err := a.Authenticate(ctx, hl.Username, hl.Password); err != nil {
			ss.helloFail(proto.HelloAuthFailed, "authentication failed")
			return err
		}
	}
	var id proto.SessionID
	rand.Read(id[:])
	if err := ss.writeFrame(proto.HelloAck{
		Status:   proto.HelloOK,
		Version:  proto.ExtVersion,
		Features: ss.features(),
		// The default limit: every frame we send fits, and a client's
		// frames are buffered up to it.
		MaxFrameLen: proto.DefaultMaxFrameLen,
		SessionID:   id,
		Options:     ss.helloOptions(),
	}); err != nil {
		return err
	}
	ss.ext = true
	ss.deriveSessionKey(id)
	// The buffer grows to a DATAGRAM's size only when one comes.
	h.max = proto.MaxFrameLen + 16
	return nil
}

func (ss *session) helloFail(st proto.HelloStatus, diag string) {
	ss.writeFrame(proto.HelloAck{Status: st, Version: proto.ExtVersion,
		Options: proto.Options{proto.DiagnosticOption(diag)}})
}

func sameMethods(a, b []proto.Method) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// control serves a control connection: control requests (RESOLVE) and
// PING until the client sends a connection-consuming request, which it
// leaves in ss.req for run to carry out, or the connection ends. Until
// the first request the handshake deadline applies; after it, the idle
// timeout, renewed by every frame.
func (ss *session) control(h *hsReader, endHandshake func()) error {
	s := ss.s
	ctx, cancel := context.WithCancel(s.baseCtx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	var mu sync.Mutex
	inflight := map[uint64]bool{}
	var listeners []*gwListener
	assocs := map[uint64]*streamAssoc{}
	defer func() {
		// The session ends with its control connection: its listeners
		// and their pending callers, and its UDP associations, go with
		// it.
		if len(listeners) > 0 {
			ss.closeListeners(listeners)
		}
		for _, a := range assocs {
			a.close(nil)
		}
		if ss.dgw != nil {
			ss.dgw.close()
		}
	}()
	first := true
	// active is when the connection last carried a frame that counts
	// against its idle timeout: not a DATAGRAM for an association that
	// no longer exists, which would otherwise keep a session whose
	// associations have idled out open for ever.
	active := time.Now()
	for {
		if !first {
			// A session that holds listeners waits for callers, however
			// long; TCP keepalive finds a vanished client instead. One
			// that holds UDP associations wakes when the first of them
			// may have idled out.
			var dl time.Time
			if d := s.idleTimeout(); d > 0 && len(listeners) == 0 && len(assocs) == 0 {
				dl = active.Add(d)
			}
			for _, a := range assocs {
				if t := time.Unix(0, a.last.Load()).Add(a.idle); dl.IsZero() || t.Before(dl) {
					dl = t
				}
			}
			ss.c.SetReadDeadline(dl)
		}
		f, err := next(h, frameParser(proto.DefaultMaxFrameLen, true))
		if err == nil && f.Type != proto.FrameDatagram {
			active = time.Now()
		}
		if err != nil && len(assocs) > 0 && errors.Is(err, os.ErrDeadlineExceeded) {
			// Not the connection's idle timeout: an association's.
			now := time.Now()
			for id, a := range assocs {
				if a.expired(now) {
					delete(assocs, id)
					a.close(errAssocIdle)
				}
			}
			continue
		}
		if err != nil {
			if errors.Is(err, proto.ErrTooLong) || errors.Is(err, proto.ErrMalformed) {
				err = malformed("frame: %v", err)
				ss.closeWith(err)
			} else if isEOF(err) && h.r == h.w {
				return errControlDone
			}
			return err
		}
		switch f.Type {
		case proto.FrameRequest:
			req, err := parseRequest(f.Value)
			if err != nil {
				var re *ReplyError
				if errors.As(err, &re) && re.Code == proto.ReplyAddressTypeNotSupported {
					// The frame's Length still delimits it: answer and go on.
					if werr := ss.writeFrame(proto.ExtReply{ID: req.ID, Code: re.Code}); werr != nil {
						return werr
					}
					continue
				}
				ss.closeWith(err)
				return err
			}
			mu.Lock()
			dup, busy := inflight[req.ID], len(inflight)
			mu.Unlock()
			if dup {
				err := malformed("request ID %d is still outstanding", req.ID)
				ss.closeWith(err)
				return err
			}
			if first {
				// The session counts against the limits from its first
				// request, as a plain session does.
				first = false
				ss.isControl = true
				endHandshake()
				ss.c.SetWriteDeadline(time.Time{})
				if err := ss.acquire(); err != nil {
					ss.writeFrame(proto.ExtReply{ID: req.ID, Code: replyCode(err),
						Options: proto.Options{proto.DiagnosticOption(diagnostic(err))}})
					return err
				}
			}
			if h, ok := req.Options.HopLimit(); ok && h == 0 && !consuming(req.Command) {
				// HOP_LIMIT 0 is refused whatever the command (the
				// draft's "Chaining"); consuming requests are refused
				// by run, with their REPLY.
				if err := ss.writeFrame(proto.ExtReply{ID: req.ID, Command: req.Command, Code: proto.ReplyHopLimitExceeded}); err != nil {
					return err
				}
				continue
			}
			switch req.Command {
			case proto.CommandConnect, proto.CommandBind, proto.CommandUDPAssociate, proto.CommandTake:
				if req.Command == proto.CommandTake && !ss.features().Has(proto.FeatureListen) {
					break
				}
				if busy > 0 || len(listeners) > 0 || len(assocs) > 0 {
					err := malformed("connection-consuming request on a connection with %d control requests outstanding, %d listeners and %d UDP associations", busy, len(listeners), len(assocs))
					ss.writeFrame(proto.ExtReply{ID: req.ID, Code: proto.ReplyMalformedRequest})
					return err
				}
				ss.isControl = false
				ss.reqID = req.ID
				ss.family, _ = req.Options.Family()
				ss.token = req.Token
				ss.proof, ss.hasProof = req.Options.Proof()
				ss.hops, ss.hasHops = req.Options.HopLimit()
				ss.req = Request{User: ss.user, Client: ss.client, Command: req.Command, Target: req.Addr}
				return nil
			case proto.CommandListen:
				if !ss.features().Has(proto.FeatureListen) {
					break
				}
				had := len(listeners)
				if err := ss.writeFrame(ss.serveListen(req, &listeners)); err != nil {
					return err
				}
				if had == 0 && len(listeners) > 0 {
					if tc, ok := tcpConnOf(ss.c); ok {
						tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 10 * time.Second, Count: 3})
					}
				}
				continue
			case proto.CommandUDP:
				had := len(assocs)
				if err := ss.writeFrame(ss.serveUDP(req, assocs)); err != nil {
					return err
				}
				if had == 0 && len(assocs) > 0 {
					if tc, ok := tcpConnOf(ss.c); ok {
						tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 10 * time.Second, Count: 3})
					}
				}
				continue
			case proto.CommandResolve:
				if !ss.features().Has(proto.FeatureResolve) {
					break
				}
				if busy >= maxControlInflight {
					if err := ss.writeFrame(proto.ExtReply{ID: req.ID, Code: proto.ReplyQuotaExceeded}); err != nil {
						return err
					}
					continue
				}
				mu.Lock()
				inflight[req.ID] = true
				mu.Unlock()
				wg.Add(1)
				go func() {
					defer wg.Done()
					// The ID is free again before the client can see the
					// reply, so that it may reuse it at once.
					ss.serveResolve(ctx, req, func() {
						mu.Lock()
						delete(inflight, req.ID)
						mu.Unlock()
					})
				}()
				continue
			}
			if err := ss.writeFrame(proto.ExtReply{ID: req.ID, Code: proto.ReplyCommandNotSupported}); err != nil {
				return err
			}
		case proto.FramePing:
			p, err := proto.ParsePing(f.Value)
			if err != nil {
				err = malformed("PING: %v", err)
				ss.closeWith(err)
				return err
			}
			if err := ss.writeFrame(proto.Pong{Opaque: p.Opaque}); err != nil {
				return err
			}
		case proto.FramePong:
			if _, err := proto.ParsePong(f.Value); err != nil {
				err = malformed("PONG: %v", err)
				ss.closeWith(err)
				return err
			}
		case proto.FrameClose:
			if _, err := proto.ParseClose(f.Value); err != nil {
				return malformed("CLOSE: %v", err)
			}
			return errControlDone
		case proto.FrameRejectOffer:
			if !ss.features().Has(proto.FeatureListen) {
				err := malformed("REJECT_OFFER without the LISTEN feature")
				ss.closeWith(err)
				return err
			}
			ro, err := proto.ParseRejectOffer(f.Value)
			if err != nil {
				err = malformed("REJECT_OFFER: %v", err)
				ss.closeWith(err)
				return err
			}
			ss.rejectOffer(ro.Token)
		case proto.FrameDatagram:
			g, err := proto.ParseDatagram(f.Value)
			if err != nil {
				err = malformed("DATAGRAM: %v", err)
				ss.closeWith(err)
				return err
			}
			// A datagram for an association that does not exist (or no
			// longer does) is dropped silently.
			if a := assocs[g.AssocID]; a != nil {
				if a.expired(time.Now()) {
					delete(assocs, g.AssocID)
					a.close(errAssocIdle)
					continue
				}
				active = time.Now()
				a.send(g)
			}
		case proto.FrameHello, proto.FrameHelloAck, proto.FrameReply, proto.FrameAcceptOffer,
			proto.FrameRoutes, proto.FrameStreamAck:
			// Known, but in the wrong direction or for a feature this
			// session does not have.
			err := malformed("unexpected %v frame", f.Type)
			ss.closeWith(err)
			return err
		default:
			// Unknown types (GREASE among them) are skipped.
		}
	}
}

// parseRequest decodes a REQUEST value. A request whose address type is
// unknown is answered with 0x08 by ID, so the ID is recovered first.
func parseRequest(v []byte) (proto.ExtRequest, error) {
	req, err := proto.ParseExtRequest(v)
	if err == nil {
		if req.Command != proto.CommandListen && (req.Exact || req.DualStack) {
			return req, malformed("REQUEST: flags set for %v", req.Command)
		}
		return req, nil
	}
	id, _, idErr := proto.ParseVarint(v)
	if idErr == nil && errors.Is(err, proto.ErrAddressType) {
		return proto.ExtRequest{ID: id}, replyErr(proto.ReplyAddressTypeNotSupported, err)
	}
	return proto.ExtRequest{}, malformed("REQUEST: %v", err)
}

// serveResolve answers RESOLVE: every address of the name that FAMILY
// allows, in Happy Eyeballs order, with TTLs.
// done runs just before the reply is sent.
func (ss *session) serveResolve(ctx context.Context, req proto.ExtRequest, done func()) {
	s := ss.s
	start := time.Now()
	fam, _ := req.Options.Family()
	hops, ok := req.Options.HopLimit()
	if !ok {
		hops = defaultHopLimit
	}
	r := Request{User: ss.user, Client: ss.client, Command: proto.CommandResolve, Target: req.Addr}
	reply := proto.ExtReply{ID: req.ID, Command: proto.CommandResolve}
	answers, err := ss.lookupFor(ctx, &r, fam, hops)
	if err == nil {
		reply.Answers = answers
	} else {
		reply.Code = replyCode(err)
		reply.Options = proto.Options{proto.DiagnosticOption(diagnostic(err))}
	}
	done()
	if werr := ss.writeFrame(reply); werr != nil && err == nil {
		err = werr
	}
	if log := s.logger(); log.Enabled(ctx, slog.LevelInfo) {
		attrs := []slog.Attr{
			slog.String("client", ss.client.String()),
			slog.String("user", ss.user),
			slog.String("cmd", "resolve"),
			slog.String("target", req.Addr.FQDN),
			slog.String("family", fam.String()),
			slog.Int("answers", len(answers)),
			slog.Duration("dur", time.Since(start).Round(time.Millisecond)),
			slog.String("reply", reply.Code.String()),
		}
		if u := ss.resolveUpstreamFor(req.Addr); u != nil {
			attrs = append(attrs, slog.String("upstream", u.name()))
		}
		if err != nil {
			attrs = append(attrs, slog.Any("err", err))
		}
		log.LogAttrs(context.Background(), slog.LevelInfo, "resolve", attrs...)
	}
}

// maxAnswers keeps a RESOLVE reply within the frame limit: an IPv6
// answer takes 21 bytes, and the rest of the reply less than 300.
const maxAnswers = (proto.DefaultMaxFrameLen - 300) / 21

// lookupFor resolves r.Target for RESOLVE (and Tor's 0xF0) after the
// policy allowed it.
func (ss *session) lookupFor(ctx context.Context, r *Request, fam proto.Family, hops uint8) ([]proto.ResolveAnswer, error) {
	s := ss.s
	if r.Target.FQDN == "" {
		return nil, replyErr(proto.ReplyAddressTypeNotSupported, errors.New("RESOLVE needs a domain name"))
	}
	if u := ss.resolveUpstreamFor(r.Target); u != nil {
		// The upstream resolves it, and its answers are its own.
		if err := ss.allowUnresolved(ctx, r); err != nil {
			return nil, err
		}
		return ss.resolveUpstream(ctx, u, r.Target.FQDN, fam, hops)
	}
	if p := ss.st.Policy; p != nil {
		if err := p.Allow(ctx, r); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.dialTimeout())
	defer cancel()
	ans, err := s.resolveAll(ctx, r.Target.FQDN, fam)
	if err != nil {
		return nil, err
	}
	// The policy's network rules apply to the answers as they would to
	// a CONNECT to the name: addresses it refuses are left out, so that
	// RESOLVE does not map networks the client may not reach.
	if p := ss.st.Policy; p != nil && len(ans) > 0 {
		kept := ans[:0:0]
		var denied error
		for _, a := range ans {
			if err := p.AllowIP(ctx, r, a.Addr); err != nil {
				denied = err
				continue
			}
			kept = append(kept, a)
		}
		if len(kept) == 0 {
			return nil, denied
		}
		ans = kept
	}
	if len(ans) > maxAnswers {
		ans = ans[:maxAnswers] // interleaved: both families stay
	}
	out := make([]proto.ResolveAnswer, len(ans))
	for i, a := range ans {
		out[i] = proto.ResolveAnswer{TTL: a.TTL, Addr: a.Addr.Unmap()}
	}
	return out, nil
}
