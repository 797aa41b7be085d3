package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestFullDiskAnswers503: with the disk under data_dir full, a metered
// call is refused with 503 service_unavailable and a Retry-After (not
// 500), /readyz says the ledger cannot write, and both recover once space
// is back.
func TestFullDiskAnswers503(t *testing.T) {
	disk := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", disk).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs to fill (%v: %s); internal/sqlite's TestJournalBacksOff covers the back-off", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", disk).Run() })
	up := newUpstream(t)
	g := setup(t, "data_dir: "+filepath.Join(disk, "data")+"\n"+`routes:
  - name: ocr
    path: /ocr/
    upstreams: [`+up.URL+`]
    price: {per_request: "0.01"}
`)
	g.mustCLI("user", "add", "alice", "--password", "alice-password", "--tenant", "acme", "--role", "user")
	tok := g.login("alice", "alice-password").AccessToken
	if code, r := g.readyz(); code != 200 || !r.Ledger.Writable {
		t.Fatalf("/readyz before the disk fills: %d %+v", code, r)
	}

	filler := filepath.Join(disk, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for chunk := make([]byte, 64<<10); ; {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Close()
	hits := up.hits.Load()
	for range 20 {
		resp, body := g.do("POST", "/ocr/page", tok, `{}`)
		unavailable(t, "a metered call on a full disk", resp, body)
	}
	if n := up.hits.Load() - hits; n != 0 {
		t.Errorf("%d calls reached the upstream unrecorded", n)
	}
	if code, r := g.readyz(); code != 503 || r.Ledger.Writable || r.Status != "not_ready" {
		t.Fatalf("/readyz on a full disk: %d %+v; want 503 with the ledger not writable", code, r)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if !eventually(10*time.Second, func() bool { code, _ := g.readyz(); return code == 200 }) {
		_, r := g.readyz()
		t.Fatalf("/readyz once space is back: %+v; want ready within the back-off", r)
	}
	if resp, body := g.do("POST", "/ocr/page", tok, `{}`); resp.StatusCode != 200 {
		t.Fatalf("a call once space is back: %d %s", resp.StatusCode, body)
	}
}
