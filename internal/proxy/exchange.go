package proxy

import (
	"cmp"
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// exchange is the state of one request. It is also the ResponseWriter the
// request is served through, so it sees the status and bytes sent.
type exchange struct {
	w        http.ResponseWriter
	p        *Proxy
	rt       *route
	clientCt context.Context // the client's context, before the route timeout

	call          tollgate.Call
	reqIDValue    []string // the request id as a header value, shared with the upstream request
	internalToken string   // minted for routes with internal_token
	units         tollgate.Units
	releases      []func(context.Context, *tollgate.Outcome)

	up          *backend
	fwdStart    time.Time
	upstreamDur time.Duration

	status         int
	upstreamStatus int // the upstream's answer, 0 when none came
	bytesOut       int64
	bytesIn        int64
	tooLarge       bool // a streamed body ran over the route's limit
	// result is the outcome's Result, recorded where it is decided: by a
	// refusal, the upstream's answer or failure, or a broken stream.
	result string
	usage  *usageMode
	gradio *gradioExchange  // on gradio routes
	out    tollgate.Outcome // filled by finish
}

func (x *exchange) Header() http.Header { return x.w.Header() }

func (x *exchange) WriteHeader(code int) {
	if x.status == 0 || (x.status >= 100 && x.status < 200 && code >= 200) {
		if code >= 200 || code == http.StatusSwitchingProtocols {
			if x.reqIDValue == nil {
				x.reqIDValue = []string{x.call.RequestID}
			}
			x.w.Header()[x.p.hdr.requestID] = x.reqIDValue
		}
		x.status = code
		if x.up != nil && x.upstreamDur == 0 {
			x.upstreamDur = x.p.now().Sub(x.fwdStart)
		}
	}
	x.w.WriteHeader(code)
}

func (x *exchange) Write(b []byte) (int, error) {
	if x.status == 0 {
		x.WriteHeader(http.StatusOK)
	}
	n, err := x.w.Write(b)
	x.bytesOut += int64(n)
	if err != nil {
		x.clientGone()
	}
	return n, err
}

// clientGone records that the client went away before the answer ended.
func (x *exchange) clientGone() {
	if x.result == tollgate.ResultOK {
		x.result = tollgate.ResultCancelled
	}
}

// streamBroke records an answer cut short: by the client going away, or
// by the upstream.
func (x *exchange) streamBroke() {
	if x.clientCt.Err() != nil {
		x.result = tollgate.ResultCancelled
	} else {
		x.result = tollgate.ResultUpstreamError
	}
}

// interim passes an upstream's 1xx answer to the client with its header,
// then clears the header for the final answer, as ReverseProxy does.
func (x *exchange) interim(code int, h http.Header) {
	dst := x.Header()
	for k, vv := range h {
		dst[k] = append(dst[k], vv...)
	}
	x.WriteHeader(code)
	clear(dst)
}

// FlushError sends buffered data to the client (streams); ReverseProxy
// reaches it through http.ResponseController.
func (x *exchange) FlushError() error {
	if x.status == 0 {
		x.WriteHeader(http.StatusOK)
	}
	var err error
	if f, ok := x.w.(interface{ FlushError() error }); ok {
		err = f.FlushError()
	} else {
		err = http.NewResponseController(x.w).Flush()
	}
	if err != nil {
		x.clientGone()
	}
	return err
}

// Unwrap lets http.ResponseController reach Hijack (websockets) and
// deadlines.
func (x *exchange) Unwrap() http.ResponseWriter { return x.w }

// finish runs once when the request ends, normally or by a panic (an
// aborted stream): it releases admissions with the outcome, records
// metrics and writes the access line.
func (x *exchange) finish() {
	p := x.p
	end := p.now()
	if x.up != nil {
		x.up.done()
	}
	out := &x.out
	*out = tollgate.Outcome{
		Status: x.status,
		// No outcome was recorded when the request ended by a panic of
		// its own: it counts as failed, not as served.
		Result:     cmp.Or(x.result, tollgate.ResultUpstreamError),
		BytesOut:   x.bytesOut,
		BytesIn:    x.bytesIn,
		End:        end,
		UpstreamMS: x.upstreamDur.Milliseconds(),
		Units:      x.units,
	}
	if out.Status == 0 {
		out.Status = 499 // client closed the request before a response
	} else if out.Result != tollgate.ResultRejected {
		out.UpstreamStatus = x.upstreamStatus
	}
	if len(x.releases) > 0 {
		ctx := context.WithoutCancel(x.clientCt)
		if x.gradio != nil && x.gradio.hold(ctx, x.releases, out) {
			x.releases = nil // settled when the app's stream tells how the call ended
		}
		for _, rel := range x.releases {
			rel(ctx, out)
		}
	}
	name, rm := unmatchedRoute, p.unmatched
	if x.rt != nil {
		name, rm = x.rt.name, x.rt.metrics
	}
	rm.observe(out.Status, end.Sub(x.call.Start).Seconds())
	p.metrics.inFlight.Dec()
	if p.accessLog && p.log.Enabled(x.clientCt, slog.LevelInfo) {
		x.logAccess(name, out)
	}
}

func (x *exchange) logAccess(route string, out *tollgate.Outcome) {
	attrs := make([]slog.Attr, 0, 18)
	attrs = append(attrs,
		slog.String("request_id", x.call.RequestID),
		slog.String("client_ip", x.call.ClientIP),
		slog.String("method", x.call.Method),
		slog.String("route", route),
	)
	if pr := x.call.Principal; pr != nil {
		attrs = append(attrs,
			slog.String("sub", pr.UserID),
			slog.String("tenant", pr.TenantID),
			slog.String("iss", pr.Issuer),
			slog.String("jti", pr.JTI),
		)
	}
	if x.call.Model != "" {
		attrs = append(attrs, slog.String("model", x.call.Model))
	}
	if x.up != nil {
		attrs = append(attrs, slog.String("upstream", x.up.url.Host))
	}
	attrs = append(attrs,
		slog.Int("status", out.Status),
		slog.String("result", out.Result),
		slog.Int64("bytes_in", x.bytesIn),
		slog.Int64("bytes_out", out.BytesOut),
		slog.Int64("upstream_ms", out.UpstreamMS),
		slog.Int64("total_ms", out.End.Sub(x.call.Start).Milliseconds()),
	)
	if out.Units.InputTokens > 0 || out.Units.OutputTokens > 0 {
		attrs = append(attrs, slog.Int64("input_tokens", out.Units.InputTokens), slog.Int64("output_tokens", out.Units.OutputTokens))
	}
	x.p.log.LogAttrs(x.clientCt, slog.LevelInfo, "access", attrs...)
}
