package internal

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// TestDraftRenders builds the Internet-Draft the way `make draft` does:
// mmark to xml2rfc v3 XML and HTML with nothing on stderr, a well-formed
// XML file, every cross reference defined and every anchor unique. The
// draft's test vectors are checked against proto by proto's golden test.
func TestDraftRenders(t *testing.T) {
	for _, tool := range []string{"make", "mmark", "xmllint"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (Debian packages make, mmark, libxml2-utils): %v", tool, err)
		}
	}
	root, _ := module(t)
	cmd := exec.CommandContext(t.Context(), "make", "-C", filepath.Join(root, "rfc-draft"), "all")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make -C rfc-draft: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
