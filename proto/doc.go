// Package proto is the SOCKS wire format: the messages of RFC 1928 (SOCKS
// Protocol Version 5) and RFC 1929 (Username/Password Authentication for
// SOCKS V5), and the frames, options and messages of the SOCKS6 extensions
// (draft-socks6-extensions-00, in rfc-draft/), encoded and decoded over
// byte slices.
//
// Every RFC 1928 message type has an AppendBinary method that appends its
// encoding to a slice (the shape of encoding.BinaryAppender) and a Parse
// function that decodes it from the front of a slice and reports how many
// bytes it used. On error AppendBinary returns its argument unchanged.
// Decoding and re-encoding a valid message gives back the same bytes,
// except for the reserved byte of a Request or Reply, which the parsers
// ignore and the encoders write as zero.
//
// The extensions negotiate with MethodExtensions in an RFC 1928 greeting,
// or with ALPN socks6 inside TLS, and then exchange frames: Type (varint),
// Length (varint), Value. [ParseFrame] and [ReadFrame] split a stream into
// [Frame] values; each message type (Hello, HelloAck, ExtRequest,
// ExtReply, AcceptOffer, RejectOffer, Routes, Datagram, StreamAck, Ping,
// Pong, Close) has a Parse function that decodes one frame's Value, all of
// it, and an AppendBinary method that appends the Value; [AppendFrame] and
// [WriteFrame] add the frame header. Integers are QUIC variable-length
// integers in their shortest form, so that decoding and re-encoding give
// back the same bytes here too; options of kinds proto does not know are
// kept as they came. The draft's test vectors (rfc-draft/vectors.md) are
// generated from this package and checked by its tests.
//
// Read functions are thin wrappers that read exactly one message from an
// io.Reader, never more, so a caller can hand the rest of the stream to
// someone else.
//
// Parsers never allocate before a length or count has been checked
// against the protocol's limit and against the bytes that are left;
// truncated input returns [ErrShortBuffer] (read more and try again),
// malformed input another sentinel error. No parser panics on any input;
// each has a fuzz target. Enforcing limits that depend on the session,
// such as the negotiated frame length, is the caller's job.
//
// Types that carry secrets (UserPassRequest, Hello, Token, Proof, a PROOF
// Option) have String and GoString methods that hide them.
//
// The package does no I/O of its own besides the Read and Write wrappers,
// starts no goroutines, logs nothing and imports only the standard
// library, so that other implementations can vendor it. All functions are
// safe for concurrent use; values are plain data. Parsed values may alias
// the input slice (frame values, payloads, option values): copy them
// before reusing the buffer.
package proto
