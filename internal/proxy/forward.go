package proxy

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"strconv"
	"time"

	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// forward sends the request to an upstream of pl and copies the response.
// The route timeout bounds the exchange: as the upstream connection's
// deadline on the direct exchange, as a context deadline otherwise.
func (p *Proxy) forward(x *exchange, r *http.Request, pl *pool) {
	x.fwdStart = p.now()
	x.up = pl.pick(x.fwdStart)
	if p.directOK(r, x.rt, x.up) {
		p.forwardDirect(x, r, pl, time.Now().Add(x.rt.timeout))
		return
	}
	ctx := r.Context()
	if !isUpgrade(r) {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, x.rt.timeout)
		defer cancel()
	}
	p.reverseProxy(x, pl).ServeHTTP(x, r.WithContext(ctx))
}

// reverseProxy builds the ReverseProxy that forwards x: OpenAI routes,
// upgrades, HTTPS upstreams and the bodies the direct exchange does not
// send.
func (p *Proxy) reverseProxy(x *exchange, pl *pool) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.Out = p.outgoing(pr.Out.Context(), x, pr.In) },
		Transport: p.transport,
		// Streams are flushed event by event. On http routes ReverseProxy
		// already does so for event streams and bodies of unknown length,
		// and a known-length body is not flushed write by write.
		FlushInterval: flushInterval(x.rt),
		BufferPool:    p.buffers,
		ModifyResponse: func(res *http.Response) error {
			p.onResponse(x, res, pl)
			if res.StatusCode != http.StatusSwitchingProtocols && res.Body != nil && res.Body != http.NoBody {
				res.Body = &watchedBody{ReadCloser: res.Body, x: x}
			}
			return nil
		},
		ErrorHandler: func(_ http.ResponseWriter, r *http.Request, err error) {
			p.upstreamFailed(x, r, pl, err, false)
		},
	}
}

// watchedBody records an upstream body that broke while ReverseProxy
// copied it.
type watchedBody struct {
	io.ReadCloser
	x *exchange
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.x.streamBroke()
	}
	return n, err
}

// onResponse sees an upstream's response before it is copied: the
// outcome is decided by its status (ok below 400), the pool learns the upstream's
// health, the exchange its upstream latency and GPU time, and OpenAI
// usage is read from the body as it passes.
func (p *Proxy) onResponse(x *exchange, res *http.Response, pl *pool) {
	x.upstreamStatus = res.StatusCode
	switch {
	case res.StatusCode >= 500:
		x.result = tollgate.ResultUpstreamError
		pl.failure(x.up, p.now())
	case res.StatusCode >= 400:
		x.result = tollgate.ResultUpstreamError // refused by the upstream, which is healthy
		pl.success(x.up)
	default:
		x.result = tollgate.ResultOK
		pl.success(x.up)
	}
	x.upstreamDur = p.now().Sub(x.fwdStart)
	if gh := x.rt.gpuHeader; gh != "" {
		if v := res.Header.Get(gh); v != "" {
			if s, err := strconv.ParseFloat(v, 64); err == nil && s >= 0 {
				x.units.GPUMillis = int64(s * 1000)
			}
		}
	}
	if x.gradio != nil {
		x.gradio.response(res)
	}
	if pr := x.call.Principal; pr != nil && pr.ViaSession && p.opts.SessionPage != nil && res.StatusCode != http.StatusSwitchingProtocols {
		p.opts.SessionPage(pr, res)
	}
	if x.usage != nil && res.StatusCode >= 200 { // an error answer's usage counts too
		x.usage.wrap(res, x)
	}
}

// upstreamFailed renders and records a failed exchange: 413 when the
// streamed body ran over the limit, nothing when the client went away,
// 504 when the route timeout passed (timedOut on the direct exchange,
// whose timeout is a connection deadline), else 502. Connection failures
// count against the upstream's health; timeouts do not, since long
// generations are normal.
func (p *Proxy) upstreamFailed(x *exchange, r *http.Request, pl *pool, err error, timedOut bool) {
	switch {
	case x.tooLarge:
		x.result = tollgate.ResultRejected
		httpx.WriteError(x, r, p.log, tooLarge(x.rt.maxBody))
	case x.clientCt.Err() != nil:
		// The client is gone; there is nobody to answer.
		x.result = tollgate.ResultCancelled
	case r.Context().Err() != nil || timedOut:
		x.result = tollgate.ResultUpstreamError
		x.rt.metrics.upstreamErrors.Inc()
		httpx.WriteError(x, r, p.log, tollgate.Errorf(tollgate.ETimeout, "the upstream did not answer within %s", x.rt.timeout))
	default:
		x.result = tollgate.ResultUpstreamError
		x.rt.metrics.upstreamErrors.Inc()
		pl.failure(x.up, p.now())
		p.log.LogAttrs(r.Context(), slog.LevelWarn, "upstream failed", slog.String("route", x.rt.name),
			slog.String("upstream", x.up.url.Host), slog.String("request_id", x.call.RequestID), slog.String("err", err.Error()))
		httpx.WriteError(x, r, p.log, tollgate.Errorf(tollgate.EUpstream, "the upstream could not be reached"))
	}
}

func flushInterval(rt *route) time.Duration {
	if rt.openai || rt.gradio != nil {
		return -1
	}
	return 0
}
