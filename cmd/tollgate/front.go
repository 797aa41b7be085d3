package main

import (
	"net/http"
	"strings"

	"github.com/tollgate/tollgate/internal/limit"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// front routes the gateway's own endpoints through a ServeMux and every
// other request straight to the data plane, so a proxied request does not
// pay for the mux's pattern matching. A path that any own pattern could
// match, or one the mux would clean and redirect, still goes to the mux,
// so routing is the mux's in every case where the two could differ.
type front struct {
	mux  *http.ServeMux
	data http.Handler
	own  []string // the literal start of each pattern's path, trailing "/" cut
}

func newFront() *front { return &front{mux: http.NewServeMux()} }

// Handle registers an own endpoint on the mux.
func (f *front) Handle(pattern string, h http.Handler) {
	f.mux.Handle(pattern, h)
	path := pattern
	if i := strings.IndexByte(path, ' '); i >= 0 {
		path = path[i+1:]
	}
	if i := strings.IndexByte(path, '/'); i > 0 {
		path = path[i:] // a host in the pattern
	}
	if i := strings.IndexByte(path, '{'); i >= 0 {
		path = path[:i]
	}
	f.own = append(f.own, strings.TrimSuffix(path, "/"))
}

// setData routes everything else to h, on the mux too ("/"), so the two
// paths agree where the mux decides.
func (f *front) setData(h http.Handler) {
	f.mux.Handle("/", h)
	f.data = h
}

func (f *front) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	f.Handle(pattern, http.HandlerFunc(h))
}

func (f *front) ServeHTTP(w http.ResponseWriter, r *http.Request) { f.ServeEntry(w, r, nil) }

// ServeEntry hands the data plane the request's Entry, decided by the
// limiter's middleware in front (limit.EntryHandler).
func (f *front) ServeEntry(w http.ResponseWriter, r *http.Request, e *tollgate.Entry) {
	if f.data == nil || f.ownPath(r) {
		f.mux.ServeHTTP(w, r)
		return
	}
	if eh, ok := f.data.(limit.EntryHandler); ok && e != nil {
		eh.ServeEntry(w, r, e)
		return
	}
	f.data.ServeHTTP(w, r)
}

func (f *front) ownPath(r *http.Request) bool {
	path := r.URL.Path
	if r.Method == http.MethodConnect || path == "" || path[0] != '/' ||
		strings.Contains(path, "//") || strings.Contains(path, "/.") {
		return true
	}
	for _, p := range f.own {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}
