package gradiotest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// maxUpload bounds one upload request (Gradio's max_file_size is unset
// by default; this only keeps a broken test from filling the disk).
const maxUpload = 256 << 20

// store writes content as <Dir>/<sha256(seed, content)>/<name>, as
// save_file_to_cache and upload_fn do, and returns the absolute path.
func (s *Server) store(name string, content []byte) (string, error) {
	h := sha256.New()
	h.Write(s.seed)
	h.Write(content)
	dir := filepath.Join(s.Dir, hex.EncodeToString(h.Sum(nil)))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("store %s: %w", name, err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, content, 0o644); err != nil {
		return "", fmt.Errorf("store %s: %w", name, err)
	}
	return p, nil
}

// allowed is utils.is_allowed_file with the temp dir as the only created
// path: it returns the absolute path and whether it is an existing file
// inside Dir.
func (s *Server) allowed(p string) (string, bool) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return p, false
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	rel, err := filepath.Rel(s.Dir, abs)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return abs, false
	}
	fi, err := os.Stat(abs)
	if err != nil || fi.IsDir() {
		return abs, false
	}
	return abs, true
}

// cleanName is Path(name).name then strip_invalid_filename_characters;
// "" when nothing usable is left.
func cleanName(name string) string {
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:]
	}
	forbidden := func(r rune) rune {
		if strings.ContainsRune(`<>:"/\|?*`+"`$!{}", r) || r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}
	stem, ext := name, ""
	if i := strings.LastIndex(name, "."); i > 0 && strings.Trim(name[:i], ".") != "" {
		stem, ext = name[:i], name[i:]
	}
	stem = strings.Map(forbidden, stem)
	if ext != "" {
		ext = "." + strings.Map(forbidden, ext[1:])
	}
	if stem == "" && ext != "" {
		stem = "file"
	}
	dev, _, _ := strings.Cut(stem+ext, ".")
	switch strings.ToUpper(strings.TrimRight(dev, " ")) {
	case "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9",
		"LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9":
		stem = "_" + stem
	}
	for len(stem+ext) > 200 && stem != "" {
		_, size := utf8.DecodeLastRuneInString(stem)
		stem = stem[:len(stem)-size]
	}
	out := stem + ext
	if out == "" || out == "." || out == ".." {
		return ""
	}
	return out
}

// handleUpload is POST /gradio_api/upload: multipart "files" in, their
// stored paths out.
func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "multipart/form-data" {
		writeDetail(w, http.StatusBadRequest, "Invalid content type.")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxUpload)
	mr, err := r.MultipartReader()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	type part struct {
		name    string
		content []byte
	}
	var parts []part
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				http.Error(w, "File exceeds the maximum allowed size.", http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "Malformed multipart body: "+err.Error(), http.StatusBadRequest)
			return
		}
		if p.FormName() != "files" || p.FileName() == "" && p.Header.Get("Content-Type") == "" {
			io.Copy(io.Discard, p)
			continue
		}
		content, err := io.ReadAll(p)
		if err != nil {
			http.Error(w, "Malformed multipart body: "+err.Error(), http.StatusBadRequest)
			return
		}
		name := "tmp" + newID()[:10]
		if p.FileName() != "" {
			if name = cleanName(p.FileName()); name == "" {
				writeDetail(w, http.StatusBadRequest, "Invalid file name: "+p.FileName())
				return
			}
		}
		parts = append(parts, part{name, content})
	}
	paths := []string{}
	for _, p := range parts {
		path, err := s.store(p.name, p.content)
		if err != nil {
			http.Error(w, "Internal Server Error", http.StatusInternalServerError)
			return
		}
		paths = append(paths, path)
		s.mu.Lock()
		s.uploads = append(s.uploads, Upload{Path: path, Size: int64(len(p.content)), Header: r.Header.Clone()})
		s.mu.Unlock()
	}
	writeJSON(w, http.StatusOK, paths)
}

// xssSafe reports whether route_utils.XSS_SAFE_MIMETYPES serves typ inline.
func xssSafe(typ string) bool {
	switch typ {
	case "image/jpeg", "image/png", "image/gif", "image/webp", "audio/aac", "audio/flac", "audio/mp4",
		"audio/mpeg", "audio/ogg", "audio/wav", "audio/webm", "audio/x-flac", "audio/x-m4a",
		"video/mp4", "video/webm", "video/ogg", "text/plain":
		return true
	}
	return false
}

// handleFile is GET /gradio_api/file={path}: route_utils.file_fetch.
func (s *Server) handleFile(w http.ResponseWriter, r *http.Request, p string) {
	if isHTTPURL(p) || strings.HasPrefix(p, "//") || strings.Contains(p, "://") {
		writeDetail(w, http.StatusForbidden, "File not allowed: "+p+".")
		return
	}
	abs, ok := s.allowed(p)
	if !ok {
		writeDetail(w, http.StatusForbidden, "File not allowed: "+p+".")
		return
	}
	f, err := os.Open(abs)
	if err != nil {
		writeDetail(w, http.StatusForbidden, "File not allowed: "+p+".")
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		writeDetail(w, http.StatusForbidden, "File not allowed: "+p+".")
		return
	}
	typ := mime.TypeByExtension(filepath.Ext(abs))
	typ, _, _ = strings.Cut(typ, ";")
	if filepath.Ext(abs) == ".wav" {
		typ = "audio/wav"
	}
	disposition := "inline"
	if !xssSafe(typ) {
		typ, disposition = "application/octet-stream", "attachment"
	}
	w.Header().Set("Content-Type", typ)
	w.Header().Set("Content-Disposition", mime.FormatMediaType(disposition, map[string]string{"filename": filepath.Base(abs)}))
	w.Header().Set("Accept-Ranges", "bytes")
	http.ServeContent(w, r, "", fi.ModTime(), f)
}

// SineWAV is a 16-bit mono PCM WAV of samples samples of a freq Hz tone.
func SineWAV(rate, samples int, freq float64) []byte {
	var b bytes.Buffer
	dataLen := uint32(samples * 2)
	b.WriteString("RIFF")
	binary.Write(&b, binary.LittleEndian, 36+dataLen)
	b.WriteString("WAVEfmt ")
	binary.Write(&b, binary.LittleEndian, uint32(16))
	binary.Write(&b, binary.LittleEndian, uint16(1)) // PCM
	binary.Write(&b, binary.LittleEndian, uint16(1)) // mono
	binary.Write(&b, binary.LittleEndian, uint32(rate))
	binary.Write(&b, binary.LittleEndian, uint32(rate*2))
	binary.Write(&b, binary.LittleEndian, uint16(2))
	binary.Write(&b, binary.LittleEndian, uint16(16))
	b.WriteString("data")
	binary.Write(&b, binary.LittleEndian, dataLen)
	pcm := make([]byte, samples*2)
	for i := range samples {
		v := int16(math.Round(0.3 * 32767 * math.Sin(2*math.Pi*freq*float64(i)/float64(rate))))
		binary.LittleEndian.PutUint16(pcm[2*i:], uint16(v))
	}
	b.Write(pcm)
	return b.Bytes()
}

// WAVSeconds parses a 16-bit PCM WAV like the app's and returns its
// duration in seconds; tests use it to measure the audio a call returned.
func WAVSeconds(b []byte) (float64, error) {
	if len(b) < 44 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return 0, errors.New("not a RIFF WAVE file")
	}
	var rate, byteRate uint32
	for off := 12; off+8 <= len(b); {
		id := string(b[off : off+4])
		size := int(binary.LittleEndian.Uint32(b[off+4:]))
		body := off + 8
		if body+size > len(b) {
			return 0, fmt.Errorf("chunk %q runs past the end", id)
		}
		switch id {
		case "fmt ":
			if size < 16 {
				return 0, errors.New("short fmt chunk")
			}
			rate = binary.LittleEndian.Uint32(b[body+4:])
			byteRate = binary.LittleEndian.Uint32(b[body+8:])
		case "data":
			if rate == 0 || byteRate == 0 {
				return 0, errors.New("data before fmt")
			}
			return float64(size) / float64(byteRate), nil
		}
		off = body + size + size%2
	}
	return 0, errors.New("no data chunk")
}
