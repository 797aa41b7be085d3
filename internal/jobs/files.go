package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// fileTTL is how long an uploaded input file is kept usable.
const fileTTL = 24 * time.Hour

// fileMeta describes an uploaded input file, stored beside it.
type fileMeta struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	ContentType string          `json:"content_type"`
	Size        int64           `json:"size"`
	SHA256      string          `json:"sha256"`
	Metadata    json.RawMessage `json:"metadata"`
	CreatedAt   time.Time       `json:"created_at"`
	ExpiresAt   time.Time       `json:"expires_at"`
}

// fileKey keeps an upload under its owner; "file_" cannot begin a
// prediction id, so uploads and results never share a folder.
func fileKey(o tollgate.Owner, id string) tollgate.BlobKey {
	return tollgate.BlobKey{TenantID: o.TenantID, UserID: o.UserID, PredictionID: "file_" + id}
}

// fileView is an upload in the files API's shape.
func (s *Service) fileView(m *fileMeta) map[string]any {
	return map[string]any{"id": m.ID, "name": m.Name, "content_type": m.ContentType, "size": m.Size,
		"etag": m.SHA256, "checksums": map[string]string{"sha256": m.SHA256}, "metadata": m.Metadata,
		"created_at": m.CreatedAt.UTC().Format(time.RFC3339Nano), "expires_at": m.ExpiresAt.UTC().Format(time.RFC3339Nano),
		"urls": map[string]string{"get": s.fileURL(m.ID)}}
}

func (s *Service) fileURL(id string) string { return s.links.base + "/v1/files/" + url.PathEscape(id) }

// maxUpload is the largest file input of any model.
func (s *Service) maxUpload() int64 { return max(s.maxBody-64<<10, 1<<20) / 4 * 3 }

// createFile answers POST /v1/files: a multipart upload (field "content",
// optional JSON "metadata") kept for the caller for 24 hours, usable as
// a file input by its urls.get.
func (s *Service) createFile(w http.ResponseWriter, r *http.Request) error {
	_, o, err := s.caller(r)
	if err != nil {
		return err
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.maxUpload()+64<<10)
	mr, err := r.MultipartReader()
	if err != nil {
		return tollgate.Errorf(tollgate.EInvalid, "want a multipart/form-data body with a content field")
	}
	var data []byte
	meta := &fileMeta{ID: newJobID(), Metadata: json.RawMessage("{}")}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return tollgate.Errorf(tollgate.ETooLarge, "the file is larger than %d bytes", s.maxUpload())
		} else if err != nil {
			return tollgate.Errorf(tollgate.EInvalid, "the multipart body is malformed")
		}
		b, err := io.ReadAll(part)
		if errors.As(err, &tooLarge) {
			return tollgate.Errorf(tollgate.ETooLarge, "the file is larger than %d bytes", s.maxUpload())
		} else if err != nil {
			return tollgate.Errorf(tollgate.EInvalid, "the multipart body is malformed")
		}
		switch part.FormName() {
		case "content":
			data, meta.Name = b, part.FileName()
		case "metadata":
			if !json.Valid(b) {
				return tollgate.Errorf(tollgate.EInvalid, "metadata: want JSON")
			}
			meta.Metadata = b
		}
	}
	if data == nil {
		return tollgate.Errorf(tollgate.EInvalid, "content: required")
	}
	if int64(len(data)) > s.maxUpload() {
		return tollgate.Errorf(tollgate.ETooLarge, "the file is larger than %d bytes", s.maxUpload())
	}
	sum := sha256.Sum256(data)
	now := s.now().UTC()
	meta.ContentType, meta.Size, meta.SHA256 = http.DetectContentType(data), int64(len(data)), hex.EncodeToString(sum[:])
	meta.CreatedAt, meta.ExpiresAt = now, now.Add(fileTTL)
	if meta.Name == "" || len(meta.Name) > 200 {
		meta.Name = "file"
	}
	mj, _ := json.Marshal(meta)
	key := fileKey(o, meta.ID)
	if err := s.store.AddUpload(r.Context(), &tollgate.Upload{ID: meta.ID, Owner: o, ExpiresAt: meta.ExpiresAt}); err != nil {
		return err
	}
	if _, err := s.blobs.Put(r.Context(), key, "content", meta.ContentType, data); err != nil {
		return err
	}
	if _, err := s.blobs.Put(r.Context(), key, "meta.json", "application/json", mj); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusCreated, s.fileView(meta))
	return nil
}

// openFile reads the caller's upload: ENotFound when it is not theirs, or
// expired.
func (s *Service) openFile(r *http.Request, o tollgate.Owner, id string) (*fileMeta, []byte, error) {
	if id == "" || strings.ContainsAny(id, "/.") {
		return nil, nil, tollgate.Errorf(tollgate.ENotFound, "no such file")
	}
	read := func(name string) ([]byte, error) {
		f, _, err := s.blobs.Open(r.Context(), fileKey(o, id), name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return io.ReadAll(f)
	}
	mj, err := read("meta.json")
	if err != nil {
		return nil, nil, err
	}
	var meta fileMeta
	if json.Unmarshal(mj, &meta) != nil || !s.now().Before(meta.ExpiresAt) {
		return nil, nil, tollgate.Errorf(tollgate.ENotFound, "no such file")
	}
	data, err := read("content")
	if err != nil {
		return nil, nil, err
	}
	return &meta, data, nil
}

func (s *Service) getFile(w http.ResponseWriter, r *http.Request) error {
	_, o, err := s.caller(r)
	if err != nil {
		return err
	}
	meta, _, err := s.openFile(r, o, r.PathValue("id"))
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, s.fileView(meta))
	return nil
}

func (s *Service) deleteFile(w http.ResponseWriter, r *http.Request) error {
	_, o, err := s.caller(r)
	if err != nil {
		return err
	}
	if _, _, err := s.openFile(r, o, r.PathValue("id")); err != nil {
		return err
	}
	if err := s.blobs.Delete(r.Context(), fileKey(o, r.PathValue("id"))); err != nil {
		return err
	}
	if err := s.store.RemoveUpload(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// removeExpiredUploads deletes the uploads past their 24 hours from the
// result store, then forgets them; every replica may do it at once.
func (s *Service) removeExpiredUploads(ctx context.Context) error {
	for {
		expired, err := s.store.ExpiredUploads(ctx, s.now(), 100)
		if err != nil {
			return err
		}
		for _, u := range expired {
			if err := s.blobs.Delete(ctx, fileKey(u.Owner, u.ID)); err != nil {
				return fmt.Errorf("delete an expired upload: %w", err)
			}
			if err := s.store.RemoveUpload(ctx, u.ID); err != nil {
				return err
			}
		}
		if len(expired) < 100 {
			return nil
		}
	}
}

// fileResolver turns the caller's upload URLs in file inputs into data:
// URIs; any other string is left for checkFile to judge.
func (s *Service) fileResolver(r *http.Request, o tollgate.Owner) func(string) (string, error) {
	prefix := s.links.base + "/v1/files/"
	return func(v string) (string, error) {
		id, ok := strings.CutPrefix(v, prefix)
		if !ok {
			return v, nil
		}
		meta, data, err := s.openFile(r, o, id)
		if err != nil {
			return "", fmt.Errorf("no such file of yours")
		}
		return "data:" + meta.ContentType + ";base64," + base64.StdEncoding.EncodeToString(data), nil
	}
}
