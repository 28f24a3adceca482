package proto

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// trailer follows every message in the Read tests; it must stay unread.
var trailer = []byte("after the message")

// readers are the partial-I/O shapes every Read wrapper must survive. Each
// wraps r without reading ahead, so the trailer check stays meaningful.
var readers = []struct {
	name string
	wrap func(io.Reader) io.Reader
}{
	{name: "plain", wrap: func(r io.Reader) io.Reader { return r }},
	{name: "one_byte", wrap: iotest.OneByteReader},
	{name: "half", wrap: iotest.HalfReader},
}

// testRead runs the golden vectors of one message type through its Read
// wrapper.
func testRead[T any](t *testing.T, read func(io.Reader) (T, error), vs []vector[T]) {
	t.Helper()
	for _, tt := range vs {
		t.Run(tt.name, func(t *testing.T) {
			in := mustHex(t, tt.in)
			for _, rd := range readers {
				// The message followed by more bytes: the wrapper
				// reads the message and not one byte more.
				src := bytes.NewReader(append(append([]byte(nil), in...), trailer...))
				got, err := read(rd.wrap(src))
				if tt.wantErr != nil {
					var pe *ParseError
					if !errors.As(err, &pe) || !errors.Is(err, tt.wantErr) {
						t.Fatalf("%s: error = %v, want a *ParseError wrapping %v", rd.name, err, tt.wantErr)
					}
					if src.Len() < len(trailer) {
						t.Errorf("%s: read %d bytes past the message", rd.name, len(trailer)-src.Len())
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: error = %v", rd.name, err)
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("%s: got %#v, want %#v", rd.name, got, tt.want)
				}
				if rest, _ := io.ReadAll(src); !bytes.Equal(rest, trailer) {
					t.Errorf("%s: left %q unread, want %q", rd.name, rest, trailer)
				}
			}
			if tt.wantErr != nil {
				return
			}

			// DataErrReader hands over the last bytes together with
			// io.EOF.
			if got, err := read(iotest.DataErrReader(bytes.NewReader(in))); err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("data_err: got %#v, %v; want %#v, nil", got, err, tt.want)
			}

			// Every truncated stream: io.EOF before the first byte,
			// io.ErrUnexpectedEOF after, in a *ParseError that says
			// how far it got.
			for i := range len(in) {
				want := io.ErrUnexpectedEOF
				if i == 0 {
					want = io.EOF
				}
				for _, rd := range append(readers, struct {
					name string
					wrap func(io.Reader) io.Reader
				}{"data_err", iotest.DataErrReader}) {
					_, err := read(rd.wrap(bytes.NewReader(in[:i])))
					var pe *ParseError
					if !errors.As(err, &pe) || !errors.Is(err, want) {
						t.Fatalf("%s: %d of %d bytes: error = %v, want a *ParseError wrapping %v", rd.name, i, len(in), err, want)
					}
					if i == 0 && errors.Is(err, io.ErrUnexpectedEOF) {
						t.Errorf("%s: empty stream: error = %v, want plain io.EOF", rd.name, err)
					}
					if pe.Offset != i || pe.Msg == "" {
						t.Errorf("%s: %d of %d bytes: ParseError{Msg: %q, Offset: %d}, want Offset %d", rd.name, i, len(in), pe.Msg, pe.Offset, i)
					}
				}
			}

			// Any other read error is passed through, wrapped.
			errBoom := errors.New("boom")
			for _, i := range []int{0, len(in) / 2, len(in) - 1} {
				r := io.MultiReader(bytes.NewReader(in[:i]), iotest.ErrReader(errBoom))
				if _, err := read(r); !errors.Is(err, errBoom) {
					t.Errorf("error after %d bytes: got %v, want %v", i, err, errBoom)
				}
			}
			if _, err := read(iotest.TimeoutReader(iotest.OneByteReader(bytes.NewReader(in)))); !errors.Is(err, iotest.ErrTimeout) {
				t.Errorf("timeout after 1 byte: got %v, want %v", err, iotest.ErrTimeout)
			}
		})
	}
}

func TestReadGreeting(t *testing.T) {
	testRead(t, ReadGreeting, greetingVectors)
}

func TestReadMethodSelection(t *testing.T) {
	testRead(t, ReadMethodSelection, methodSelectionVectors)
}

func TestReadUserPassRequest(t *testing.T) {
	testRead(t, ReadUserPassRequest, userPassRequestVectors)
}

func TestReadUserPassReply(t *testing.T) {
	testRead(t, ReadUserPassReply, userPassReplyVectors)
}

func TestReadRequest(t *testing.T) {
	testRead(t, ReadRequest, requestVectors)
}

func TestReadReply(t *testing.T) {
	testRead(t, ReadReply, replyVectors)
}

// A peer that speaks another protocol is refused after the version byte;
// the Read wrappers must not wait for a length taken from its bytes.
func TestReadWrongProtocolStopsEarly(t *testing.T) {
	tests := []struct {
		name    string
		read    func(io.Reader) error
		in      string
		maxRead int
	}{
		// "GE" would ask for 2+0x45 method bytes.
		{name: "greeting_http", read: func(r io.Reader) error { _, err := ReadGreeting(r); return err }, in: "GET / HTTP/1.0\r\n\r\n", maxRead: 2},
		{name: "greeting_tls", read: func(r io.Reader) error { _, err := ReadGreeting(r); return err }, in: "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", maxRead: 2},
		{name: "request_http", read: func(r io.Reader) error { _, err := ReadRequest(r); return err }, in: "GET / HTTP/1.0\r\n\r\n", maxRead: 3},
		{name: "userpass_greeting", read: func(r io.Reader) error { _, err := ReadUserPassRequest(r); return err }, in: "\x05\xff" + strings.Repeat("\x00", 255), maxRead: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := strings.NewReader(tt.in)
			err := tt.read(src)
			if !errors.Is(err, ErrVersion) {
				t.Fatalf("error = %v, want %v", err, ErrVersion)
			}
			if read := len(tt.in) - src.Len(); read > tt.maxRead {
				t.Errorf("read %d bytes before refusing, want at most %d", read, tt.maxRead)
			}
		})
	}
}

// writeRecorder records each Write call.
type writeRecorder struct {
	writes [][]byte
	err    error
}

func (w *writeRecorder) Write(p []byte) (int, error) {
	w.writes = append(w.writes, append([]byte(nil), p...))
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

func TestWrite(t *testing.T) {
	tests := []struct {
		name    string
		msg     message
		want    string
		wantErr error
	}{
		{name: "greeting", msg: Greeting{Methods: []Method{MethodNoAuth, MethodUserPass}}, want: "05 02 00 02"},
		{name: "method_selection", msg: MethodSelection{Method: MethodUserPass}, want: "05 02"},
		{name: "userpass_max", msg: UserPassRequest{Username: user255, Password: pass255}, want: "01 " + user255Hex + " " + pass255Hex},
		{name: "userpass_reply", msg: UserPassReply{Status: UserPassFailure}, want: "01 01"},
		{name: "request_fqdn_max", msg: Request{Command: CommandConnect, Addr: Addr{FQDN: fqdn255, Port: 80}}, want: "05 01 00 03 " + fqdn255Hex + " 0050"},
		{name: "reply", msg: Reply{Code: ReplySucceeded, Addr: Addr{IP: ip("192.0.2.1"), Port: 1080}}, want: "05 00 00 01 c0000201 0438"},
		{name: "udp_header", msg: UDPHeader{Addr: Addr{IP: ip("2001:db8::1"), Port: 53}}, want: "0000 00 04 20010db8000000000000000000000001 0035"},
		{name: "encode_error", msg: Request{Addr: Addr{FQDN: strings.Repeat("x", 256)}}, wantErr: ErrTooLong},
		{name: "greeting_error", msg: Greeting{}, wantErr: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w writeRecorder
			err := Write(&w, tt.msg)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Write error = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				if len(w.writes) != 0 {
					t.Errorf("Write wrote %d times on an encoding error, want 0", len(w.writes))
				}
				return
			}
			// One call, so the message never goes out in pieces.
			if len(w.writes) != 1 {
				t.Fatalf("Write made %d Write calls, want 1", len(w.writes))
			}
			if want := mustHex(t, tt.want); !bytes.Equal(w.writes[0], want) {
				t.Errorf("wrote % x, want % x", w.writes[0], want)
			}
		})
	}

	t.Run("writer_error", func(t *testing.T) {
		errBoom := errors.New("boom")
		w := writeRecorder{err: errBoom}
		if err := Write(&w, MethodSelection{}); !errors.Is(err, errBoom) {
			t.Errorf("Write error = %v, want %v", err, errBoom)
		}
	})
}

// A message written with Write reads back with the Read wrapper, across
// an io.Pipe (where each Write is one read's worth).
func TestWriteReadPipe(t *testing.T) {
	pr, pw := io.Pipe()
	want := Request{Command: CommandConnect, Addr: Addr{FQDN: "example.org", Port: 443}}
	go func() {
		if err := Write(pw, want); err != nil {
			t.Errorf("Write: %v", err)
		}
		pw.Write(trailer)
		pw.Close()
	}()
	got, err := ReadRequest(pr)
	if err != nil || got != want {
		t.Fatalf("ReadRequest = %#v, %v; want %#v", got, err, want)
	}
	if rest, _ := io.ReadAll(pr); !bytes.Equal(rest, trailer) {
		t.Errorf("left %q, want %q", rest, trailer)
	}
}
