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
	github.com/insomniacslk/dhcp v0.0.0-20260901064844-234b97448fae // indirect
	github.com/josharian/native v1.1.0 // indirect
	github.com/pierrec/lz4/v4 v4.1.14 // indirect
	github.com/u-root/uio v0.0.0-20230220225925-ffce2a382923 // indirect
	golang.org/x/net v0.57.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)

replace github.com/socks6/socks6 => ../
