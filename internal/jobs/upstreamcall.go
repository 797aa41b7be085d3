package jobs

import (
	"net/http"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// UpstreamCall is what the http and gradio backends share: how they reach
// an upstream, how much they take from it, how they measure a call, and
// how they name the job's owner to it.
type UpstreamCall struct {
	// Client makes the calls. Defaults to a client without a timeout (the
	// runner's context bounds each job).
	Client *http.Client
	// MaxOutput bounds the answer and each copied file. Defaults to 256 MiB.
	MaxOutput int64
	// Clock measures the call. Defaults to time.Now.
	Clock func() time.Time
	// UserIDHeader and TenantIDHeader, when set, name the headers that
	// carry the job owner's ids to the upstream (the config's headers).
	UserIDHeader   string
	TenantIDHeader string
}

func (c *UpstreamCall) client() *http.Client {
	if c.Client != nil {
		return c.Client
	}
	return http.DefaultClient
}

func (c *UpstreamCall) now() time.Time {
	if c.Clock != nil {
		return c.Clock()
	}
	return time.Now()
}

func (c *UpstreamCall) limit() int64 {
	if c.MaxOutput > 0 {
		return c.MaxOutput
	}
	return 256 << 20
}

// identify names the job and its owner on a request to the upstream.
func (c *UpstreamCall) identify(req *http.Request, run *tollgate.JobRun) {
	req.Header.Set("X-Request-ID", run.Job.ID)
	if c.UserIDHeader != "" {
		req.Header.Set(c.UserIDHeader, run.Job.UserID)
	}
	if c.TenantIDHeader != "" {
		req.Header.Set(c.TenantIDHeader, run.Job.TenantID)
	}
}
