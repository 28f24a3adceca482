// Command goclient is a static Go test fixture for the socksify end-to-end
// tests. It knows nothing of SOCKS: it resolves names with Go's own
// resolver (CGO_ENABLED=0) and dials directly, as an ordinary Go program
// does.
//
//	goclient http URL          GET URL, print "go-static got: BODY"
//	goclient stress N URL      N GETs, each on a fresh connection, while a
//	                           spinning goroutine and runtime.GC() every 5 ms
//	                           make preemption signals; print
//	                           "N requests, F failures"
//	goclient udp ADDR MSG      send MSG from an unconnected UDP socket to
//	                           ADDR (host:port) and print the reply and its
//	                           source
//	goclient resolve NAME      print NAME's addresses, one a line
//	goclient serve ADDR N      listen at ADDR, print "listening: ADDR" and,
//	                           for each of N connections, "accepted: REMOTE
//	                           local LOCAL"; read a line, answer "hello LINE"
package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch args := os.Args[2:]; os.Args[1] {
	case "http":
		if len(args) != 1 {
			usage()
		}
		err = httpGet(args[0])
	case "stress":
		if len(args) != 2 {
			usage()
		}
		n, perr := strconv.Atoi(args[0])
		if perr != nil || n <= 0 {
			usage()
		}
		err = stress(n, args[1])
	case "udp":
		if len(args) != 2 {
			usage()
		}
		err = udp(args[0], args[1])
	case "resolve":
		if len(args) != 1 {
			usage()
		}
		err = resolve(args[0])
	case "serve":
		if len(args) != 2 {
			usage()
		}
		n, perr := strconv.Atoi(args[1])
		if perr != nil || n <= 0 {
			usage()
		}
		err = serve(args[0], n)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "goclient:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: goclient http URL | stress N URL | udp HOST:PORT MSG | resolve NAME | serve ADDR N")
	os.Exit(2)
}

// client makes a fresh connection for every request and ignores any
// proxy settings in the environment.
var client = &http.Client{
	Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
	Timeout:   10 * time.Second,
}

func get(url string) (string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(body), nil
}

func httpGet(url string) error {
	body, err := get(url)
	if err != nil {
		return err
	}
	fmt.Printf("go-static got: %s", body)
	return nil
}

func stress(n int, url string) error {
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // never blocks: only asynchronous preemption (SIGURG) stops it
		defer wg.Done()
		x := 0
		for !stop.Load() {
			x++
		}
		_ = x
	}()
	go func() {
		defer wg.Done()
		for !stop.Load() {
			runtime.GC()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	failures := 0
	start := time.Now()
	for i := range n {
		if _, err := get(url); err != nil {
			failures++
			if failures <= 5 {
				fmt.Fprintf(os.Stderr, "request %d: %v\n", i, err)
			}
		}
	}
	el := time.Since(start)
	stop.Store(true)
	wg.Wait()
	fmt.Printf("%d requests, %d failures\n", n, failures)
	fmt.Fprintf(os.Stderr, "%.0f requests/s\n", float64(n)/el.Seconds())
	return nil
}

func udp(addr, msg string) error {
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return err
	}
	pc, err := net.ListenPacket("udp", ":0")
	if err != nil {
		return err
	}
	defer pc.Close()
	if _, err := pc.WriteTo([]byte(msg), raddr); err != nil {
		return err
	}
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	nr, from, err := pc.ReadFrom(buf)
	if err != nil {
		return err
	}
	fmt.Printf("go-static udp reply %q from %s (sent to %s)\n", buf[:nr], from, raddr)
	return nil
}

func resolve(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, name)
	if err != nil {
		return err
	}
	for _, a := range addrs {
		fmt.Println(a.IP)
	}
	return nil
}

func serve(addr string, n int) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Printf("listening: %s\n", ln.Addr())
	for range n {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		fmt.Printf("accepted: %s local %s\n", c.RemoteAddr(), c.LocalAddr())
		c.SetDeadline(time.Now().Add(10 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		fmt.Fprintf(c, "hello %s\n", strings.TrimSpace(line))
		c.Close()
	}
	return nil
}
