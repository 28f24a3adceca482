package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/url"
	"time"

	"github.com/socks6/socks6/client"
	"github.com/socks6/socks6/proto"
	"github.com/socks6/socks6/server"
	"golang.org/x/net/proxy"
)

// This example starts a gateway and an echo service on loopback, then
// connects to the service through the gateway.
func ExampleDialer() {
	// A gateway that may reach loopback targets, as examples and tests
	// need; a real one refuses them.
	gw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &server.Server{
		Settings: server.Settings{Guard: server.Guard{AllowLoopback: true}},
		Logger:   slog.New(slog.DiscardHandler),
	}
	go srv.Serve(gw)
	defer srv.Close()

	// An echo service.
	svc, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer svc.Close()
	go func() {
		c, err := svc.Accept()
		if err == nil {
			io.Copy(c, c)
			c.Close()
		}
	}()

	d := &client.Dialer{ProxyAddress: gw.Addr().String()}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", svc.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "hello")
	c.(*client.Conn).CloseWrite()
	b, err := io.ReadAll(c)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", b)
	// Output: hello
}

// This example shows how a refusal by the gateway is reported.
func ExampleReplyError() {
	d := &client.Dialer{ProxyAddress: "127.0.0.1:1080", Extensions: client.ExtRequire}
	_, err := d.Dial("tcp", "www.example.org:443")
	var re *client.ReplyError
	switch {
	case errors.As(err, &re) && re.Code == proto.ReplyNameNotFound:
		fmt.Println("the gateway could not find", re.Target)
	case errors.Is(err, client.ErrDowngrade):
		fmt.Println("the gateway at 127.0.0.1:1080 does not speak the extensions")
	case err != nil:
		fmt.Println(err)
	}
}

// This example resolves a name on the gateway, which returns every
// address with its TTL.
func ExampleSession_Resolve() {
	d := &client.Dialer{ProxyAddress: "127.0.0.1:1080", Family: proto.FamilyIPv6Only}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := d.OpenSession(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	answers, err := s.Resolve(ctx, "www.example.org")
	if err != nil {
		log.Fatal(err)
	}
	for _, a := range answers {
		fmt.Println(a.Addr, a.TTL)
	}
}

// This example builds a Dialer from a proxy URL, as x/net/proxy and
// ALL_PROXY do.
func ExampleFromURL() {
	u, _ := url.Parse("socks6://alice:secret@127.0.0.1:1080?ext=require")
	d, err := proxy.FromURL(u, proxy.Direct)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(d.(*client.Dialer).ProxyAddress, d.(*client.Dialer).Extensions)
	// Output: 127.0.0.1:1080 require
}

// This example opens a listening socket at a gateway on loopback, lets a
// caller connect to it, and accepts the caller through the gateway.
func ExampleDialer_Listen() {
	gw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &server.Server{
		Settings: server.Settings{Guard: server.Guard{AllowLoopback: true}},
		Logger:   slog.New(slog.DiscardHandler),
	}
	go srv.Serve(gw)
	defer srv.Close()

	d := &client.Dialer{ProxyAddress: gw.Addr().String()}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := d.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()

	// A caller connects to the address the gateway listens on.
	go func() {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			log.Fatal(err)
		}
		fmt.Fprint(c, "hello from the caller")
		c.Close()
	}()

	c, err := l.AcceptContext(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	b, err := io.ReadAll(c)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", b)
	// Output: hello from the caller
}
