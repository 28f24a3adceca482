// Package proto is the SOCKS wire format: the messages of RFC 1928 (SOCKS
// Protocol Version 5) and RFC 1929 (Username/Password Authentication for
// SOCKS V5), encoded and decoded over byte slices.
//
// Every message type has an AppendBinary method that appends its encoding to
// a slice (the shape of encoding.BinaryAppender) and a Parse function that
// decodes it from the front of a slice and reports how many bytes it used.
// On error AppendBinary returns its argument unchanged. Decoding and
// re-encoding a valid message gives back the same bytes, except for the
// reserved byte of a Request or Reply, which the parsers ignore and the
// encoders write as zero.
//
// Read functions are thin wrappers that read exactly one message from an
// io.Reader, never more, so a caller can hand the rest of the stream to
// someone else.
//
// Parsers never allocate before a length has been checked against the
// protocol's limit; truncated input returns [ErrShortBuffer] (read more and
// try again), malformed input another sentinel error. No parser panics on
// any input; each has a fuzz target.
//
// The package does no I/O of its own besides the Read wrappers, starts no
// goroutines, logs nothing and imports only the standard library, so that
// other implementations can vendor it. All functions are safe for
// concurrent use; values are plain data.
package proto
