// Package relay copies bytes both ways between two connections until both
// directions have ended, the way a SOCKS gateway relays a session.
//
// Between two *net.TCPConn a running direction reads into a small pooled
// buffer and writes what it got: for interactive traffic a read and a
// write per message is the least work there is. When a read fills the
// buffer, a bulk transfer is under way, and the bytes queued behind it
// move with io.CopyN, which Linux turns into splice(2): the payload never
// enters user space, and a splice pipe is held only while bytes move.
// Byte counts come from the copies. After a quiet second a direction
// parks: its socket is registered, one-shot, with a shared epoll set
// watched by a single goroutine, and the direction's goroutine exits. The
// next byte (or EOF, or an error) wakes it on a reused goroutine. A
// session whose peers are silent therefore holds its two sockets and a
// few hundred bytes of state: no goroutine, no stack, no buffer, no pipe.
// Sessions start parked.
//
// Connections of other types (TLS, pipes) get a goroutine per direction
// and a pooled buffer instead.
//
// End of stream in one direction is passed on as a half-close (CloseWrite)
// and the other direction keeps flowing. An error in either direction, or
// no progress in both for the idle timeout, closes both connections.
//
// [Start] runs a session in the background and reports its end through a
// callback; [Relay] is Start plus a wait. Either way the session closes
// both connections when it ends.
package relay
