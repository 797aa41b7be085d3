package comfyroute

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tollgate/tollgate/internal/comfyui"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// Under --multi-user ComfyUI knows only the users of its users.json, by
// ids it makes itself (name_uuid). The route keeps one ComfyUI user per
// tollgate user, named comfyui.ComfyUser, created on first use, and sets
// its id as Comfy-User; without --multi-user the name itself is sent
// (ComfyUI then ignores it).

// comfyUsers caches each user's ComfyUI id.
type comfyUsers struct {
	mu     sync.Mutex
	ids    map[string]string // owner key → ComfyUI user id
	single bool              // ComfyUI runs without --multi-user: one user data folder for all
}

// shared reports whether ComfyUI was seen running without --multi-user.
func (u *comfyUsers) shared() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.single
}

func newComfyUsers() *comfyUsers { return &comfyUsers{ids: map[string]string{}} }

// usersAnswer is GET /users: users only under --multi-user.
type usersAnswer struct {
	Storage string            `json:"storage"`
	Users   map[string]string `json:"users"`
}

// comfyUser returns the Comfy-User of o on the route's first upstream,
// creating o's ComfyUI user under --multi-user. When ComfyUI cannot be
// asked it returns the name, uncached.
func (rt *Route) comfyUser(ctx context.Context, o tollgate.Owner) string {
	name := comfyui.ComfyUser(o)
	rt.users.mu.Lock()
	id, ok := rt.users.ids[ownerKey(o)]
	rt.users.mu.Unlock()
	if ok {
		return id
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	base := strings.TrimSuffix(rt.model.Upstreams[0], "/")
	var list usersAnswer
	if rt.callJSON(ctx, http.MethodGet, base+"/users", nil, &list) != nil {
		return name
	}
	id = name
	if list.Users != nil { // --multi-user
		id = ""
		for k, v := range list.Users {
			if v == name {
				id = k
			}
		}
		if id == "" && rt.callJSON(ctx, http.MethodPost, base+"/users", map[string]string{"username": name}, &id) != nil {
			return name
		}
	}
	rt.users.mu.Lock()
	rt.users.ids[ownerKey(o)] = id
	rt.users.single = list.Users == nil
	rt.users.mu.Unlock()
	return id
}

// callJSON makes a call to ComfyUI with a JSON body and answer.
func (rt *Route) callJSON(ctx context.Context, method, url string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	resp, err := rt.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return tollgate.Errorf(tollgate.EUpstream, "ComfyUI answered %d", resp.StatusCode)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out)
}

// getUsers answers GET /users: under --multi-user only the caller's own
// ComfyUI user, so no one learns who else uses the route.
func (rt *Route) getUsers(w http.ResponseWriter, r *http.Request, p *tollgate.Principal) error {
	id := rt.comfyUser(r.Context(), owner(p))
	var list usersAnswer
	if err := rt.callJSON(r.Context(), http.MethodGet, strings.TrimSuffix(rt.model.Upstreams[0], "/")+"/users", nil, &list); err != nil {
		return tollgate.Errorf(tollgate.EUpstream, "ComfyUI did not answer")
	}
	if list.Users == nil {
		return writeJSON(w, http.StatusOK, map[string]any{"storage": list.Storage, "migrated": true})
	}
	return writeJSON(w, http.StatusOK, usersAnswer{Storage: list.Storage, Users: map[string]string{id: p.UserID}})
}
