package comfytest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// fileState identifies a file's content for the cache (IS_CHANGED).
func fileState(s *Server, name string) string {
	path, err := s.annotatedPath(name, "input")
	if err != nil {
		return ""
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// uploadImage is POST /upload/image: multipart "image", "subfolder",
// "type" (input, temp or output) and "overwrite".
func (s *Server) uploadImage(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseMultipartForm(32 << 20); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	file, header, err := r.FormFile("image")
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	defer file.Close()
	data, err := io.ReadAll(file)
	if err != nil || header.Filename == "" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	kind := r.FormValue("type")
	if kind == "" {
		kind = "input"
	}
	if kind != "input" && kind != "temp" && kind != "output" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	// aiohttp keeps the name the form gives, path and all (Go's
	// FileName keeps only its base).
	filename := header.Filename
	if _, params, err := mime.ParseMediaType(header.Header.Get("Content-Disposition")); err == nil && params["filename"] != "" {
		filename = params["filename"]
	}
	subfolder := r.FormValue("subfolder")
	base := s.dir(kind)
	folder := filepath.Join(base, filepath.Clean(filepath.FromSlash(subfolder)))
	path := filepath.Join(folder, filename)
	if !within(base, path) { // server.py's only check: the file stays in its directory
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if err := os.MkdirAll(folder, 0o755); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	overwrite := r.FormValue("overwrite")
	duplicate := false
	if overwrite != "true" && overwrite != "1" {
		ext := filepath.Ext(filename)
		stem := strings.TrimSuffix(filename, ext)
		for i := 1; ; i++ {
			old, err := os.ReadFile(path)
			if err != nil {
				break
			}
			if bytes.Equal(old, data) {
				duplicate = true
				break
			}
			filename = fmt.Sprintf("%s (%d)%s", stem, i, ext)
			path = filepath.Join(folder, filename)
		}
	}
	if !duplicate {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	}
	writeJSONResponse(w, 200, map[string]any{"name": filename, "subfolder": subfolder, "type": kind})
}

// view is GET /view?filename=&subfolder=&type=: the file's bytes, with
// server.py's path checks (400 for "..", 403 for a subfolder outside).
func (s *Server) view(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !q.Has("filename") {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	filename := q.Get("filename")
	kind := q.Get("type")
	if name, t := annotatedFilepath(filename); t != "" {
		filename, kind = name, t
	}
	if filename == "" || filename[0] == '/' || strings.Contains(filename, "..") {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if kind == "" {
		kind = "output"
	}
	if kind != "input" && kind != "output" && kind != "temp" {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	dir := s.dir(kind)
	if q.Has("subfolder") {
		sub := filepath.Join(dir, filepath.FromSlash(q.Get("subfolder")))
		if !within(dir, sub) {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		dir = sub
	}
	filename = filepath.Base(filename)
	path := filepath.Join(dir, filename)
	st, err := os.Stat(path)
	if err != nil || !st.Mode().IsRegular() {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	ct := contentType(filename)
	if strings.HasPrefix(ct, "text/html") || strings.HasPrefix(ct, "text/javascript") || strings.HasPrefix(ct, "text/css") || ct == "application/xhtml+xml" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Disposition", fmt.Sprintf("filename=%q", filename))
	http.ServeFile(w, r, path)
}
