package comfyroute

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"

	"github.com/tollgate/tollgate/internal/comfyui"
	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/jobs"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// maxListed bounds the prompts of one user a listing reads.
const maxListed = 1000

// promptRequest is POST /prompt's body, as server.py reads it.
type promptRequest struct {
	Prompt   json.RawMessage `json:"prompt"`
	ClientID string          `json:"client_id"`
	Extra    map[string]any  `json:"extra_data"`
	Partial  []any           `json:"partial_execution_targets"`
}

// readJSON reads a JSON body whatever its Content-Type, as ComfyUI does
// (the SDK posts /prompt as text/plain).
func (rt *Route) readJSON(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, rt.maxBody+1))
	if err != nil {
		return tollgate.Errorf(tollgate.EInvalid, "could not read the request body")
	}
	if int64(len(body)) > rt.maxBody {
		return tollgate.Errorf(tollgate.ETooLarge, "request body is larger than this route's limit of %d bytes", rt.maxBody)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return tollgate.Errorf(tollgate.EInvalid, "the body is not JSON")
	}
	return nil
}

// comfyError writes a refusal in ComfyUI's shape ({error: {type,
// message, details, extra_info}, node_errors}), which is also the
// OpenAI shape's error.message, so the UI, the SDK and OpenAI-style
// clients all show it.
func comfyError(w http.ResponseWriter, status int, typ, msg string, nodeErrors map[string]any) {
	if nodeErrors == nil {
		nodeErrors = map[string]any{}
	}
	httpx.WriteJSON(w, status, map[string]any{
		"error":       map[string]any{"type": typ, "code": typ, "message": msg, "details": msg, "extra_info": map[string]any{}},
		"node_errors": nodeErrors,
	})
}

// postPrompt queues a prompt as a job of the caller and answers at once
// with the prompt_id tollgate minted.
func (rt *Route) postPrompt(w http.ResponseWriter, r *http.Request, p *tollgate.Principal) error {
	var req promptRequest
	if err := rt.readJSON(r, &req); err != nil {
		return err
	}
	var graph map[string]any
	if json.Unmarshal(req.Prompt, &graph) != nil || graph == nil {
		comfyError(w, http.StatusBadRequest, "no_prompt", "No prompt provided", nil)
		return nil
	}
	if refused := rt.backend.RefusedNodes(p, graph); len(refused) > 0 {
		nodeErrors := map[string]any{}
		ids := make([]string, 0, len(refused))
		for id, class := range refused {
			ids = append(ids, id)
			msg := fmt.Sprintf("node class %s is not allowed on this route", class)
			nodeErrors[id] = map[string]any{"class_type": class, "dependent_outputs": []string{},
				"errors": []any{map[string]any{"type": "node_not_allowed", "message": msg, "details": "", "extra_info": map[string]any{}}}}
		}
		sort.Strings(ids)
		comfyError(w, http.StatusForbidden, "node_not_allowed",
			fmt.Sprintf("node %s (%s) is not allowed on this route", ids[0], refused[ids[0]]), nodeErrors)
		return nil
	}
	input, err := json.Marshal(comfyui.GraphInput{Prompt: graph, ClientID: req.ClientID, Extra: req.Extra, Partial: req.Partial})
	if err != nil {
		return fmt.Errorf("encode prompt: %w", err)
	}
	id := comfyui.NewUUID()
	rt.hub.expect(id, owner(p), req.ClientID) // before it can run, so its end is held for follow
	j, _, err := rt.jobs.Submit(r.Context(), p, jobs.Submission{Model: rt.cfg.Name, Input: input, ID: id})
	if err != nil {
		rt.hub.forget(id)
	}
	var te *tollgate.Error
	if errors.As(err, &te) && te.Code != tollgate.EInternal && te.Code != tollgate.EUnavailable {
		// A refusal the UI shows as it shows ComfyUI's own (a spent
		// budget, a full queue, a malformed workflow).
		if te.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(te.RetryAfter))
		}
		comfyError(w, httpx.Status(te.Code), te.Code, te.Message, nil)
		return nil
	}
	if err != nil {
		return err
	}
	rt.follow(j)
	rt.sendStatus(r.Context(), owner(p))
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"prompt_id": j.ID, "number": j.Seq, "node_errors": map[string]any{}})
	return nil
}

// clearOrDelete is the body of POST /queue and /history.
type clearOrDelete struct {
	Clear  bool     `json:"clear"`
	Delete []string `json:"delete"`
}

// Resume follows the route's prompts queued before this process
// started, so their owners' sockets hear of their ends.
func (rt *Route) Resume(ctx context.Context) error {
	js, err := rt.jobs.Waiting(ctx, rt.cfg.Name, maxListed)
	if err != nil {
		return fmt.Errorf("comfyui route %s: find its queued prompts: %w", rt.cfg.Name, err)
	}
	for _, j := range js {
		rt.follow(j)
	}
	return nil
}

// follow waits for a queued prompt's end, then tells its owner's sockets
// the new queue state, and how it failed when ComfyUI never told.
func (rt *Route) follow(j *tollgate.Job) {
	st := rt.hub.prompt(j)
	rt.hub.mu.Lock()
	st.followed = true
	rt.hub.mu.Unlock()
	ended, stop := rt.jobs.Ended(j.ID)
	rt.wg.Go(func() {
		defer stop()
		var done *tollgate.Job
		if cur, err := rt.jobs.Job(rt.ctx, j.Owner, j.ID); err == nil && cur.Status.Terminal() {
			done = cur
		} else {
			select {
			case done = <-ended:
			case <-rt.ctx.Done():
				return
			}
		}
		rt.finish(done)
	})
}

// ownQueue returns the caller's running and waiting prompts, each oldest
// first.
func (rt *Route) ownQueue(ctx context.Context, o tollgate.Owner) (running, pending []*tollgate.Job, err error) {
	if running, err = rt.jobs.OwnJobs(ctx, o, rt.cfg.Name, tollgate.JobProcessing, maxListed); err != nil {
		return nil, nil, err
	}
	if pending, err = rt.jobs.OwnJobs(ctx, o, rt.cfg.Name, tollgate.JobStarting, maxListed); err != nil {
		return nil, nil, err
	}
	slices.Reverse(running)
	slices.Reverse(pending)
	return running, pending, nil
}

// remaining is the caller's queue_remaining: their prompts waiting or
// running.
func (rt *Route) remaining(ctx context.Context, o tollgate.Owner) int {
	running, pending, err := rt.ownQueue(ctx, o)
	if err != nil {
		rt.log.Warn("comfyui route: could not count a user's queue", "route", rt.cfg.Name, "err", err)
	}
	return len(running) + len(pending)
}

func execInfo(n int) map[string]any {
	return map[string]any{"exec_info": map[string]any{"queue_remaining": n}}
}

func (rt *Route) getPrompt(w http.ResponseWriter, r *http.Request, p *tollgate.Principal) error {
	httpx.WriteJSON(w, http.StatusOK, execInfo(rt.remaining(r.Context(), owner(p))))
	return nil
}

// queueItem is a prompt as /queue lists it: [number, prompt_id, prompt,
// extra_data, outputs_to_execute].
func queueItem(j *tollgate.Job) []any {
	var in comfyui.GraphInput
	_ = json.Unmarshal(j.Input, &in)
	extra := map[string]any{}
	for k, v := range in.Extra {
		extra[k] = v
	}
	if in.ClientID != "" {
		extra["client_id"] = in.ClientID
	}
	extra["create_time"] = j.CreatedAt.UnixMilli()
	return []any{j.Seq, j.ID, in.Prompt, extra, []string{}}
}

// getQueue lists the caller's own prompts: running on ComfyUI, and
// pending (waiting in tollgate's queue or ComfyUI's); queue_ahead counts,
// without naming them, the other users' prompts that start before the
// caller's next one.
func (rt *Route) getQueue(w http.ResponseWriter, r *http.Request, p *tollgate.Principal) error {
	running, pending, err := rt.ownQueue(r.Context(), owner(p))
	if err != nil {
		return err
	}
	out := map[string]any{"queue_running": []any{}, "queue_pending": []any{}, "queue_ahead": 0}
	items := func(js []*tollgate.Job) []any {
		l := make([]any, 0, len(js))
		for _, j := range js {
			l = append(l, queueItem(j))
		}
		return l
	}
	out["queue_running"], out["queue_pending"] = items(running), items(pending)
	if len(pending) > 0 {
		if n, err := rt.jobs.QueuePosition(r.Context(), pending[0]); err == nil {
			out["queue_ahead"] = n
		}
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

// postQueue is {"clear": true} and {"delete": [ids]}, on the caller's
// own waiting prompts only (as ComfyUI's, a running prompt stays).
func (rt *Route) postQueue(w http.ResponseWriter, r *http.Request, p *tollgate.Principal) error {
	var req clearOrDelete
	if err := rt.readJSON(r, &req); err != nil {
		return err
	}
	o := owner(p)
	ids := req.Delete
	if req.Clear {
		_, pending, err := rt.ownQueue(r.Context(), o)
		if err != nil {
			return err
		}
		for _, j := range pending {
			ids = append(ids, j.ID)
		}
	}
	for _, id := range ids {
		j, err := rt.jobs.Job(r.Context(), o, id)
		if err != nil || j.Status != tollgate.JobStarting {
			continue // another's, unknown or no longer waiting: nothing to do, as ComfyUI
		}
		if _, err := rt.jobs.Cancel(r.Context(), o, id); err != nil && tollgate.ErrorCode(err) != tollgate.ENotFound {
			return err
		}
	}
	rt.sendStatus(r.Context(), o)
	w.WriteHeader(http.StatusOK)
	return nil
}

// postInterrupt stops the caller's running prompt named by prompt_id, or
// every running prompt of the caller without one; never another's.
func (rt *Route) postInterrupt(w http.ResponseWriter, r *http.Request, p *tollgate.Principal) error {
	var req struct {
		PromptID string `json:"prompt_id"`
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	_ = json.Unmarshal(body, &req) // a body that is not JSON counts as {}, as in ComfyUI
	o := owner(p)
	var ids []string
	if req.PromptID != "" {
		ids = []string{req.PromptID}
	} else {
		running, _, err := rt.ownQueue(r.Context(), o)
		if err != nil {
			return err
		}
		for _, j := range running {
			ids = append(ids, j.ID)
		}
	}
	for _, id := range ids {
		j, err := rt.jobs.Job(r.Context(), o, id)
		if err != nil || j.Status != tollgate.JobProcessing || j.Upstream == "" {
			continue
		}
		// ComfyUI is asked by the prompt's id; the prompt then ends as
		// interrupted on ComfyUI, which tells its GPU time. One that
		// still waits in ComfyUI's own queue is canceled as a job.
		running, err := rt.backend.Interrupt(r.Context(), j)
		if err != nil {
			return tollgate.Errorf(tollgate.EUpstream, "ComfyUI did not take the interrupt")
		}
		if !running {
			if _, err := rt.jobs.Cancel(r.Context(), o, id); err != nil && tollgate.ErrorCode(err) != tollgate.ENotFound {
				return err
			}
		}
	}
	w.WriteHeader(http.StatusOK)
	return nil
}
