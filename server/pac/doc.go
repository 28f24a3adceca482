// Package pac writes and serves the gateway's proxy auto-configuration
// file (draft-socks6-extensions-00, "Proxy Auto-Configuration"): the
// JavaScript function FindProxyForURL that browsers and many other
// programs run for every URL, fetched from a configured address or found
// by WPAD (the DHCP option 252 or the name "wpad"). It sends what the
// gateway serves to "SOCKS5 host:port" and the local network, plain host
// names and the machine itself to "DIRECT".
//
// PAC cannot say TLS or the extensions: programs that use it speak plain
// SOCKS5 to the gateway. A PAC file is code that clients run, so it is
// generated from checked values only and served with a content type and
// nothing else.
package pac
