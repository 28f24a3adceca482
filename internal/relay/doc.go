// Package relay copies bytes both ways between two connections until both
// directions have ended, the way a SOCKS gateway relays a session.
//
// Between two *net.TCPConn the copy is io.CopyN, which Linux turns into
// splice(2): the payload never enters user space. Each direction first waits
// until its source is readable and only then copies exactly the bytes
// queued in the socket, so an idle session holds its two sockets and two
// small goroutine stacks, not a splice pipe pair per direction (an
// io.Copy that blocks inside splice keeps its pipe for as long as it
// waits). Other connection types fall back to io.CopyBuffer with pooled
// buffers.
//
// End of stream in one direction is passed on as a half-close (CloseWrite)
// and the other direction keeps flowing. An error in either direction, or
// no progress in both for the idle timeout, closes both connections.
//
// Relay owns neither connection's lifetime beyond the call: it closes both
// before returning.
package relay
