// Command thingsgo runs github.com/things-go/go-socks5 with library
// defaults, as a peer for socksbench. With -user and -pass it requires
// username/password authentication (RFC 1929) with those credentials.
//
// The one change from a plain ListenAndServe: the listener retries accept
// on "too many open files" instead of returning, because the library's
// Serve returns on any accept error and the usual log.Fatal would end the
// process; an fd shortage then shows up as refused or slow connections in
// the benchmark instead of a dead peer.
package main

import (
	"errors"
	"flag"
	"log"
	"net"
	"syscall"
	"time"

	socks5 "github.com/things-go/go-socks5"
)

type retryListener struct{ net.Listener }

func (l retryListener) Accept() (net.Conn, error) {
	backoff := 5 * time.Millisecond
	for {
		c, err := l.Listener.Accept()
		if err == nil || !(errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)) {
			return c, err
		}
		time.Sleep(backoff)
		if backoff < time.Second {
			backoff *= 2
		}
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:1080", "listen address")
	user := flag.String("user", "", "username (enables username/password authentication)")
	pass := flag.String("pass", "", "password")
	flag.Parse()

	var opts []socks5.Option
	if *user != "" {
		opts = append(opts, socks5.WithCredential(socks5.StaticCredentials{*user: *pass}))
	}
	srv := socks5.NewServer(opts...)
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(srv.Serve(retryListener{ln}))
}
