module github.com/socks6/socks6

go 1.26.0

require (
	golang.org/x/crypto v0.45.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)
