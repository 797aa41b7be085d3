package jobs

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// result serves a result file behind a signed link: no Authorization
// needed, Range requests answered, the stored Content-Type with nosniff.
// A bad signature or an expired link is 403, and so is a link of a
// disabled tenant's job; a result past its retention, or one that does
// not exist, is 404.
func (s *Service) result(w http.ResponseWriter, r *http.Request) error {
	id, name := r.PathValue("id"), r.PathValue("name")
	if !validName(name) {
		return tollgate.Errorf(tollgate.ENotFound, "no such result")
	}
	now := s.now()
	if err := s.links.check(id, name, r.URL.Query(), now); err != nil {
		return err
	}
	j, err := s.store.JobByID(r.Context(), id)
	if err != nil {
		return err
	}
	if m := s.models[j.Model]; m == nil || j.ResultsRemoved || j.CompletedAt.IsZero() || !now.Before(j.CompletedAt.Add(m.cfg.Retention)) {
		return tollgate.Errorf(tollgate.ENotFound, "no such result")
	}
	if s.opts.OwnerDisabled != nil && s.opts.OwnerDisabled(j.Owner) {
		return tollgate.Errorf(tollgate.EForbidden, "the result's tenant is disabled")
	}
	f, blob, err := s.blobs.Open(r.Context(), tollgate.BlobKey{TenantID: j.TenantID, UserID: j.UserID, PredictionID: j.ID}, name)
	if err != nil {
		return err
	}
	defer f.Close()
	h := w.Header()
	h.Set("Content-Type", blob.ContentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	h.Set("Cache-Control", "private, max-age=300")
	http.ServeContent(w, r, name, blob.ModTime, f)
	return nil
}

// stream serves a prediction's server-sent events behind its signed
// stream link: "progress" (0..1), "logs", then "output" (the output with
// signed links) or "error", then "done".
func (s *Service) stream(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if err := s.links.check(id, streamName, r.URL.Query(), s.now()); err != nil {
		return err
	}
	events, unsubscribe := s.hub.subscribe(id)
	defer unsubscribe()
	j, err := s.store.JobByID(r.Context(), id)
	if err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	send := func(name string, data any) bool {
		b, _ := json.Marshal(data)
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	finish := func(j *tollgate.Job) {
		p := s.render(j)
		if j.Status == tollgate.JobFailed && p.Error != nil {
			send("error", *p.Error)
		} else {
			send("output", p.Output)
		}
		send("done", map[string]any{"status": j.Status})
	}
	if j.Status.Terminal() {
		finish(j)
		return nil
	}
	send("status", map[string]any{"status": j.Status})
	poll := time.NewTicker(s.opts.PollInterval)
	defer poll.Stop()
	for {
		select {
		case <-r.Context().Done():
			return nil
		case e := <-events:
			switch {
			case e.done != nil:
				finish(e.done)
				return nil
			case e.log != "":
				if !send("logs", e.log) {
					return nil
				}
			case e.progress >= 0:
				if !send("progress", map[string]float64{"progress": e.progress}) {
					return nil
				}
			default:
				if !send("status", map[string]any{"status": tollgate.JobProcessing}) {
					return nil
				}
			}
		case <-poll.C:
			if cur, err := s.store.JobByID(r.Context(), id); err == nil && cur.Status.Terminal() {
				finish(cur)
				return nil
			}
		}
	}
}
