package socks6test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/netip"
	"testing"
	"time"
)

// A Cert is a self-signed certificate made for one test.
type Cert struct {
	TLS     tls.Certificate
	Pool    *x509.CertPool // holds the certificate: a client's RootCAs
	CertPEM []byte
	KeyPEM  []byte
}

// NewCert makes a self-signed ECDSA P-256 certificate, valid for an hour,
// for hosts (IP addresses or DNS names).
func NewCert(t testing.TB, hosts ...string) *Cert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("certificate key: %v", err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "socks6 test gateway"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, h := range hosts {
		if ip, err := netip.ParseAddr(h); err == nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip.AsSlice())
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("certificate: %v", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("certificate: %v", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("certificate key: %v", err)
	}
	c := &Cert{
		TLS:     tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		Pool:    x509.NewCertPool(),
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
	}
	c.Pool.AddCert(leaf)
	return c
}

// ServerConfig returns a TLS server configuration with c.
func (c *Cert) ServerConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{c.TLS}}
}

// ClientConfig returns a TLS client configuration that trusts c.
func (c *Cert) ClientConfig() *tls.Config {
	return &tls.Config{RootCAs: c.Pool}
}

// A TLSServable is a server that ServeGatewayTLS can run.
type TLSServable interface {
	ServeTLS(net.Listener, *tls.Config) error
	Shutdown(context.Context) error
}

// ServeGatewayTLS is ServeGateway for srv's ServeTLS with config.
func ServeGatewayTLS(t testing.TB, srv TLSServable, config *tls.Config) string {
	t.Helper()
	return serveGateway(t, func(ln net.Listener) error { return srv.ServeTLS(ln, config) }, srv.Shutdown)
}
