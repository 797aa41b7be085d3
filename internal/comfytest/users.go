package comfytest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

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
