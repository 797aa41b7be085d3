package jobs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// Scope is the scope every predictions endpoint requires.
const Scope = "jobs"

// maxWait bounds Prefer: wait.
const maxWait = 60 * time.Second

// Register mounts the predictions API on mux. require authenticates a
// handler (auth.Service.Require); result and stream links are signed and
// need no credentials.
func (s *Service) Register(mux httpx.Mux, require func(http.Handler) http.Handler) {
	h := func(f httpx.HandlerFunc) http.Handler { return require(httpx.Handle(s.log, f)) }
	mux.Handle("POST /v1/models/{owner}/{name}/predictions", h(s.create))
	mux.Handle("POST /v1/predictions", h(s.create))
	mux.Handle("GET /v1/predictions", h(s.list))
	mux.Handle("GET /v1/predictions/{id}", h(s.get))
	mux.Handle("POST /v1/predictions/{id}/cancel", h(s.cancelHandler))
	mux.Handle("POST /v1/files", h(s.createFile))
	mux.Handle("GET /v1/files/{id}", h(s.getFile))
	mux.Handle("DELETE /v1/files/{id}", h(s.deleteFile))
	mux.Handle("GET /v1/predictions/{id}/stream", httpx.Handle(s.log, s.stream))
	mux.Handle("GET /v1/results/{id}/{name}", httpx.Handle(s.log, s.result))
}

// caller returns the request's principal and owner, or an error when it
// lacks the jobs scope.
func (s *Service) caller(r *http.Request) (*tollgate.Principal, tollgate.Owner, error) {
	var p *tollgate.Principal
	if s.opts.Principal != nil {
		p = s.opts.Principal(r)
	}
	if p == nil {
		return nil, tollgate.Owner{}, tollgate.Errorf(tollgate.EUnauthorized, "authentication required")
	}
	if !p.HasScope(Scope) {
		return nil, tollgate.Owner{}, tollgate.Errorf(tollgate.EForbidden, "the %s scope is required", Scope)
	}
	return p, tollgate.Owner{TenantID: p.TenantID, UserID: p.UserID}, nil
}

// createRequest is the body of a create call.
type createRequest struct {
	Version             string          `json:"version"`
	Input               json.RawMessage `json:"input"`
	Webhook             string          `json:"webhook"`
	WebhookEventsFilter []string        `json:"webhook_events_filter"`
	Stream              bool            `json:"stream"`
}

func (s *Service) create(w http.ResponseWriter, r *http.Request) error {
	p, owner, err := s.caller(r)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, s.maxBody+1))
	if err != nil {
		return tollgate.Errorf(tollgate.EInvalid, "could not read the request body")
	}
	if int64(len(body)) > s.maxBody {
		return tollgate.Errorf(tollgate.ETooLarge, "request body is larger than %d bytes", s.maxBody)
	}
	var req createRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		return tollgate.Errorf(tollgate.EInvalid, "request body is not a JSON object")
	}
	name := req.Version
	if owner := r.PathValue("owner"); owner != "" {
		name = owner + "/" + r.PathValue("name")
	}
	if name == "" {
		return tollgate.Errorf(tollgate.EInputInvalid, "version: required (the model's name, e.g. owner/name)")
	}
	sub := Submission{Model: name, Input: req.Input, IdempotencyKey: r.Header.Get("Idempotency-Key"),
		Webhook: req.Webhook, WebhookEvents: req.WebhookEventsFilter, Files: s.fileResolver(r, owner),
		Entry: &tollgate.Entry{Header: w.Header()}}
	sum := sha256.Sum256(append([]byte(name+"\n"), body...))
	sub.BodyHash = hex.EncodeToString(sum[:])
	if v := r.Header.Get("Cancel-After"); v != "" {
		if sub.CancelAfter, err = parseDuration(v); err != nil {
			return tollgate.Errorf(tollgate.EInvalid, "Cancel-After: want a duration such as 5m or 90s")
		}
	}
	wait, err := parsePrefer(r.Header.Get("Prefer"))
	if err != nil {
		return err
	}
	j, created, err := s.replay(r.Context(), owner, sub)
	if err == nil && j == nil {
		j, created, err = s.Submit(r.Context(), p, sub)
	}
	if err != nil {
		return err
	}
	if wait > 0 {
		j = s.waitFor(r.Context(), j, wait)
	}
	status := http.StatusCreated
	if !created {
		status = http.StatusOK
	}
	w.Header().Set("Location", s.links.base+"/v1/predictions/"+url.PathEscape(j.ID))
	httpx.WriteJSON(w, status, s.renderQueued(r.Context(), j))
	return nil
}

// replay returns the prediction an earlier create with the same
// Idempotency-Key and body made, or EConflict for another body, so a
// repeated create is answered without being admitted again (no rate limit
// token, no reservation); nil when the key is new. Two first creates at
// once both reach Submit, where the store keeps one.
func (s *Service) replay(ctx context.Context, o tollgate.Owner, sub Submission) (*tollgate.Job, bool, error) {
	if sub.IdempotencyKey == "" {
		return nil, false, nil
	}
	j, err := s.store.JobByKey(ctx, o, sub.IdempotencyKey)
	switch {
	case tollgate.ErrorCode(err) == tollgate.ENotFound:
		return nil, false, nil
	case err != nil:
		return nil, false, err
	case j.BodyHash != sub.BodyHash:
		return nil, false, tollgate.Errorf(tollgate.EConflict, "idempotency key %q was used with another request body", sub.IdempotencyKey)
	}
	return j, false, nil
}

// parsePrefer reads Prefer: wait or wait=N (seconds, at most 60).
func parsePrefer(v string) (time.Duration, error) {
	for part := range strings.SplitSeq(v, ",") {
		part = strings.TrimSpace(part)
		if part == "wait" {
			return maxWait, nil
		}
		if n, ok := strings.CutPrefix(part, "wait="); ok {
			secs, err := strconv.Atoi(n)
			if err != nil || secs < 1 || secs > int(maxWait.Seconds()) {
				return 0, tollgate.Errorf(tollgate.EInvalid, "Prefer: wait=N takes 1 to 60 seconds")
			}
			return time.Duration(secs) * time.Second, nil
		}
	}
	return 0, nil
}

func parseDuration(v string) (time.Duration, error) {
	if secs, err := strconv.Atoi(v); err == nil && secs > 0 {
		return time.Duration(secs) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("bad duration %q", v)
	}
	return d, nil
}

// waitFor returns j once it ended, or as it is after d (or when the
// caller goes away).
func (s *Service) waitFor(ctx context.Context, j *tollgate.Job, d time.Duration) *tollgate.Job {
	if j.Status.Terminal() {
		return j
	}
	events, unsubscribe := s.hub.subscribe(j.ID)
	defer unsubscribe()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	poll := time.NewTicker(s.opts.PollInterval)
	defer poll.Stop()
	for {
		if cur, err := s.store.Job(ctx, j.Owner, j.ID); err == nil {
			j = cur
			if j.Status.Terminal() {
				return j
			}
		}
		select {
		case <-ctx.Done():
			return j
		case e := <-events:
			if e.done != nil {
				return e.done
			}
		case <-poll.C:
		}
	}
}

func (s *Service) get(w http.ResponseWriter, r *http.Request) error {
	_, o, err := s.caller(r)
	if err != nil {
		return err
	}
	j, err := s.store.Job(r.Context(), o, r.PathValue("id"))
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, s.renderQueued(r.Context(), j))
	return nil
}

func (s *Service) cancelHandler(w http.ResponseWriter, r *http.Request) error {
	_, o, err := s.caller(r)
	if err != nil {
		return err
	}
	j, err := s.Cancel(r.Context(), o, r.PathValue("id"))
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, s.render(j))
	return nil
}

// page is a page of the caller's predictions.
type page struct {
	Next     *string       `json:"next"`
	Previous *string       `json:"previous"`
	Results  []*prediction `json:"results"`
}

// list answers GET /v1/predictions: the caller's own, newest first, 100 a
// page (?limit=1..1000 changes that), with cursor links.
func (s *Service) list(w http.ResponseWriter, r *http.Request) error {
	_, o, err := s.caller(r)
	if err != nil {
		return err
	}
	q := tollgate.JobQuery{Owner: o, Limit: 100}
	if v := r.URL.Query().Get("limit"); v != "" {
		if q.Limit, err = strconv.Atoi(v); err != nil || q.Limit < 1 || q.Limit > 1000 {
			return tollgate.Errorf(tollgate.EInvalid, "limit: want 1 to 1000")
		}
	}
	if c := r.URL.Query().Get("cursor"); c != "" {
		dir, seq, ok := decodeCursor(c)
		if !ok {
			return tollgate.Errorf(tollgate.EInvalid, "cursor: invalid")
		}
		if dir == 'b' {
			q.Before = seq
		} else {
			q.After = seq
		}
	}
	jobs, err := s.store.Jobs(r.Context(), q)
	if err != nil {
		return err
	}
	out := page{Results: make([]*prediction, 0, len(jobs))}
	for _, j := range jobs {
		out.Results = append(out.Results, s.renderQueued(r.Context(), j))
	}
	link := func(dir byte, seq int64) *string {
		v := url.Values{"cursor": {encodeCursor(dir, seq)}}
		if q.Limit != 100 {
			v.Set("limit", strconv.Itoa(q.Limit))
		}
		u := s.links.base + "/v1/predictions?" + v.Encode()
		return &u
	}
	if len(jobs) > 0 {
		if len(jobs) == q.Limit || q.After > 0 {
			out.Next = link('b', jobs[len(jobs)-1].Seq)
		}
		if q.Before > 0 || (q.After > 0 && len(jobs) == q.Limit) {
			out.Previous = link('a', jobs[0].Seq)
		}
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func encodeCursor(dir byte, seq int64) string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%c%d", dir, seq))
}

func decodeCursor(c string) (byte, int64, bool) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) < 2 || (b[0] != 'a' && b[0] != 'b') {
		return 0, 0, false
	}
	seq, err := strconv.ParseInt(string(b[1:]), 10, 64)
	if err != nil || seq <= 0 {
		return 0, 0, false
	}
	return b[0], seq, true
}
