package comfytest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
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
	filename := header.Filename
	subfolder := r.FormValue("subfolder")
	base := s.dir(kind)
	folder := filepath.Join(base, filepath.Clean(filepath.FromSlash(subfolder)))
	path := filepath.Join(folder, filename)
	if !within(base, path) || strings.ContainsAny(filename, `/\`) {
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
	for _, t := range []string{"input", "output", "temp"} {
		if suffix := " [" + t + "]"; strings.HasSuffix(filename, suffix) {
			filename, kind = strings.TrimSuffix(filename, suffix), t
		}
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

// user is UserManager.get_request_user_id: "default", or under
// MultiUser the Comfy-User header, which must name a known user.
func (s *Server) user(r *http.Request) (string, bool) {
	u := "default"
	if s.opts.MultiUser && r.Header.Get("Comfy-User") != "" {
		u = r.Header.Get("Comfy-User")
	}
	s.mu.Lock()
	_, ok := s.users[u]
	s.mu.Unlock()
	return u, ok
}

// userPath is the path of file in the user's directory, or "" when it
// would leave it.
func (s *Server) userPath(user, file string) string {
	base := s.dir("user")
	root := filepath.Join(base, user)
	if !within(base, root) || root == base {
		return ""
	}
	if file == "" {
		return root
	}
	if strings.Contains(file, "%") {
		if f, err := url.PathUnescape(file); err == nil {
			file = f
		}
	}
	p := filepath.Join(root, filepath.FromSlash(file))
	if !within(root, p) {
		return ""
	}
	return p
}

func (s *Server) getUsers(w http.ResponseWriter, r *http.Request) {
	if s.opts.MultiUser {
		s.mu.Lock()
		users := map[string]string{}
		for k, v := range s.users {
			users[k] = v
		}
		s.mu.Unlock()
		writeJSONResponse(w, 200, map[string]any{"storage": "server", "users": users})
		return
	}
	_, err := os.Stat(s.userPath("default", ""))
	writeJSONResponse(w, 200, map[string]any{"storage": "server", "migrated": err == nil})
}

var unsafeUser = regexp.MustCompile(`[^a-zA-Z0-9-_]+`)

// postUsers is POST /users {"username"}: a new user id, name_<uuid>.
func (s *Server) postUsers(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Username string `json:"username"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	name := strings.TrimSpace(body.Username)
	if name == "" {
		http.Error(w, "500: username not provided", http.StatusInternalServerError)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.users {
		if v == body.Username {
			writeJSONResponse(w, 400, map[string]any{"error": "Duplicate username."})
			return
		}
	}
	id := unsafeUser.ReplaceAllString(name, "-") + "_" + newUUID()
	s.users[id] = name
	writeJSONResponse(w, 200, id)
}

// Users is the known users (id → name).
func (s *Server) Users() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for k, v := range s.users {
		out[k] = v
	}
	return out
}

func (s *Server) settingsFile(w http.ResponseWriter, r *http.Request) (string, map[string]any, bool) {
	user, ok := s.user(r)
	if !ok {
		http.Error(w, "401: Unauthorized", http.StatusUnauthorized)
		return "", nil, false
	}
	path := s.userPath(user, "comfy.settings.json")
	settings := map[string]any{}
	if b, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(b, &settings)
	}
	return path, settings, true
}

func (s *Server) getSettings(w http.ResponseWriter, r *http.Request) {
	_, settings, ok := s.settingsFile(w, r)
	if !ok {
		return
	}
	if id := r.PathValue("id"); id != "" {
		writeJSONResponse(w, 200, settings[id])
		return
	}
	writeJSONResponse(w, 200, settings)
}

func (s *Server) postSettings(w http.ResponseWriter, r *http.Request) {
	path, settings, ok := s.settingsFile(w, r)
	if !ok {
		return
	}
	if id := r.PathValue("id"); id != "" {
		var v any
		if !readJSON(w, r, &v) {
			return
		}
		settings[id] = v
	} else {
		var v map[string]any
		if !readJSON(w, r, &v) {
			return
		}
		for k, x := range v {
			settings[k] = x
		}
	}
	b, _ := json.MarshalIndent(settings, "", "    ")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
		err = os.WriteFile(path, b, 0o644)
	}
	w.WriteHeader(http.StatusOK)
}

// userDataPath resolves {file} for the request's user; it writes the
// error response (500 for an unknown user, as the real KeyError does).
func (s *Server) userDataPath(w http.ResponseWriter, r *http.Request, mustExist bool) string {
	user, ok := s.user(r)
	if !ok {
		http.Error(w, "500: Unknown user: "+user, http.StatusInternalServerError)
		return ""
	}
	file := r.PathValue("file")
	if file == "" {
		w.WriteHeader(http.StatusBadRequest)
		return ""
	}
	p := s.userPath(user, file)
	if p == "" {
		w.WriteHeader(http.StatusForbidden)
		return ""
	}
	if _, err := os.Stat(p); mustExist && err != nil {
		w.WriteHeader(http.StatusNotFound)
		return ""
	}
	return p
}

func (s *Server) getUserData(w http.ResponseWriter, r *http.Request) {
	if p := s.userDataPath(w, r, true); p != "" {
		http.ServeFile(w, r, p)
	}
}

func (s *Server) postUserData(w http.ResponseWriter, r *http.Request) {
	p := s.userDataPath(w, r, false)
	if p == "" {
		return
	}
	if _, err := os.Stat(p); err == nil && r.URL.Query().Get("overwrite") == "false" {
		http.Error(w, "File already exists", http.StatusConflict)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err == nil {
		if err = os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
			err = os.WriteFile(p, body, 0o644)
		}
	}
	if err != nil {
		http.Error(w, "400: Invalid filename", http.StatusBadRequest)
		return
	}
	user, _ := s.user(r)
	rel, _ := filepath.Rel(s.userPath(user, ""), p)
	writeJSONResponse(w, 200, filepath.ToSlash(rel))
}

func (s *Server) deleteUserData(w http.ResponseWriter, r *http.Request) {
	if p := s.userDataPath(w, r, true); p != "" {
		_ = os.Remove(p)
		w.WriteHeader(http.StatusNoContent)
	}
}

// listUserData is GET /userdata?dir=: the files under dir (recursive).
func (s *Server) listUserData(w http.ResponseWriter, r *http.Request) {
	user, ok := s.user(r)
	if !ok {
		http.Error(w, "500: Unknown user: "+user, http.StatusInternalServerError)
		return
	}
	dir := r.URL.Query().Get("dir")
	if dir == "" {
		http.Error(w, "Directory not provided", http.StatusBadRequest)
		return
	}
	root := s.userPath(user, dir)
	if root == "" {
		http.Error(w, "Invalid directory", http.StatusForbidden)
		return
	}
	if _, err := os.Stat(root); err != nil {
		http.Error(w, "Directory not found", http.StatusNotFound)
		return
	}
	files := []string{}
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(files)
	writeJSONResponse(w, 200, files)
}

// getJobs is GET /api/jobs (comfy_execution/jobs.py): running, pending
// and finished prompts as jobs, filtered by status and paginated.
func (s *Server) getJobs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	statuses := []string{"pending", "in_progress", "completed", "failed"}
	if v := q.Get("status"); v != "" {
		statuses = strings.Split(v, ",")
	}
	limit, offset := -1, 0
	for name, dst := range map[string]*int{"limit": &limit, "offset": &offset} {
		if v := q.Get(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				writeJSONResponse(w, 400, map[string]any{"error": name + " must be a non-negative integer"})
				return
			}
			*dst = n
		}
	}
	jobs := s.jobs(statuses)
	sort.SliceStable(jobs, func(i, j int) bool {
		a, b := jobs[i]["create_time"].(int64), jobs[j]["create_time"].(int64)
		if q.Get("sort_order") == "asc" {
			return a < b
		}
		return a > b
	})
	total := len(jobs)
	jobs = jobs[min(offset, total):]
	if limit >= 0 {
		jobs = jobs[:min(limit, len(jobs))]
	}
	pagination := map[string]any{"offset": offset, "limit": nil, "total": total, "has_more": offset+len(jobs) < total}
	if limit >= 0 {
		pagination["limit"] = limit
	}
	writeJSONResponse(w, 200, map[string]any{"jobs": jobs, "pagination": pagination})
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	for _, j := range s.jobs([]string{"pending", "in_progress", "completed", "failed"}) {
		if j["id"] == id {
			writeJSONResponse(w, 200, j)
			return
		}
	}
	writeJSONResponse(w, 404, map[string]any{"error": "Job not found"})
}

func (s *Server) jobs(statuses []string) []map[string]any {
	want := map[string]bool{}
	for _, st := range statuses {
		want[strings.TrimSpace(st)] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var jobs []map[string]any
	job := func(p *Prompt, status string) map[string]any {
		ct, _ := p.Extra["create_time"].(int64)
		return map[string]any{"id": p.ID, "status": status, "priority": p.Number, "create_time": ct, "outputs_count": 0}
	}
	for _, r := range s.running {
		if want["in_progress"] {
			jobs = append(jobs, job(r.p, "in_progress"))
		}
	}
	for _, p := range s.queue {
		if want["pending"] {
			jobs = append(jobs, job(p, "pending"))
		}
	}
	for _, id := range s.history {
		h := s.historyMap[id]
		st := h["status"].(map[string]any)
		status := "completed"
		if st["status_str"] == "error" {
			status = "failed"
		}
		if !want[status] {
			continue
		}
		tuple := h["prompt"].([]any)
		ct, _ := tuple[3].(map[string]any)["create_time"].(int64)
		j := map[string]any{"id": id, "status": status, "priority": tuple[0], "create_time": ct}
		count := 0
		for _, out := range h["outputs"].(map[string]any) {
			for _, items := range out.(map[string]any) {
				if l, ok := items.([]any); ok {
					count += len(l)
				}
			}
		}
		j["outputs_count"] = count
		for _, m := range st["messages"].([]any) {
			ev := m.([]any)
			data := ev[1].(map[string]any)
			switch ev[0] {
			case "execution_start":
				j["execution_start_time"] = data["timestamp"]
			case "execution_success", "execution_interrupted":
				j["execution_end_time"] = data["timestamp"]
			case "execution_error":
				j["execution_end_time"], j["execution_error"] = data["timestamp"], data
			}
		}
		jobs = append(jobs, j)
	}
	return jobs
}
