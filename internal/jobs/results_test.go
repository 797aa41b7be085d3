package jobs_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/tollgate/tollgate/internal/jobs"
	"github.com/tollgate/tollgate/internal/s3"
	"github.com/tollgate/tollgate/internal/storetest"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// fakeS3Blobs is a result store on a bucket of an in-process S3 server
// (gofakes3) of the test's own.
func fakeS3Blobs(t *testing.T) tollgate.BlobStore {
	t.Helper()
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(srv.Close)
	cfg, err := s3.ParseURL("s3://tg-results/cluster?endpoint="+strings.TrimPrefix(srv.URL, "http://")+
		"&secure=false&create_bucket=true&lookup=path&region=us-east-1", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.AccessKey, cfg.SecretKey = "key", "secret"
	blobs, err := s3.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return blobs
}

func TestFileBlobs(t *testing.T) {
	storetest.RunBlobs(t, func(t *testing.T) tollgate.BlobStore {
		s, err := jobs.NewFileBlobs(filepath.Join(t.TempDir(), "results"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestResultsInS3 runs a job whose output file is kept in S3 (gofakes3)
// and downloads it through its signed link, whole and by Range.
func TestResultsInS3(t *testing.T) {
	blobs := fakeS3Blobs(t)
	var e *env
	e = setupWith(t, "sqlite", models, echo(func() *clock { return e.clock }), blobs)
	p := e.create(t, "alice", "demo/echo", map[string]any{"prompt": "hi"}, "Prefer", "wait")
	if p.Status != "succeeded" {
		t.Fatalf("prediction %+v, want succeeded", p)
	}
	link := p.Output.(map[string]any)["image"].(string)
	if _, err := os.Stat(filepath.Join(e.dir, "results")); err == nil {
		t.Errorf("results folder %s exists; want results only in S3", filepath.Join(e.dir, "results"))
	}
	get := func(rng string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", link, nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(body)
	}
	resp, body := get("")
	if resp.StatusCode != 200 || body != "\x89PNG\r\n\x1a\nfake image bytes" || resp.Header.Get("Content-Type") != "image/png" ||
		resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("download %d %q %v, want the image as image/png with nosniff", resp.StatusCode, body, resp.Header)
	}
	resp, body = get("bytes=8-11")
	if resp.StatusCode != http.StatusPartialContent || body != "fake" || resp.Header.Get("Content-Range") != "bytes 8-11/24" {
		t.Errorf("range answer %d %q %q, want 206 \"fake\" bytes 8-11/24", resp.StatusCode, body, resp.Header.Get("Content-Range"))
	}
	// The object really is in the bucket, under the user's prefix.
	if r, b, err := blobs.Open(t.Context(), tollgate.BlobKey{TenantID: "acme", UserID: "usr_alice", PredictionID: p.ID}, "out.png"); err != nil || b.Size != 24 {
		t.Errorf("the result in S3: %+v, %v", b, err)
	} else {
		r.Close()
	}
}
