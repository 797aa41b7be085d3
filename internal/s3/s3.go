// Package s3 keeps job results in S3-compatible object storage (AWS S3,
// SeaweedFS, MinIO, ...), so every replica of a cluster reads the results
// any replica wrote.
package s3

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// Blobs is a tollgate.BlobStore on one bucket: an object per file, named
// <prefix>/<tenant>/<user>/<prediction>/<name>, each id encoded so no id
// can name another key's objects.
type Blobs struct {
	client *minio.Client
	bucket string
	prefix string // "" or ends with "/"
}

var _ tollgate.BlobStore = (*Blobs)(nil)

// Open connects to the store cfg describes and checks its bucket,
// creating it when missing if cfg.CreateBucket allows.
func Open(ctx context.Context, cfg *Config) (*Blobs, error) {
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds: cfg.credentials(), Secure: cfg.Secure, Region: cfg.Region, BucketLookup: cfg.Lookup,
	})
	if err != nil {
		return nil, fmt.Errorf("results: %w", err)
	}
	ok, err := client.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("results: bucket %s on %s: %w", cfg.Bucket, cfg.Endpoint, err)
	}
	if !ok {
		if !cfg.CreateBucket {
			return nil, fmt.Errorf("results: bucket %s does not exist on %s (create it, or add create_bucket=true to the results URL)", cfg.Bucket, cfg.Endpoint)
		}
		if err := client.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region}); err != nil {
			return nil, fmt.Errorf("results: create bucket %s: %w", cfg.Bucket, err)
		}
	}
	return &Blobs{client: client, bucket: cfg.Bucket, prefix: cfg.Prefix}, nil
}

// segment encodes one id as a path segment; the empty id (a user of no
// tenant) is "_", which no non-empty id encodes to.
func segment(s string) string {
	if s == "" {
		return "_"
	}
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

// dir returns the object-name prefix of key's files, ending in "/" so that
// one prediction's prefix never covers another's (p1 and p10).
func (b *Blobs) dir(k tollgate.BlobKey) (string, error) {
	if k.UserID == "" || k.PredictionID == "" {
		return "", tollgate.Errorf(tollgate.EInvalid, "a result needs a user and a prediction")
	}
	return b.prefix + segment(k.TenantID) + "/" + segment(k.UserID) + "/" + segment(k.PredictionID) + "/", nil
}

// validName reports whether name is a plain file name.
func validName(name string) bool {
	return name != "" && len(name) <= 200 && !strings.ContainsAny(name, `/\`+"\x00") && !strings.HasPrefix(name, ".")
}

// Put stores body as one object with its Content-Type; S3 replaces an
// object whole, so a reader never sees half a file.
func (b *Blobs) Put(ctx context.Context, k tollgate.BlobKey, name, contentType string, body []byte) (*tollgate.Blob, error) {
	if !validName(name) {
		return nil, tollgate.Errorf(tollgate.EInvalid, "invalid result file name %q", name)
	}
	dir, err := b.dir(k)
	if err != nil {
		return nil, err
	}
	var r io.Reader = bytes.NewReader(body)
	if len(body) == 0 {
		r = http.NoBody // sent with Content-Length: 0, which some servers require
	}
	info, err := b.client.PutObject(ctx, b.bucket, dir+name, r, int64(len(body)),
		minio.PutObjectOptions{ContentType: contentType})
	if err != nil {
		return nil, fmt.Errorf("store result: %w", err)
	}
	return &tollgate.Blob{Name: name, ContentType: contentType, Size: int64(len(body)), ModTime: info.LastModified}, nil
}

// Open opens a result for reading. The reader fetches ranges on demand, so
// a Range request reads only the bytes it asks for.
func (b *Blobs) Open(ctx context.Context, k tollgate.BlobKey, name string) (tollgate.BlobReader, *tollgate.Blob, error) {
	if !validName(name) {
		return nil, nil, tollgate.Errorf(tollgate.ENotFound, "no such result")
	}
	dir, err := b.dir(k)
	if err != nil {
		return nil, nil, tollgate.Errorf(tollgate.ENotFound, "no such result")
	}
	obj, err := b.client.GetObject(ctx, b.bucket, dir+name, minio.GetObjectOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("open result: %w", err)
	}
	st, err := obj.Stat()
	if err != nil {
		obj.Close()
		if notFound(err) {
			return nil, nil, tollgate.Errorf(tollgate.ENotFound, "no such result")
		}
		return nil, nil, fmt.Errorf("open result: %w", err)
	}
	ct := st.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	return obj, &tollgate.Blob{Name: name, ContentType: ct, Size: st.Size, ModTime: st.LastModified}, nil
}

// Delete removes every object under key's prefix.
func (b *Blobs) Delete(ctx context.Context, k tollgate.BlobKey) error {
	dir, err := b.dir(k)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx) // ends the listing on an early return
	defer cancel()
	for obj := range b.client.ListObjects(ctx, b.bucket, minio.ListObjectsOptions{Prefix: dir, Recursive: true}) {
		if obj.Err != nil {
			return fmt.Errorf("delete results: list: %w", obj.Err)
		}
		if err := b.client.RemoveObject(ctx, b.bucket, obj.Key, minio.RemoveObjectOptions{}); err != nil && !notFound(err) {
			return fmt.Errorf("delete results: %w", err)
		}
	}
	return nil
}

// notFound reports whether err is S3's answer for a missing object.
func notFound(err error) bool {
	var resp minio.ErrorResponse
	if !errors.As(err, &resp) {
		return false
	}
	return resp.StatusCode == http.StatusNotFound || resp.Code == "NoSuchKey"
}
