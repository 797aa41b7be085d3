package proxy

import (
	"context"
	"errors"
	"io"
	"mime"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/upstream"
)

// The direct exchange forwards a request of an http route to an HTTP or
// HTTPS upstream without httputil.ReverseProxy: the upstream request (built by
// outgoing, as for ReverseProxy) is carried by the own transport on the
// handler's goroutine, and the response is copied back with its
// hop-by-hop headers left out, as ReverseProxy copies it —
// TestDirectMatchesReverseProxy compares the two on what the upstream
// receives and what the client gets — at a fraction of the allocations.
// OpenAI routes, upgrades, Expect and request trailers go through
// ReverseProxy (and OpenAI routes then through the own transport too).

// directOK reports whether r can take the direct exchange on rt.
func (p *Proxy) directOK(r *http.Request, rt *route, up *backend) bool {
	return p.own != nil && !rt.openai && rt.gradio == nil && (up.url.Scheme == "http" || up.url.Scheme == "https") && upstream.Plain(r)
}

// forwardDirect serves x through the direct exchange, bounded by deadline.
func (p *Proxy) forwardDirect(x *exchange, r *http.Request, pl *pool, deadline time.Time) {
	out := p.outgoing(r.Context(), x, r)
	res, err := p.own.Do(out, upstream.Options{Deadline: deadline, Interim: x.interim})
	if err != nil {
		p.upstreamFailed(x, out, pl, err, errors.Is(err, os.ErrDeadlineExceeded))
		return
	}
	p.onResponse(x, res, pl)
	dst := x.Header()
	listed := connectionNames(res.Header["Connection"])
	for k, vv := range res.Header {
		if hop(k) || slices.Contains(listed, k) {
			continue
		}
		if prior, ok := dst[k]; ok {
			dst[k] = append(prior, vv...)
		} else {
			dst[k] = vv
		}
	}
	announced := len(res.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range res.Trailer {
			keys = append(keys, k)
		}
		dst["Trailer"] = append(dst["Trailer"], strings.Join(keys, ", "))
	}
	x.WriteHeader(res.StatusCode)
	if err := p.copyBody(x, res); err != nil {
		res.Body.Close()
		panic(http.ErrAbortHandler) // as ReverseProxy does: the client sees the response cut short
	}
	res.Body.Close()
	if len(res.Trailer) > 0 {
		// Trailers the answer did not announce go as net/http's
		// TrailerPrefix keys, as ReverseProxy sends them.
		unannounced := len(res.Trailer) != announced
		_ = x.FlushError()
		for k, vv := range res.Trailer {
			if unannounced {
				k = http.TrailerPrefix + k
			}
			dst[k] = append(dst[k], vv...)
		}
	}
}

// copyBody copies the response body to the client, flushing after each
// write for event streams and bodies of unknown length. A body that
// breaks is recorded here; a client that goes away, by the exchange's
// Write.
func (p *Proxy) copyBody(x *exchange, res *http.Response) error {
	if res.Body == http.NoBody {
		return nil
	}
	flush := res.ContentLength == -1
	if !flush {
		if ct := res.Header["Content-Type"]; len(ct) > 0 && strings.Contains(ct[0], "event-stream") {
			base, _, _ := mime.ParseMediaType(ct[0])
			flush = base == "text/event-stream"
		}
	}
	buf := p.buffers.Get()
	defer p.buffers.Put(buf)
	for {
		n, rerr := res.Body.Read(buf)
		if n > 0 {
			if _, err := x.Write(buf[:n]); err != nil {
				return err
			}
			if flush {
				if err := x.FlushError(); err != nil {
					return err
				}
			}
		}
		if errors.Is(rerr, io.EOF) {
			return nil
		}
		if rerr != nil {
			x.streamBroke()
			if !errors.Is(rerr, context.Canceled) {
				p.log.Warn("upstream body failed", "route", x.rt.name, "request_id", x.call.RequestID, "err", rerr.Error())
			}
			return rerr
		}
	}
}
