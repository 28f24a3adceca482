package main

import (
	"slices"
	"testing"
)

// The program does not see the gateway's password: SOCKS6_PASSWORD and
// proxy variables whose URL has one are left out; everything else stays.
func TestProgramEnv(t *testing.T) {
	in := []string{
		"PATH=/usr/bin",
		"SOCKS6_PASSWORD=secret",
		"ALL_PROXY=socks5://alice:secret@192.0.2.1:1080",
		"all_proxy=socks5h://alice@192.0.2.1:1080",
		"SOCKS6_PROXY=socks6://bob:hunter2@[2001:db8::1]:1080?ext=require",
		"SOCKS_SERVER=192.0.2.1:1080",
		"HTTP_PROXY=http://u:p@192.0.2.9:3128", // not socksify's
	}
	want := []string{
		"PATH=/usr/bin",
		"all_proxy=socks5h://alice@192.0.2.1:1080",
		"SOCKS_SERVER=192.0.2.1:1080",
		"HTTP_PROXY=http://u:p@192.0.2.9:3128",
	}
	if got := programEnv(in); !slices.Equal(got, want) {
		t.Errorf("programEnv:\n got %q\nwant %q", got, want)
	}
}
