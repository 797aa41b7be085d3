package storetest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// RunBlobs is the conformance suite of tollgate.BlobStore: the file store
// under data_dir/results and object storage pass the same cases. open
// returns a new, empty store for each call and arranges its cleanup.
func RunBlobs(t *testing.T, open func(t *testing.T) tollgate.BlobStore) {
	t.Run("PutOpen", func(t *testing.T) { testBlobPutOpen(t, open(t)) })
	t.Run("Range", func(t *testing.T) { testBlobRange(t, open(t)) })
	t.Run("Missing", func(t *testing.T) { testBlobMissing(t, open(t)) })
	t.Run("BadNames", func(t *testing.T) { testBlobBadNames(t, open(t)) })
	t.Run("KeysApart", func(t *testing.T) { testBlobKeysApart(t, open(t)) })
	t.Run("Delete", func(t *testing.T) { testBlobDelete(t, open(t)) })
}

var blobKey = tollgate.BlobKey{TenantID: "acme", UserID: "usr_alice", PredictionID: "p1"}

// mustPutBlob stores body and fails the test on an error.
func mustPutBlob(tb testing.TB, s tollgate.BlobStore, k tollgate.BlobKey, name, ct string, body []byte) {
	tb.Helper()
	if _, err := s.Put(context.Background(), k, name, ct, body); err != nil {
		tb.Fatalf("Put %v %s: %v", k, name, err)
	}
}

// readBlob returns the whole content of key's file name, or the error of
// Open.
func readBlob(tb testing.TB, s tollgate.BlobStore, k tollgate.BlobKey, name string) ([]byte, *tollgate.Blob, error) {
	tb.Helper()
	r, b, err := s.Open(context.Background(), k, name)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	body, err := io.ReadAll(r)
	if err != nil {
		tb.Fatalf("read %v %s: %v", k, name, err)
	}
	return body, b, nil
}

// wantNotFound fails unless key's file name is ENotFound.
func wantNotFound(tb testing.TB, s tollgate.BlobStore, k tollgate.BlobKey, name string) {
	tb.Helper()
	body, _, err := readBlob(tb, s, k, name)
	if code := tollgate.ErrorCode(err); code != tollgate.ENotFound {
		tb.Errorf("Open %+v %q = %q, %v (code %q), want %s", k, name, body, err, code, tollgate.ENotFound)
	}
}

func testBlobPutOpen(t *testing.T, s tollgate.BlobStore) {
	ctx := t.Context()
	png := []byte("\x89PNG\r\n\x1a\nimage bytes")
	b, err := s.Put(ctx, blobKey, "out.png", "image/png", png)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if b.Name != "out.png" || b.Size != int64(len(png)) || b.ContentType != "image/png" {
		t.Errorf("Put = %+v, want out.png, %d bytes, image/png", b, len(png))
	}
	body, got, err := readBlob(t, s, blobKey, "out.png")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if !bytes.Equal(body, png) {
		t.Errorf("Open read %q, want %q", body, png)
	}
	if got.Name != "out.png" || got.Size != int64(len(png)) || got.ContentType != "image/png" || got.ModTime.IsZero() {
		t.Errorf("Open = %+v, want out.png, %d bytes, image/png and a modification time", got, len(png))
	}

	t.Run("content types", func(t *testing.T) {
		for name, ct := range map[string]string{"a.json": "application/json", "b.mp4": "video/mp4", "c.txt": "text/plain; charset=utf-8"} {
			mustPutBlob(t, s, blobKey, name, ct, []byte("x"))
			if _, got, err := readBlob(t, s, blobKey, name); err != nil || got.ContentType != ct {
				t.Errorf("Open %s = %+v, %v; want Content-Type %q", name, got, err, ct)
			}
		}
	})
	t.Run("overwrite", func(t *testing.T) {
		mustPutBlob(t, s, blobKey, "again.txt", "text/plain; charset=utf-8", []byte("first, longer"))
		mustPutBlob(t, s, blobKey, "again.txt", "text/plain; charset=utf-8", []byte("second"))
		if body, b, err := readBlob(t, s, blobKey, "again.txt"); err != nil || string(body) != "second" || b.Size != 6 {
			t.Errorf("after two Puts read %q (%+v, %v), want the second", body, b, err)
		}
	})
	t.Run("empty and large", func(t *testing.T) {
		mustPutBlob(t, s, blobKey, "empty.bin", "application/octet-stream", nil)
		if body, b, err := readBlob(t, s, blobKey, "empty.bin"); err != nil || len(body) != 0 || b.Size != 0 {
			t.Errorf("empty file read %q (%+v, %v)", body, b, err)
		}
		large := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
		mustPutBlob(t, s, blobKey, "large.bin", "application/octet-stream", large)
		if body, b, err := readBlob(t, s, blobKey, "large.bin"); err != nil || !bytes.Equal(body, large) || b.Size != int64(len(large)) {
			t.Errorf("1 MiB file read back %d bytes (%+v, %v)", len(body), b, err)
		}
	})
}

func testBlobRange(t *testing.T, s tollgate.BlobStore) {
	body := []byte("0123456789abcdefghij")
	mustPutBlob(t, s, blobKey, "digits.txt", "text/plain; charset=utf-8", body)
	r, _, err := s.Open(t.Context(), blobKey, "digits.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if n, err := r.Seek(0, io.SeekEnd); err != nil || n != int64(len(body)) {
		t.Errorf("Seek to the end = %d, %v; want %d", n, err, len(body))
	}
	if n, err := r.Seek(10, io.SeekStart); err != nil || n != 10 {
		t.Fatalf("Seek(10) = %d, %v", n, err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(r, buf); err != nil || string(buf) != "abcd" {
		t.Errorf("read after Seek(10) = %q, %v; want abcd", buf, err)
	}
	if _, err := r.Seek(2, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(r, buf); err != nil || string(buf) != "2345" {
		t.Errorf("read after seeking back = %q, %v; want 2345", buf, err)
	}

	// What the results handler does with it: a Range request answered 206.
	t.Run("served with Range", func(t *testing.T) {
		for rng, want := range map[string]string{"bytes=10-13": "abcd", "bytes=-3": "hij", "bytes=18-": "ij"} {
			f, b, err := s.Open(t.Context(), blobKey, "digits.txt")
			if err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest("GET", "/digits.txt", nil)
			req.Header.Set("Range", rng)
			w := httptest.NewRecorder()
			http.ServeContent(w, req, b.Name, b.ModTime, f)
			f.Close()
			if w.Code != http.StatusPartialContent || w.Body.String() != want {
				t.Errorf("Range %s answered %d %q, want 206 %q", rng, w.Code, w.Body, want)
			}
		}
	})
}

func testBlobMissing(t *testing.T, s tollgate.BlobStore) {
	wantNotFound(t, s, blobKey, "never.png")
	mustPutBlob(t, s, blobKey, "out.png", "image/png", []byte("x"))
	wantNotFound(t, s, blobKey, "other.png")
	wantNotFound(t, s, blobKey, "out.PNG")
	wantNotFound(t, s, tollgate.BlobKey{TenantID: "acme", UserID: "usr_alice", PredictionID: "p2"}, "out.png")
}

func testBlobBadNames(t *testing.T, s tollgate.BlobStore) {
	mustPutBlob(t, s, blobKey, "out.png", "image/png", []byte("x"))
	for _, name := range []string{"", ".", "..", ".hidden", "../out.png", "/etc/passwd", "a/b.png", `a\b.png`, "a\x00.png",
		strings.Repeat("n", 300)} {
		if _, err := s.Put(t.Context(), blobKey, name, "image/png", []byte("bad")); tollgate.ErrorCode(err) != tollgate.EInvalid {
			t.Errorf("Put name %q = %v, want %s", name, err, tollgate.EInvalid)
		}
		wantNotFound(t, s, blobKey, name)
	}
	for _, k := range []tollgate.BlobKey{{TenantID: "acme", PredictionID: "p1"}, {TenantID: "acme", UserID: "usr_alice"}} {
		if _, err := s.Put(t.Context(), k, "out.png", "image/png", []byte("bad")); tollgate.ErrorCode(err) != tollgate.EInvalid {
			t.Errorf("Put with key %+v = %v, want %s", k, err, tollgate.EInvalid)
		}
		wantNotFound(t, s, k, "out.png")
	}
	if body, _, err := readBlob(t, s, blobKey, "out.png"); err != nil || string(body) != "x" {
		t.Errorf("after refused Puts the file reads %q, %v; want it unchanged", body, err)
	}
}

// testBlobKeysApart: every tenant, user and prediction has files of its
// own, whatever the ids hold (separators, dots, an empty tenant).
func testBlobKeysApart(t *testing.T, s tollgate.BlobStore) {
	keys := []tollgate.BlobKey{
		{TenantID: "acme", UserID: "usr_alice", PredictionID: "p1"},
		{TenantID: "acme", UserID: "usr_alice", PredictionID: "p10"},
		{TenantID: "acme", UserID: "usr_bob", PredictionID: "p1"},
		{TenantID: "other", UserID: "usr_alice", PredictionID: "p1"},
		{TenantID: "", UserID: "usr_alice", PredictionID: "p1"},
		{TenantID: "", UserID: "acme", PredictionID: "usr_alice"},
		{TenantID: "acme", UserID: "usr_alice/p1", PredictionID: "x"},
		{TenantID: "acme", UserID: "..", PredictionID: "p1"},
		{TenantID: "acme", UserID: "usr_alice", PredictionID: "../../other/usr_alice/p1"},
		{TenantID: "/abs", UserID: "/etc", PredictionID: "passwd"},
	}
	for i, k := range keys {
		mustPutBlob(t, s, k, "out.txt", "text/plain; charset=utf-8", []byte{byte('A' + i)})
	}
	for i, k := range keys {
		if body, _, err := readBlob(t, s, k, "out.txt"); err != nil || string(body) != string(rune('A'+i)) {
			t.Errorf("key %+v reads %q, %v; want its own %q", k, body, err, string(rune('A'+i)))
		}
	}
}

func testBlobDelete(t *testing.T, s tollgate.BlobStore) {
	ctx := t.Context()
	p10 := tollgate.BlobKey{TenantID: "acme", UserID: "usr_alice", PredictionID: "p10"}
	bob := tollgate.BlobKey{TenantID: "acme", UserID: "usr_bob", PredictionID: "p1"}
	emptyTenant := tollgate.BlobKey{UserID: "acme", PredictionID: "usr_alice"}
	mustPutBlob(t, s, blobKey, "a.png", "image/png", []byte("a"))
	mustPutBlob(t, s, blobKey, "b.json", "application/json", []byte("{}"))
	for _, k := range []tollgate.BlobKey{p10, bob, emptyTenant} {
		mustPutBlob(t, s, k, "a.png", "image/png", []byte("kept"))
	}
	if err := s.Delete(ctx, blobKey); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantNotFound(t, s, blobKey, "a.png")
	wantNotFound(t, s, blobKey, "b.json")
	for _, k := range []tollgate.BlobKey{p10, bob, emptyTenant} {
		if body, _, err := readBlob(t, s, k, "a.png"); err != nil || string(body) != "kept" {
			t.Errorf("after deleting %+v, %+v reads %q, %v; want it kept", blobKey, k, body, err)
		}
	}
	if err := s.Delete(ctx, blobKey); err != nil {
		t.Errorf("Delete of a deleted prediction = %v, want nil", err)
	}
	if err := s.Delete(ctx, tollgate.BlobKey{TenantID: "acme", UserID: "usr_carol", PredictionID: "never"}); err != nil {
		t.Errorf("Delete of a prediction without files = %v, want nil", err)
	}
	// A prediction of the empty tenant whose user and prediction ids read
	// like another tenant's user: deleting it leaves that user's files.
	mustPutBlob(t, s, tollgate.BlobKey{TenantID: "acme", UserID: "usr_alice", PredictionID: "p3"}, "a.png", "image/png", []byte("kept"))
	if err := s.Delete(ctx, emptyTenant); err != nil {
		t.Fatal(err)
	}
	wantNotFound(t, s, emptyTenant, "a.png")
	if body, _, err := readBlob(t, s, tollgate.BlobKey{TenantID: "acme", UserID: "usr_alice", PredictionID: "p3"}, "a.png"); err != nil || string(body) != "kept" {
		t.Errorf("after deleting %+v, acme's usr_alice's p3 reads %q, %v; want it kept", emptyTenant, body, err)
	}
	mustPutBlob(t, s, blobKey, "a.png", "image/png", []byte("new"))
	if body, _, err := readBlob(t, s, blobKey, "a.png"); err != nil || string(body) != "new" {
		t.Errorf("a file stored after Delete reads %q, %v", body, err)
	}
	if err := s.Delete(ctx, tollgate.BlobKey{TenantID: "acme"}); tollgate.ErrorCode(err) != tollgate.EInvalid {
		t.Errorf("Delete without a user and prediction = %v, want %s (never a whole tenant)", err, tollgate.EInvalid)
	}
	if _, _, err := readBlob(t, s, blobKey, "a.png"); err != nil {
		t.Errorf("after a refused Delete: %v", err)
	}
}
