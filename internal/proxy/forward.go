package proxy

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// reverseProxy builds the proxy of one upstream of a route's pool.
func (p *Proxy) reverseProxy(rt *route, pl *pool, up *upstream) *httputil.ReverseProxy {
	target := up.url
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			if rt.stripPrefix && rt.prefix {
				rest := strings.TrimPrefix(pr.In.URL.Path, strings.TrimSuffix(rt.path, "/"))
				pr.Out.URL.Path = strings.TrimSuffix(target.Path, "/") + rest
				pr.Out.URL.RawPath = ""
			}
			// Rewrite runs after hop-by-hop headers were removed, so a
			// client's "Connection: X-User-ID" cannot remove what is set here.
			h := pr.Out.Header
			setXForwarded(h, pr.In, p.fromTrustedProxy(pr.In))
			delete(h, "Authorization")
			stripCookies(h, p.hdr.cookies)
			if x, ok := pr.In.Context().Value(exchangeKey{}).(*exchange); ok {
				x.reqIDValue = p.hdr.set(h, x.call.Principal, x.call.RequestID)
				if x.internalToken != "" {
					h[p.hdr.internalToken] = []string{x.internalToken}
				}
			}
			for _, hv := range rt.upHeaders {
				h[hv.name] = hv.value
			}
		},
		Transport: p.transport,
		// Streams are flushed event by event. On http routes ReverseProxy
		// already does so for event streams and bodies of unknown length,
		// and a known-length body is not flushed write by write.
		FlushInterval: flushInterval(rt),
		BufferPool:    p.buffers,
		ModifyResponse: func(res *http.Response) error {
			x, _ := res.Request.Context().Value(exchangeKey{}).(*exchange)
			return p.onResponse(x, res, rt, pl, up)
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			x, ok := w.(*exchange)
			if !ok {
				httpx.WriteError(w, r, p.log, tollgate.Errorf(tollgate.EUpstream, "the upstream failed"))
				return
			}
			p.upstreamFailed(x, r, pl, up, err)
		},
	}
}

// onResponse sees an upstream's response before it is copied: the pool
// learns the upstream's health, the exchange its upstream latency and GPU
// time, and OpenAI usage is read from the body as it passes.
func (p *Proxy) onResponse(x *exchange, res *http.Response, rt *route, pl *pool, up *upstream) error {
	if res.StatusCode >= 500 {
		pl.failure(up, p.now())
	} else {
		pl.success(up)
	}
	if x == nil {
		return nil
	}
	x.upstreamDur = p.now().Sub(x.fwdStart)
	if rt.gpuHeader != "" {
		if v := res.Header.Get(rt.gpuHeader); v != "" {
			if s, err := strconv.ParseFloat(v, 64); err == nil && s >= 0 {
				x.units.GPUMillis = int64(s * 1000)
			}
		}
	}
	if x.usage != nil && res.StatusCode >= 200 { // an error answer's usage counts too
		x.usage.wrap(res, x)
	}
	return nil
}

// upstreamFailed renders a failed exchange: 413 when the streamed body ran
// over the limit, nothing when the client went away, 504 when the route
// timeout passed, else 502. Connection failures count against the
// upstream's health; timeouts do not, since long generations are normal.
func (p *Proxy) upstreamFailed(x *exchange, r *http.Request, pl *pool, up *upstream, err error) {
	switch {
	case x.tooLarge:
		httpx.WriteError(x, r, p.log, tooLarge(x.rt.maxBody))
	case x.clientCt.Err() != nil:
		// The client is gone; there is nobody to answer.
	case r.Context().Err() != nil || x.direct && errors.Is(err, os.ErrDeadlineExceeded):
		x.upstreamErr = true
		x.rt.metrics.upstreamErrors.Inc()
		httpx.WriteError(x, r, p.log, tollgate.Errorf(tollgate.ETimeout, "the upstream did not answer within %s", x.rt.timeout))
	default:
		x.upstreamErr = true
		x.rt.metrics.upstreamErrors.Inc()
		pl.failure(up, p.now())
		p.log.LogAttrs(r.Context(), slog.LevelWarn, "upstream failed", slog.String("route", x.rt.name),
			slog.String("upstream", up.url.Host), slog.String("request_id", x.call.RequestID), slog.String("err", err.Error()))
		httpx.WriteError(x, r, p.log, tollgate.Errorf(tollgate.EUpstream, "the upstream could not be reached"))
	}
}

func flushInterval(rt *route) time.Duration {
	if rt.openai {
		return -1
	}
	return 0
}

// setXForwarded sets X-Forwarded-For, -Host and -Proto as
// ProxyRequest.SetXForwarded does, with one allocation, and keeps the
// incoming X-Forwarded-For chain only from a trusted proxy.
func setXForwarded(h http.Header, in *http.Request, trusted bool) {
	vals := make([]string, 3)
	vals[0] = remoteHost(in)
	if trusted {
		if prior := in.Header["X-Forwarded-For"]; len(prior) > 0 {
			vals[0] = strings.Join(prior, ", ") + ", " + vals[0]
		}
	}
	vals[1] = in.Host
	vals[2] = "http"
	if in.TLS != nil {
		vals[2] = "https"
	}
	h["X-Forwarded-For"] = vals[0:1:1]
	h["X-Forwarded-Host"] = vals[1:2:2]
	h["X-Forwarded-Proto"] = vals[2:3:3]
}
