package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// HTTPBackend runs a job as one call of a slow endpoint: the input is
// POSTed as JSON to the upstream's path. A JSON answer is the output,
// with every URL in it that points to the upstream copied into the
// result store; any other answer body is stored as the output file.
type HTTPBackend struct {
	// Path is POSTed to on the upstream. Defaults to /.
	Path string
	UpstreamCall
}

var _ tollgate.Backend = (*HTTPBackend)(nil)

// maxCopied bounds the files copied out of one JSON answer.
const maxCopied = 64

// Submit does nothing: the call itself is the job, made by Watch.
func (b *HTTPBackend) Submit(context.Context, *tollgate.JobRun) (string, error) { return "", nil }

// Cancel does nothing: ending Watch's context aborts the call.
func (b *HTTPBackend) Cancel(context.Context, *tollgate.JobRun, string) error { return nil }

// Watch makes the call and collects its output.
func (b *HTTPBackend) Watch(ctx context.Context, run *tollgate.JobRun, _ string) (*tollgate.JobResult, error) {
	target, err := url.JoinPath(run.Upstream, cmpOr(b.Path, "/"))
	if err != nil {
		return nil, fmt.Errorf("upstream url: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(run.Job.Input))
	if err != nil {
		return nil, fmt.Errorf("upstream request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	b.identify(req, run)
	run.Report(tollgate.JobEvent{Progress: 0})
	start := b.now()
	resp, err := b.client().Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err := tollgate.RefusedIfDial(err); errors.Is(err, tollgate.ErrRefused) {
			return nil, err // never sent: the runner may queue it again
		}
		return &tollgate.JobResult{Status: tollgate.JobFailed, Error: "the upstream could not be reached",
			PredictMillis: b.now().Sub(start).Milliseconds()}, nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, b.limit()+1))
	elapsed := b.now().Sub(start).Milliseconds()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return &tollgate.JobResult{Status: tollgate.JobFailed, Error: "the upstream's answer broke off", PredictMillis: elapsed}, nil
	}
	res := &tollgate.JobResult{PredictMillis: elapsed}
	switch {
	case int64(len(body)) > b.limit():
		res.Status, res.Error = tollgate.JobFailed, "the upstream's answer is larger than the model's max_output"
	case resp.StatusCode >= 300:
		res.Status, res.Error = tollgate.JobFailed, fmt.Sprintf("the upstream answered %d", resp.StatusCode)
	default:
		measured, audio := measuringAudio(run)
		out, err := b.output(ctx, measured, resp.Header.Get("Content-Type"), body)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			res.Status, res.Error = tollgate.JobFailed, err.Error()
		} else {
			res.Status, res.Output, res.OutputAudioMillis = tollgate.JobSucceeded, out, audio.millis
		}
	}
	run.Report(tollgate.JobEvent{Progress: 1})
	return res, nil
}

// output turns an answer into the job's output.
func (b *HTTPBackend) output(ctx context.Context, run *tollgate.JobRun, contentType string, body []byte) (json.RawMessage, error) {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/json" || strings.HasSuffix(mt, "+json") {
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			return nil, fmt.Errorf("the upstream's JSON answer is not valid JSON")
		}
		copied := 0
		v, err := b.copyFiles(ctx, run, v, &copied)
		if err != nil {
			return nil, err
		}
		return json.Marshal(v)
	}
	if mt == "" {
		mt = http.DetectContentType(body)
	}
	ref, err := run.Results.Save(ctx, "output"+extensionFor(mt), mt, body)
	if err != nil {
		return nil, err
	}
	return json.Marshal(ref)
}

// copyFiles walks a JSON value and replaces each string that is a URL on
// the job's upstream by a reference to a copy in the result store. URLs
// elsewhere are left as they are (never fetched: no request goes where an
// upstream's answer points, except back to that upstream).
func (b *HTTPBackend) copyFiles(ctx context.Context, run *tollgate.JobRun, v any, copied *int) (any, error) {
	return walkJSON(v, func(v any) (any, bool, error) {
		x, ok := v.(string)
		if !ok {
			return nil, false, nil
		}
		u, ok := sameOrigin(run.Upstream, x)
		if !ok {
			return nil, false, nil
		}
		if *copied >= maxCopied {
			return nil, true, fmt.Errorf("the upstream's answer names more than %d files", maxCopied)
		}
		*copied++
		ref, err := b.copyFile(ctx, run, u, *copied)
		return ref, true, err
	})
}

// walkJSON rebuilds v, a decoded JSON value, in place: each value that
// replace takes (its ok) becomes what replace returns; the maps and lists
// of the others are walked.
func walkJSON(v any, replace func(any) (any, bool, error)) (any, error) {
	if nv, ok, err := replace(v); ok || err != nil {
		return nv, err
	}
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			nv, err := walkJSON(e, replace)
			if err != nil {
				return nil, err
			}
			x[k] = nv
		}
	case []any:
		for i, e := range x {
			nv, err := walkJSON(e, replace)
			if err != nil {
				return nil, err
			}
			x[i] = nv
		}
	}
	return v, nil
}

// sameOrigin parses s as a URL on the upstream's scheme and host.
func sameOrigin(upstream, s string) (*url.URL, bool) {
	if !strings.HasPrefix(s, "http://") && !strings.HasPrefix(s, "https://") {
		return nil, false
	}
	up, err1 := url.Parse(upstream)
	u, err2 := url.Parse(s)
	if err1 != nil || err2 != nil || u.Scheme != up.Scheme || u.Host != up.Host || u.User != nil {
		return nil, false
	}
	return u, true
}

func (b *HTTPBackend) copyFile(ctx context.Context, run *tollgate.JobRun, u *url.URL, n int) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", fmt.Errorf("a result file URL is invalid")
	}
	req.Header.Set("X-Request-ID", run.Job.ID)
	resp, err := b.client().Do(req)
	if err != nil {
		return "", fmt.Errorf("a result file could not be fetched from the upstream")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("the upstream answered %d for a result file", resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, b.limit()+1))
	if err != nil || int64(len(data)) > b.limit() {
		return "", fmt.Errorf("a result file broke off or is larger than the model's max_output")
	}
	ct := resp.Header.Get("Content-Type")
	if ct == "" {
		ct = http.DetectContentType(data)
	}
	name := path.Base(u.Path)
	if !validName(name) || path.Ext(name) == "" {
		name = fmt.Sprintf("output-%d%s", n, extensionFor(ct))
	}
	return run.Results.Save(ctx, name, ct, data)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
