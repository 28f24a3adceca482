package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/socks6/socks6/client"
)

// connect opens a stream to target through the gateway and relays stdin
// to it and its bytes to stdout, like netcat. At the end of stdin it
// half-closes the stream (CloseWrite) and keeps copying the other way; it
// returns when both directions have ended, or at once when one of them
// fails or ctx ends, having closed the stream.
//
// When it returns early, a read of stdin may still be blocked: stdin is
// given a past read deadline if it supports deadlines (a pipe does), and
// is otherwise left to the process's exit.
func connect(ctx context.Context, d *client.Dialer, target string, stdin io.Reader, stdout io.Writer, log *logger) error {
	nc, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return err
	}
	c := nc.(*client.Conn)
	defer c.Close()
	if log.verbose {
		via := ""
		if ap, ok := c.Connected(); ok {
			via = ", gateway connected to " + ap.String()
		}
		mode := "plain SOCKS5"
		if c.Extended() {
			mode = "SOCKS6 extensions"
		}
		log.debugf("connected to %s through %s (%s%s)", target, d.ProxyAddress, mode, via)
	}
	return pipe(ctx, c, stdin, stdout)
}

// pipe relays between c and the standard files; see connect.
func pipe(ctx context.Context, c *client.Conn, stdin io.Reader, stdout io.Writer) error {
	up := make(chan error, 1)
	down := make(chan error, 1)
	go copyStdinToStream(c, stdin, up)
	go copyStreamToStdout(stdout, c, down)
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	var first error // the first failure; closing c makes the other direction fail too
	upDone, downDone := false, false
	for !upDone || !downDone {
		var err error
		select {
		case err = <-up:
			upDone = true
		case err = <-down:
			downDone = true
			if err != nil && !upDone {
				// Do not wait for a read of stdin that may never return.
				unblock(stdin)
				upDone = true
			}
		}
		if err != nil && first == nil {
			first = err
			c.Close()
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return first
}

// copyStdinToStream copies stdin to c, then half-closes c, and sends the
// outcome to done.
func copyStdinToStream(c *client.Conn, stdin io.Reader, done chan<- error) {
	// The raw connection, so that io.Copy can use its ReadFrom (splice).
	_, err := io.Copy(c.Conn, stdin)
	if err != nil {
		done <- fmt.Errorf("sending: %w", err)
		return
	}
	if err := c.CloseWrite(); err != nil {
		done <- fmt.Errorf("half-closing the stream: %w", err)
		return
	}
	done <- nil
}

// copyStreamToStdout copies c to stdout until EOF and sends the outcome
// to done.
func copyStreamToStdout(stdout io.Writer, c *client.Conn, done chan<- error) {
	_, err := io.Copy(stdout, c.Conn)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		err = fmt.Errorf("receiving: %w", err)
	}
	done <- err
}

// unblock ends a pending read of r if r supports deadlines.
func unblock(r io.Reader) {
	if dr, ok := r.(interface{ SetReadDeadline(time.Time) error }); ok {
		dr.SetReadDeadline(time.Now())
	}
}
