package jobs

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// prediction is a job in the predictions API's shape.
type prediction struct {
	ID          string             `json:"id"`
	Model       string             `json:"model"`
	Version     string             `json:"version"`
	Input       json.RawMessage    `json:"input"`
	Output      any                `json:"output"`
	Error       *string            `json:"error"`
	Logs        string             `json:"logs"`
	Status      tollgate.JobStatus `json:"status"`
	Source      string             `json:"source"`
	CreatedAt   string             `json:"created_at"`
	StartedAt   *string            `json:"started_at"`
	CompletedAt *string            `json:"completed_at"`
	URLs        map[string]string  `json:"urls"`
	Metrics     map[string]any     `json:"metrics,omitempty"`
	DataRemoved bool               `json:"data_removed"`
	// QueuePosition, while queued, estimates how many jobs start before
	// this one (JobStore.QueuePosition).
	QueuePosition *int `json:"queue_position,omitempty"`
}

func stamp(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339Nano)
	return &s
}

// render turns a job into its prediction: result references become
// signed links, valid for the model's link_ttl and never past retention.
func (s *Service) render(j *tollgate.Job) *prediction {
	base := s.links.base + "/v1/predictions/" + url.PathEscape(j.ID)
	p := &prediction{ID: j.ID, Model: j.Model, Version: j.Model, Input: j.Input, Logs: j.Logs, Status: j.Status,
		Source: "api", CreatedAt: *stamp(j.CreatedAt), StartedAt: stamp(j.StartedAt), CompletedAt: stamp(j.CompletedAt),
		URLs: map[string]string{"get": base, "cancel": base + "/cancel"}}
	now := s.now()
	m := s.models[j.Model]
	linkTTL, retention := time.Hour, 24*time.Hour
	if m != nil {
		linkTTL, retention = m.cfg.LinkTTL, m.cfg.Retention
	}
	if !j.Status.Terminal() {
		p.URLs["stream"] = s.streamURL(j.ID, now.Add(linkTTL))
	}
	if j.Error != "" {
		p.Error = &j.Error
	}
	if j.Status.Terminal() {
		metrics := map[string]any{"total_time": j.CompletedAt.Sub(j.CreatedAt).Seconds()}
		if !j.StartedAt.IsZero() {
			metrics["predict_time"] = float64(j.PredictMillis) / 1000
		}
		p.Metrics = metrics
	}
	if len(j.Output) > 0 {
		expires := j.CompletedAt.Add(retention)
		if j.ResultsRemoved || (!j.CompletedAt.IsZero() && !now.Before(expires)) {
			p.DataRemoved = true
		} else {
			var out any
			if json.Unmarshal(j.Output, &out) == nil {
				p.Output = s.signOutput(j.ID, out, minTime(now.Add(linkTTL), expires))
			}
		}
	}
	return p
}

// renderQueued renders j and, while it is queued, its queue position; a
// position that cannot be read is left out.
func (s *Service) renderQueued(ctx context.Context, j *tollgate.Job) *prediction {
	p := s.render(j)
	if j.Status == tollgate.JobStarting {
		n, err := s.store.QueuePosition(ctx, j)
		if err != nil {
			s.log.Warn("jobs: could not estimate a queue position", "job", j.ID, "err", err)
		} else {
			p.QueuePosition = &n
		}
	}
	return p
}

// signOutput replaces result references by signed links.
func (s *Service) signOutput(id string, v any, exp time.Time) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = s.signOutput(id, e, exp)
		}
	case []any:
		for i, e := range x {
			x[i] = s.signOutput(id, e, exp)
		}
	case string:
		if name, ok := strings.CutPrefix(x, refPrefix); ok && validName(name) {
			return s.links.url(id, name, exp)
		}
	}
	return v
}

func (s *Service) streamURL(id string, exp time.Time) string {
	return s.links.base + "/v1/predictions/" + url.PathEscape(id) + "/stream?" + s.links.query(id, streamName, exp)
}

// streamName is what a stream link signs in place of a file name; no
// result file has it (names never start with a dot).
const streamName = ".stream"

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
