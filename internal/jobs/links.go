package jobs

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// links signs and checks result links: HMAC-SHA256 over the prediction
// id, the file name and the expiry, so a link names exactly one file for a
// limited time and needs no Authorization header.
type links struct {
	key  []byte
	base string // public URL, no trailing slash
}

// LoadLinkKey reads the result-link key from path, creating a random one
// (mode 0600) when the file does not exist.
func LoadLinkKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) < 32 {
			return nil, fmt.Errorf("result link key %s is shorter than 32 bytes", path)
		}
		return b, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read result link key: %w", err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("write result link key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return LoadLinkKey(path) // another process created it first
	} else if err != nil {
		return nil, fmt.Errorf("write result link key: %w", err)
	}
	if _, err := f.Write(key); err != nil {
		f.Close()
		return nil, fmt.Errorf("write result link key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write result link key: %w", err)
	}
	return key, nil
}

func (l *links) mac(prediction, name string, exp int64) string {
	h := hmac.New(sha256.New, l.key)
	fmt.Fprintf(h, "tollgate-result-v1\n%s\n%s\n%d", prediction, name, exp)
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// url returns the signed link of a result file, valid until exp.
func (l *links) url(prediction, name string, exp time.Time) string {
	return l.base + "/v1/results/" + url.PathEscape(prediction) + "/" + url.PathEscape(name) + "?" + l.query(prediction, name, exp)
}

// query is the signature of prediction's name until exp, as a query.
func (l *links) query(prediction, name string, exp time.Time) string {
	e := exp.Unix()
	return url.Values{"exp": {strconv.FormatInt(e, 10)}, "sig": {l.mac(prediction, name, e)}}.Encode()
}

// check verifies a link: EForbidden for a bad signature or an expired
// link.
func (l *links) check(prediction, name string, q url.Values, now time.Time) error {
	e, err := strconv.ParseInt(q.Get("exp"), 10, 64)
	if err != nil {
		return tollgate.Errorf(tollgate.EForbidden, "invalid result link")
	}
	want := l.mac(prediction, name, e)
	if !hmac.Equal([]byte(want), []byte(q.Get("sig"))) {
		return tollgate.Errorf(tollgate.EForbidden, "invalid result link")
	}
	if now.Unix() >= e {
		return tollgate.Errorf(tollgate.EForbidden, "result link expired")
	}
	return nil
}
