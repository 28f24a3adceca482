package proto

import "testing"

// TestReplyCodeSOCKS5 checks the draft's table "Mapping for plain SOCKS5
// clients", and that RFC 1928 codes pass through.
func TestReplyCodeSOCKS5(t *testing.T) {
	want := map[ReplyCode]ReplyCode{
		ReplyAuthRequired: ReplyNotAllowed, ReplyTokenInvalid: ReplyNotAllowed,
		ReplyPortUnavailable: ReplyNotAllowed, ReplyNotServed: ReplyNotAllowed,
		ReplyQuotaExceeded: ReplyGeneralFailure, ReplyResumeRejected: ReplyGeneralFailure,
		ReplyNameServerFailure: ReplyGeneralFailure, ReplyHopLimitExceeded: ReplyGeneralFailure,
		ReplyMalformedRequest:   ReplyGeneralFailure,
		ReplyNameNotFound:       ReplyHostUnreachable,
		ReplyTimeout:            ReplyTTLExpired,
		ReplyRejectedByListener: ReplyConnectionRefused,
	}
	for c := ReplySucceeded; c <= ReplyAddressTypeNotSupported; c++ {
		want[c] = c
	}
	for c := 0; c < 256; c++ {
		rc := ReplyCode(c)
		w, ok := want[rc]
		if !ok {
			w = ReplyGeneralFailure
		}
		if got := rc.SOCKS5(); got != w {
			t.Errorf("%#x.SOCKS5() = %#x, want %#x", c, got, w)
		}
	}
}
