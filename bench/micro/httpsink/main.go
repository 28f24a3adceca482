// Command httpsink is a probe for bench/micro/README.md: it answers every
// HTTP/1.1 request on :8080 with "ok" and closes the connection, so that
// each URL a client fetches is a new TCP connection.
package main

import (
	"io"
	"log"
	"net"
)

func main() {
	ln, err := net.Listen("tcp", ":8080")
	if err != nil {
		log.Fatal(err)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		go serve(c)
	}
}

// serve reads one request head and answers it.
func serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 4096)
	n := 0
	for n < len(buf) {
		m, err := c.Read(buf[n:])
		n += m
		if err != nil || n >= 4 && string(buf[n-4:n]) == "\r\n\r\n" {
			break
		}
	}
	io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
}
