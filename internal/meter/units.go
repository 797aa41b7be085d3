package meter

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"image"
	_ "image/gif" // registers GIF headers for image.DecodeConfig
	_ "image/jpeg"
	_ "image/png"
	"io"
	"mime/multipart"
	"strings"

	"github.com/tollgate/tollgate/internal/media"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// maxParts bounds the parts and JSON strings inspected per request, so a
// hostile body cannot make the meter spin.
const maxParts = 256

// requestUnits measures the media in a request body: images (count and
// megapixels) and audio seconds, from multipart uploads, JSON with base64
// or data-URL media, or a raw image or audio body. Only headers are read,
// never whole images. Unknown bodies measure zero.
func requestUnits(body []byte) tollgate.Units {
	var u tollgate.Units
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	switch {
	case len(trimmed) == 0:
	case bytes.HasPrefix(body, []byte("--")):
		multipartUnits(body, &u)
	case trimmed[0] == '{' || trimmed[0] == '[':
		if bytes.Contains(body, []byte("base64")) || len(body) > 4096 {
			jsonUnits(trimmed, &u)
		}
	default:
		mediaUnits(body, int64(len(body)), &u)
	}
	u.Megapixels = float64(u.MegapixelMillis) / 1000
	return u
}

// multipartUnits reads a multipart body whose boundary is its first line.
func multipartUnits(body []byte, u *tollgate.Units) {
	line, _, ok := bytes.Cut(body, []byte("\n"))
	if !ok {
		return
	}
	boundary := strings.TrimSpace(string(line[2:]))
	if boundary == "" || len(boundary) > 70 {
		return
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	for range maxParts {
		p, err := mr.NextPart()
		if err != nil {
			return
		}
		if p.FileName() == "" && !strings.HasPrefix(p.Header.Get("Content-Type"), "image/") &&
			!strings.HasPrefix(p.Header.Get("Content-Type"), "audio/") {
			continue
		}
		data, err := io.ReadAll(p)
		if err != nil {
			return
		}
		mediaUnits(data, int64(len(data)), u)
	}
}

// jsonUnits walks a JSON document for strings holding base64 media.
func jsonUnits(body []byte, u *tollgate.Units) {
	dec := json.NewDecoder(bytes.NewReader(body))
	seen := 0
	for seen < maxParts {
		tok, err := dec.Token()
		if err != nil {
			return
		}
		s, ok := tok.(string)
		if !ok || len(s) < 32 {
			continue
		}
		if _, rest, found := strings.Cut(s, ";base64,"); found && strings.HasPrefix(s, "data:") {
			s = rest
		}
		if base64Media(s, u) {
			seen++
		}
	}
}

// base64Media decodes only as much of s as a header needs (retrying with
// the whole string when a JPEG keeps its size late) and measures it.
func base64Media(s string, u *tollgate.Units) bool {
	enc := base64.StdEncoding
	if strings.ContainsAny(s[:min(len(s), 512)], "-_") {
		enc = base64.URLEncoding
	}
	s = strings.TrimRight(s, "=")
	total := int64(len(s)) * 3 / 4
	raw := enc.WithPadding(base64.NoPadding)
	prefix := s[:min(len(s), 64<<10)&^3]
	head, err := raw.DecodeString(prefix)
	if err != nil {
		return false
	}
	if mediaUnits(head, total, u) {
		return true
	}
	if len(prefix) == len(s) || !needsWhole(head) {
		return false
	}
	full, err := raw.DecodeString(s)
	return err == nil && mediaUnits(full, total, u)
}

// needsWhole reports whether data starts like a file whose facts may lie
// past its first bytes: an image mediaUnits knows, or an Ogg stream (its
// length is in its last page).
func needsWhole(data []byte) bool {
	for _, sig := range []string{"\x89PNG", "\xff\xd8\xff", "GIF8", "RIFF", "OggS"} {
		if bytes.HasPrefix(data, []byte(sig)) {
			return true
		}
	}
	return false
}

// mediaUnits measures one image or audio file from its first bytes; total
// is the file's full length (MP3 durations need it, Ogg ones the whole
// file). It reports whether
// the data was media.
func mediaUnits(data []byte, total int64, u *tollgate.Units) bool {
	if w, h, ok := imageSize(data); ok {
		u.Images++
		u.MegapixelMillis += (int64(w)*int64(h) + 500) / 1000
		return true
	}
	var tail []byte
	if int64(len(data)) >= total {
		tail = data
	}
	if d, ok := media.AudioDuration(data, tail, total); ok {
		u.AudioMillis += media.Millis(d)
		return true
	}
	return false
}

// imageSize reads the dimensions from an image header: WebP here, PNG,
// JPEG and GIF through image.DecodeConfig.
func imageSize(data []byte) (w, h int, ok bool) {
	if w, h, err := webpSize(data); err == nil {
		return w, h, true
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil || cfg.Width <= 0 || cfg.Height <= 0 {
		return 0, 0, false
	}
	return cfg.Width, cfg.Height, true
}

var errNotWebP = errors.New("not webp")

// webpSize parses the VP8, VP8L or VP8X header of a WebP file.
func webpSize(b []byte) (int, int, error) {
	if len(b) < 30 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WEBP" {
		return 0, 0, errNotWebP
	}
	le16 := func(p []byte) int { return int(p[0]) | int(p[1])<<8 }
	le24 := func(p []byte) int { return int(p[0]) | int(p[1])<<8 | int(p[2])<<16 }
	switch string(b[12:16]) {
	case "VP8 ":
		if b[23] != 0x9d || b[24] != 0x01 || b[25] != 0x2a {
			return 0, 0, errNotWebP
		}
		return le16(b[26:]) & 0x3fff, le16(b[28:]) & 0x3fff, nil
	case "VP8L":
		if b[20] != 0x2f {
			return 0, 0, errNotWebP
		}
		bits := uint32(b[21]) | uint32(b[22])<<8 | uint32(b[23])<<16 | uint32(b[24])<<24
		return int(bits&0x3fff) + 1, int(bits>>14&0x3fff) + 1, nil
	case "VP8X":
		return le24(b[24:]) + 1, le24(b[27:]) + 1, nil
	}
	return 0, 0, errNotWebP
}
