package jobs

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"os"
	"path/filepath"
	"strings"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// FileBlobs keeps results as files under a root folder (data_dir/results):
// root/<tenant>/<user>/<prediction>/<name>, each id segment encoded so no
// id can name a path outside its own folder.
type FileBlobs struct {
	root string
}

var _ tollgate.BlobStore = (*FileBlobs)(nil)

// NewFileBlobs returns a store under root, creating it (mode 0700).
func NewFileBlobs(root string) (*FileBlobs, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("create results folder: %w", err)
	}
	return &FileBlobs{root: root}, nil
}

// segment encodes one id as a folder name. The empty id (a user of no
// tenant) is "_", which no non-empty id encodes to, so no key's folder is
// ever another key's parent.
func segment(s string) string {
	if s == "" {
		return "_"
	}
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

func (f *FileBlobs) dir(k tollgate.BlobKey) (string, error) {
	if k.UserID == "" || k.PredictionID == "" {
		return "", tollgate.Errorf(tollgate.EInvalid, "a result needs a user and a prediction")
	}
	return filepath.Join(f.root, segment(k.TenantID), segment(k.UserID), segment(k.PredictionID)), nil
}

// validName reports whether name is a plain file name.
func validName(name string) bool {
	return name != "" && len(name) <= 200 && !strings.ContainsAny(name, `/\`+"\x00") && !strings.HasPrefix(name, ".")
}

// Put writes body to a temporary file and renames it into place, so a
// reader never sees half a file.
func (f *FileBlobs) Put(_ context.Context, k tollgate.BlobKey, name, contentType string, body []byte) (*tollgate.Blob, error) {
	if !validName(name) {
		return nil, tollgate.Errorf(tollgate.EInvalid, "invalid result file name %q", name)
	}
	dir, err := f.dir(k)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create result folder: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".put-*")
	if err != nil {
		return nil, fmt.Errorf("store result: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(body); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("store result: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("store result: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return nil, fmt.Errorf("store result: %w", err)
	}
	return &tollgate.Blob{Name: name, ContentType: contentType, Size: int64(len(body))}, nil
}

// Open opens a result; its Content-Type comes from the name's extension.
func (f *FileBlobs) Open(_ context.Context, k tollgate.BlobKey, name string) (tollgate.BlobReader, *tollgate.Blob, error) {
	if !validName(name) {
		return nil, nil, tollgate.Errorf(tollgate.ENotFound, "no such result")
	}
	dir, err := f.dir(k)
	if err != nil {
		return nil, nil, tollgate.Errorf(tollgate.ENotFound, "no such result")
	}
	file, err := os.Open(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, tollgate.Errorf(tollgate.ENotFound, "no such result")
	} else if err != nil {
		return nil, nil, fmt.Errorf("open result: %w", err)
	}
	st, err := file.Stat()
	if err != nil || !st.Mode().IsRegular() {
		file.Close()
		return nil, nil, tollgate.Errorf(tollgate.ENotFound, "no such result")
	}
	ct := mime.TypeByExtension(filepath.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	return file, &tollgate.Blob{Name: name, ContentType: ct, Size: st.Size(), ModTime: st.ModTime()}, nil
}

// Delete removes the prediction's folder.
func (f *FileBlobs) Delete(_ context.Context, k tollgate.BlobKey) error {
	dir, err := f.dir(k)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("delete results: %w", err)
	}
	return nil
}

// extensionFor returns a file extension for a content type, ".bin" when
// none is known.
func extensionFor(contentType string) string {
	mt, _, _ := mime.ParseMediaType(contentType)
	switch mt {
	case "image/png":
		return ".png"
	case "image/jpeg":
		return ".jpg"
	case "image/webp":
		return ".webp"
	case "image/gif":
		return ".gif"
	case "video/mp4":
		return ".mp4"
	case "audio/mpeg":
		return ".mp3"
	case "audio/wav", "audio/x-wav":
		return ".wav"
	case "application/json":
		return ".json"
	case "text/plain":
		return ".txt"
	}
	if exts, _ := mime.ExtensionsByType(mt); len(exts) > 0 {
		return exts[0]
	}
	return ".bin"
}
