// Benchmark tools. A module of their own so that the peer servers'
// libraries (things-go/go-socks5) stay out of the gateway's dependencies.
// miekg/dns is the dns scenario's DNS server; the project's own client
// library (this tree, by the replace below) measures UDP in the stream.
module github.com/socks6/socks6/bench

go 1.26.3

require (
	github.com/miekg/dns v1.1.73
	github.com/socks6/socks6 v0.0.0
	github.com/things-go/go-socks5 v0.1.0
	golang.org/x/crypto v0.54.0
)

require (
	golang.org/x/net v0.57.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)

replace github.com/socks6/socks6 => ../
