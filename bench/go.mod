// Benchmark tools. A module of their own so that the peer servers'
// libraries (things-go/go-socks5) stay out of the gateway's dependencies.
module github.com/socks6/socks6/bench

go 1.26.0

require (
	github.com/things-go/go-socks5 v0.1.0
	golang.org/x/crypto v0.45.0
)
