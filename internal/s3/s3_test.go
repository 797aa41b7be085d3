package s3_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/tollgate/tollgate/internal/s3"
	"github.com/tollgate/tollgate/internal/storetest"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// fakeS3 runs an in-process S3 server and returns its host:port.
func fakeS3(t *testing.T) string {
	t.Helper()
	fake := gofakes3.New(s3mem.New()).Server()
	// gofakes3 wants a Content-Length header on every object PUT, which
	// Go's client leaves out for an empty body; real S3 servers do not.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.Header.Get("Content-Length") == "" && (r.ContentLength == 0 || r.Header.Get("X-Amz-Decoded-Content-Length") == "0") {
			r.Header.Set("Content-Length", "0")
		}
		fake.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// openOn opens a store on a new bucket of endpoint.
func openOn(t *testing.T, endpoint, userinfo string) tollgate.BlobStore {
	t.Helper()
	bucket := "tg-" + strings.ToLower(rand.Text()[:10])
	cfg, err := s3.ParseURL("s3://"+userinfo+bucket+"/results?endpoint="+endpoint+"&secure=false&create_bucket=true&lookup=path&region=us-east-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s3.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBlobsGofakes3(t *testing.T) {
	endpoint := fakeS3(t)
	storetest.RunBlobs(t, func(t *testing.T) tollgate.BlobStore { return openOn(t, endpoint, "key:secret@") })
}

// TestBlobsSeaweedFS runs the suite on a real S3 server, SeaweedFS's weed
// binary from PATH or $TOLLGATE_TEST_WEED.
func TestBlobsSeaweedFS(t *testing.T) {
	weed := os.Getenv("TOLLGATE_TEST_WEED")
	if weed == "" {
		var err error
		if weed, err = exec.LookPath("weed"); err != nil {
			t.Skip("no weed binary on PATH and TOLLGATE_TEST_WEED not set; skipping the SeaweedFS run")
		}
	}
	port := freePort(t)
	dir := t.TempDir()
	cmd := exec.Command(weed, "server", "-s3", fmt.Sprintf("-s3.port=%d", port), "-ip.bind=127.0.0.1", "-ip=127.0.0.1",
		fmt.Sprintf("-master.port=%d", freePort(t)), fmt.Sprintf("-volume.port=%d", freePort(t)), fmt.Sprintf("-filer.port=%d", freePort(t)),
		// Every bucket is a collection that grows volumes of its own: room
		// for the suite's buckets, each volume small.
		"-volume.max=100", "-master.volumeSizeLimitMB=64", "-dir="+dir)
	cmd.Stdout, cmd.Stderr = nil, nil
	logf, err := os.Create(filepath.Join(dir, "weed.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
		if t.Failed() {
			log, _ := os.ReadFile(logf.Name())
			t.Logf("the weed log:\n%s", log)
		}
	})
	endpoint := fmt.Sprintf("127.0.0.1:%d", port)
	waitS3(t, endpoint, filepath.Join(dir, "weed.log"))
	storetest.RunBlobs(t, func(t *testing.T) tollgate.BlobStore { return openOn(t, endpoint, "") })
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitS3 waits until endpoint answers a bucket check, up to a minute.
func waitS3(t *testing.T, endpoint, logPath string) {
	t.Helper()
	cfg, _ := s3.ParseURL("s3://probe-bucket?endpoint="+endpoint+"&secure=false&create_bucket=true&lookup=path", nil)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := s3.Open(ctx, cfg); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			log, _ := os.ReadFile(logPath)
			t.Fatalf("SeaweedFS S3 on %s did not answer within a minute; its log:\n%s", endpoint, log)
		case <-tick.C:
		}
	}
}

func TestOpenMissingBucket(t *testing.T) {
	endpoint := fakeS3(t)
	cfg, err := s3.ParseURL("s3://absent-bucket?endpoint="+endpoint+"&secure=false&lookup=path", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s3.Open(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "create_bucket=true") {
		t.Errorf("Open on a missing bucket = %v, want an error naming create_bucket=true", err)
	}
}

func TestParseURL(t *testing.T) {
	env := map[string]string{"AWS_ACCESS_KEY_ID": "envkey", "AWS_SECRET_ACCESS_KEY": "envsecret"}
	getenv := func(k string) string { return env[k] }
	c, err := s3.ParseURL("s3://results/tg/prod?endpoint=10.0.0.5:9000&secure=false&region=eu-west-1", getenv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Bucket != "results" || c.Prefix != "tg/prod/" || c.Endpoint != "10.0.0.5:9000" || c.Secure || c.Region != "eu-west-1" ||
		c.CreateBucket || c.AccessKey != "envkey" || c.SecretKey != "envsecret" {
		t.Errorf("parsed %+v", c)
	}
	c, err = s3.ParseURL("s3://ak:sk@results", getenv)
	if err != nil {
		t.Fatal(err)
	}
	if c.AccessKey != "ak" || c.SecretKey != "sk" || c.Endpoint != "s3.amazonaws.com" || !c.Secure || c.Prefix != "" {
		t.Errorf("userinfo credentials and defaults: %+v", c)
	}
	for _, bad := range []string{
		"", "results", "http://bucket", "s3://", "s3://Bad_Bucket", "s3://b", "s3://bucket/../x", "s3://bucket?endpoint=",
		"s3://bucket?secure=maybe", "s3://bucket?lookup=sideways", "s3://bucket?typo=1", "s3://onlykey@bucket", "s3://%zz",
	} {
		if _, err := s3.ParseURL(bad, nil); err == nil {
			t.Errorf("ParseURL(%q) = nil error, want one", bad)
		}
	}
	if _, err := s3.ParseURL("s3://ak:topsecret@bucket?typo=1", nil); err == nil || strings.Contains(err.Error(), "topsecret") {
		t.Errorf("error %v must not show the secret", err)
	}
}
