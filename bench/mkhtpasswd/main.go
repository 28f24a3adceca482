// Command mkhtpasswd writes an htpasswd users file with one bcrypt (cost
// 10) entry, reading the password from the first line of stdin. It is the
// fallback for run.sh when "socks6d passwd" is not available.
//
//	mkhtpasswd -users FILE USER < password
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

func main() {
	users := flag.String("users", "", "users file to write")
	flag.Parse()
	if *users == "" || flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: mkhtpasswd -users FILE USER < password")
		os.Exit(2)
	}
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && line == "" {
		fmt.Fprintln(os.Stderr, "mkhtpasswd: no password on stdin")
		os.Exit(1)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(strings.TrimRight(line, "\r\n")), 10)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkhtpasswd:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*users, []byte(flag.Arg(0)+":"+string(h)+"\n"), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "mkhtpasswd:", err)
		os.Exit(1)
	}
}
