package comfyroute

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tollgate/tollgate/internal/comfyui"
	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// hiddenHistory is what each user removed from their history view (POST
// /history delete and clear): the jobs stay in the store, for billing
// and the predictions API. It lives in this process.
type hiddenHistory struct {
	mu      sync.Mutex
	ids     map[string]map[string]bool // by owner
	cleared map[string]time.Time       // by owner: jobs ended by then are hidden
}

func newHiddenHistory() *hiddenHistory {
	return &hiddenHistory{ids: map[string]map[string]bool{}, cleared: map[string]time.Time{}}
}

func (h *hiddenHistory) hidden(o tollgate.Owner, j *tollgate.Job) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := ownerKey(o)
	return !j.CompletedAt.IsZero() && !j.CompletedAt.After(h.cleared[k]) || h.ids[k][j.ID]
}

func (h *hiddenHistory) hide(o tollgate.Owner, ids []string, clearAt time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := ownerKey(o)
	if clearAt.After(h.cleared[k]) {
		h.cleared[k] = clearAt
	}
	if len(ids) > 0 && h.ids[k] == nil {
		h.ids[k] = map[string]bool{}
	}
	for _, id := range ids {
		if len(h.ids[k]) < 100_000 {
			h.ids[k][id] = true
		}
	}
}

// historyEntry is a job's /history entry: ComfyUI's own, kept as the
// job's output, with the caller's client_id in place of the gateway's;
// or, for a prompt that never reached ComfyUI, one that says why.
func (rt *Route) historyEntry(j *tollgate.Job) map[string]any {
	var in comfyui.GraphInput
	_ = json.Unmarshal(j.Input, &in)
	var e map[string]any
	if len(j.Output) > 0 && json.Unmarshal(j.Output, &e) == nil && e != nil {
		if tuple, ok := e["prompt"].([]any); ok && len(tuple) > 3 {
			extra, _ := tuple[3].(map[string]any)
			if extra != nil {
				delete(extra, "client_id")
				if in.ClientID != "" {
					extra["client_id"] = in.ClientID
				}
			}
		}
		if out, ok := e["outputs"].(map[string]any); ok {
			for _, node := range out {
				if n, ok := node.(map[string]any); ok {
					rt.files.addOutputs(j.Owner, j.Upstream, n)
				}
			}
		}
		return e
	}
	msg := map[string]any{"prompt_id": j.ID, "node_id": "", "node_type": "", "exception_message": j.Error,
		"exception_type": "tollgate", "traceback": []string{}, "timestamp": j.CompletedAt.UnixMilli()}
	return map[string]any{
		"prompt":  queueItem(j),
		"outputs": map[string]any{},
		"status":  map[string]any{"status_str": "error", "completed": false, "messages": []any{[]any{"execution_error", msg}}},
		"meta":    map[string]any{},
	}
}

// withHistory returns j as its history entry shows it, or nil when it
// has none: an ended prompt that reached ComfyUI or failed on the way (a
// prompt deleted while it waited has none, as in ComfyUI); or a running
// one whose entry ComfyUI already wrote, its end on its way to the store
// (read from that ComfyUI, as a client reading /history on "executed"
// finds it on ComfyUI itself).
func (rt *Route) withHistory(ctx context.Context, o tollgate.Owner, j *tollgate.Job) *tollgate.Job {
	switch {
	case j.Model != rt.cfg.Name || rt.hidden.hidden(o, j):
		return nil
	case j.Status == tollgate.JobProcessing:
		entry := rt.liveEntry(ctx, j)
		if entry == nil {
			return nil
		}
		cp := *j
		cp.Output = entry
		return &cp
	case !j.Status.Terminal() || j.Status == tollgate.JobCanceled && len(j.Output) == 0:
		return nil
	}
	return j
}

// liveEntry reads a running prompt's history entry from its ComfyUI.
func (rt *Route) liveEntry(ctx context.Context, j *tollgate.Job) json.RawMessage {
	if j.Upstream == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(j.Upstream, "/")+"/history/"+url.PathEscape(j.ID), nil)
	if err != nil {
		return nil
	}
	req.Header.Set("Comfy-User", comfyui.ComfyUser(j.Owner))
	resp, err := rt.client.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var h map[string]json.RawMessage
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&h) != nil {
		return nil
	}
	return h[j.ID]
}

// ownHistory returns the caller's prompts that have a history entry,
// oldest first.
func (rt *Route) ownHistory(ctx context.Context, o tollgate.Owner) ([]*tollgate.Job, error) {
	all, err := rt.jobs.OwnJobs(ctx, o, rt.cfg.Name, "", maxListed)
	if err != nil {
		return nil, err
	}
	out := make([]*tollgate.Job, 0, len(all))
	for _, j := range slices.Backward(all) {
		if j.Status == tollgate.JobStarting {
			continue
		}
		if h := rt.withHistory(ctx, o, j); h != nil {
			out = append(out, h)
		}
	}
	return out, nil
}

// getHistory is GET /history (max_items, offset) and /history/{id}, over
// the caller's own prompts.
func (rt *Route) getHistory(w http.ResponseWriter, r *http.Request, p *tollgate.Principal, id string) error {
	o := owner(p)
	var keys []string
	entries := map[string]any{}
	if id != "" {
		j, err := rt.jobs.Job(r.Context(), o, id)
		if err == nil {
			if j = rt.withHistory(r.Context(), o, j); j != nil {
				keys, entries[id] = []string{id}, rt.historyEntry(j)
			}
		}
		return writeOrdered(w, keys, entries)
	}
	list, err := rt.ownHistory(r.Context(), o)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	offset, maxItems := -1, -1
	for name, dst := range map[string]*int{"max_items": &maxItems, "offset": &offset} {
		if v := q.Get(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				return tollgate.Errorf(tollgate.EInvalid, "%s is not an integer", name)
			}
			*dst = n
		}
	}
	if offset < 0 && maxItems >= 0 {
		offset = len(list) - maxItems
	}
	for i, j := range list {
		if i < offset {
			continue
		}
		keys = append(keys, j.ID)
		entries[j.ID] = rt.historyEntry(j)
		if maxItems >= 0 && len(keys) >= maxItems {
			break
		}
	}
	return writeOrdered(w, keys, entries)
}

// writeOrdered writes a JSON object with its keys in order, as ComfyUI's
// dictionaries keep insertion order.
func writeOrdered(w http.ResponseWriter, keys []string, m map[string]any) error {
	var b strings.Builder
	b.WriteString("{")
	for i, k := range keys {
		kb, _ := json.Marshal(k)
		vb, err := json.Marshal(m[k])
		if err != nil {
			return err
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.Write(kb)
		b.WriteString(": ")
		b.Write(vb)
	}
	b.WriteString("}")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(b.String()))
	return nil
}

// postHistory is {"clear": true} and {"delete": [ids]}, on the caller's
// own history only.
func (rt *Route) postHistory(w http.ResponseWriter, r *http.Request, p *tollgate.Principal) error {
	var req clearOrDelete
	if err := rt.readJSON(r, &req); err != nil {
		return err
	}
	var clearAt time.Time
	if req.Clear {
		clearAt = rt.now()
	}
	rt.hidden.hide(owner(p), req.Delete, clearAt)
	w.WriteHeader(http.StatusOK)
	return nil
}

// writeJSON is httpx.WriteJSON, returning nil for the handlers.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	httpx.WriteJSON(w, status, v)
	return nil
}
