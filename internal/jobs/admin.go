package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// AdminHandlers are the operators' job endpoints, by pattern below
// /admin/v1 (mounted behind the admin role): every user's jobs.
//
//	GET  /jobs?model=&status=&tenant=&user=&cursor=&limit=
//	GET  /jobs/{id}
//	POST /jobs/{id}/cancel
func (s *Service) AdminHandlers() map[string]httpx.HandlerFunc {
	return map[string]httpx.HandlerFunc{
		"GET /jobs":              s.adminList,
		"GET /jobs/{id}":         s.adminGet,
		"POST /jobs/{id}/cancel": s.adminCancel,
	}
}

// adminJob is a prediction with its owner, for operators.
type adminJob struct {
	*prediction
	TenantID string `json:"tenant_id"`
	UserID   string `json:"user_id"`
	Plan     string `json:"plan"`
	Upstream string `json:"upstream,omitempty"`
	// Attempts is how many times the job was sent to an upstream.
	Attempts int `json:"attempts"`
}

func (s *Service) adminView(j *tollgate.Job) adminJob {
	return adminJob{prediction: s.render(j), TenantID: j.TenantID, UserID: j.UserID, Plan: j.Plan, Upstream: j.Upstream,
		Attempts: j.Attempts}
}

func (s *Service) adminList(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	f := tollgate.JobFilter{Model: q.Get("model"), Status: tollgate.JobStatus(q.Get("status")),
		TenantID: q.Get("tenant"), UserID: q.Get("user"), Limit: 100}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return tollgate.Errorf(tollgate.EInvalid, "limit: want 1 to 1000")
		}
		f.Limit = n
	}
	if c := q.Get("cursor"); c != "" {
		dir, seq, ok := decodeCursor(c)
		if !ok || dir != 'b' {
			return tollgate.Errorf(tollgate.EInvalid, "cursor: invalid")
		}
		f.Before = seq
	}
	jobs, err := s.store.AllJobs(r.Context(), f)
	if err != nil {
		return err
	}
	out := struct {
		Next    *string    `json:"next"`
		Results []adminJob `json:"results"`
	}{Results: make([]adminJob, 0, len(jobs))}
	for _, j := range jobs {
		out.Results = append(out.Results, s.adminView(j))
	}
	if len(jobs) == f.Limit {
		q.Set("cursor", encodeCursor('b', jobs[len(jobs)-1].Seq))
		next := s.links.base + "/admin/v1/jobs?" + q.Encode()
		out.Next = &next
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (s *Service) adminGet(w http.ResponseWriter, r *http.Request) error {
	j, err := s.store.JobByID(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, s.adminView(j))
	return nil
}

func (s *Service) adminCancel(w http.ResponseWriter, r *http.Request) error {
	j, err := s.store.JobByID(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if j, err = s.Cancel(r.Context(), j.Owner, j.ID); err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, s.adminView(j))
	return nil
}

// CancelJob cancels any job in store, for the command line: a queued one
// ends canceled (the server that took it settles its usage record at no
// charge on its next look at the store); a running one is asked to stop.
func CancelJob(ctx context.Context, store tollgate.JobStore, id string, now time.Time) (*tollgate.Job, error) {
	j, err := store.JobByID(ctx, id)
	if err != nil {
		return nil, err
	}
	return store.Cancel(ctx, j.Owner, j.ID, now)
}

// WriteJobs prints jobs as a table (format "table") or JSON lines.
func WriteJobs(w io.Writer, jobs []*tollgate.Job, format string) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		for _, j := range jobs {
			if err := enc.Encode(jobLine(j)); err != nil {
				return fmt.Errorf("write jobs: %w", err)
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tMODEL\tSTATUS\tTENANT\tUSER\tCREATED\tPREDICT")
	for _, j := range jobs {
		predict := "-"
		if !j.StartedAt.IsZero() && j.Status.Terminal() {
			predict = (time.Duration(j.PredictMillis) * time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.ID, j.Model, j.Status, j.TenantID, j.UserID,
			j.CreatedAt.Format(time.RFC3339), predict)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write jobs: %w", err)
	}
	return nil
}

// jobLine is a job as the command line prints it in JSON.
func jobLine(j *tollgate.Job) map[string]any {
	return map[string]any{"id": j.ID, "model": j.Model, "status": j.Status, "tenant_id": j.TenantID, "user_id": j.UserID,
		"plan": j.Plan, "input": j.Input, "output": j.Output, "error": j.Error, "upstream": j.Upstream, "handle": j.Handle,
		"created_at": stamp(j.CreatedAt), "started_at": stamp(j.StartedAt), "completed_at": stamp(j.CompletedAt),
		"predict_ms": j.PredictMillis, "cancel_requested": j.CancelRequested, "attempts": j.Attempts}
}
