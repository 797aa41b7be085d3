package jobs

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// GradioBackend runs a job as one call of a Gradio app's endpoint,
// through its queue: file inputs are uploaded through /gradio_api/upload,
// the call joins /gradio_api/queue/join under a session_hash minted per
// job, and its event stream (/gradio_api/queue/data) gives progress, logs
// and the output, whose files are fetched from /gradio_api/file= into the
// result store. The endpoint's parameters are read from the app's
// /gradio_api/info when the model first runs a job on an upstream and
// checked against the inputs' positions: a mismatch fails the job with a
// config error naming the model.
type GradioBackend struct {
	// Model names the job model in config errors. Required.
	Model string
	// APIName is the endpoint, e.g. /generate_audio. Required.
	APIName string
	// Inputs are the model's inputs, each with its position. Required.
	Inputs map[string]config.JobInput
	// UpstreamCall reaches the app; its Clock measures a call when the
	// app reports no duration.
	UpstreamCall

	mu       sync.Mutex
	apps     map[string]*gradioApp // by upstream
	canceled map[string]bool       // handles whose cancel was sent
}

var _ tollgate.Backend = (*GradioBackend)(nil)

// NewGradioBackend returns the backend of a job model of backend gradio.
func NewGradioBackend(jc *config.JobModel) *GradioBackend {
	maxOut, _ := config.ParseSize(jc.MaxOutput)
	return &GradioBackend{Model: jc.Name, APIName: jc.APIName, Inputs: jc.Inputs, UpstreamCall: UpstreamCall{MaxOutput: maxOut}}
}

// gradioHandle is a job's call on the app: "session_hash fn_index event_id".
type gradioHandle struct {
	session string
	fn      int
	event   string
}

func (h gradioHandle) String() string { return h.session + " " + strconv.Itoa(h.fn) + " " + h.event }

func parseGradioHandle(s string) (gradioHandle, error) {
	f := strings.Fields(s)
	if len(f) != 3 {
		return gradioHandle{}, fmt.Errorf("gradio handle %q: want session, fn_index and event id", s)
	}
	fn, err := strconv.Atoi(f[1])
	if err != nil {
		return gradioHandle{}, fmt.Errorf("gradio handle %q: %w", s, err)
	}
	return gradioHandle{session: f[0], fn: fn, event: f[2]}, nil
}

// Submit checks the app, uploads the file inputs and joins the queue.
func (b *GradioBackend) Submit(ctx context.Context, run *tollgate.JobRun) (string, error) {
	b.mu.Lock()
	if b.apps == nil {
		b.apps = map[string]*gradioApp{}
	}
	b.mu.Unlock()
	app, err := b.app(ctx, run.Upstream)
	if err != nil {
		return "", tollgate.RefusedIfDial(err) // nothing was sent yet
	}
	var input map[string]any
	if err := json.Unmarshal(run.Job.Input, &input); err != nil {
		return "", fmt.Errorf("job input: %w", err)
	}
	data := make([]any, len(app.params))
	for i, p := range app.params {
		if p.HasDefault && len(p.Default) > 0 {
			data[i] = json.RawMessage(p.Default)
		}
	}
	for name, in := range b.Inputs {
		v, given := input[name]
		if !given || in.Position == nil {
			continue
		}
		if config.FileInput(in.Type) {
			fd, err := b.upload(ctx, run, name, v)
			if err != nil {
				return "", err
			}
			v = fd
		}
		data[*in.Position] = v
	}
	h := gradioHandle{session: strings.ToLower(rand.Text()[:16]), fn: app.fnIndex}
	body, err := json.Marshal(map[string]any{"data": data, "event_data": nil, "fn_index": app.fnIndex,
		"trigger_id": nil, "session_hash": h.session})
	if err != nil {
		return "", fmt.Errorf("encode queue/join: %w", err)
	}
	var joined struct {
		EventID string `json:"event_id"`
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	// Once sent, the join is seen through even when the job is stopped
	// meanwhile, so the call it queued can be canceled by its event id.
	jctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := b.post(jctx, run, "/gradio_api/queue/join", "application/json", body, &joined); err != nil {
		b.mu.Lock()
		delete(b.apps, run.Upstream) // the app may have changed: read it again next time
		b.mu.Unlock()
		return "", tollgate.RefusedIfDial(err) // a join that never connected queued nothing
	}
	if joined.EventID == "" {
		return "", fmt.Errorf("gradio queue/join gave no event_id")
	}
	h.event = joined.EventID
	if err := ctx.Err(); err != nil {
		_ = b.cancelCall(jctx, run, h)
		return "", err
	}
	return h.String(), nil
}

// upload sends one file input (a data: URI) to the app and returns its
// FileData.
func (b *GradioBackend) upload(ctx context.Context, run *tollgate.JobRun, name string, v any) (map[string]any, error) {
	s, _ := v.(string)
	meta, payload, ok := strings.Cut(strings.TrimPrefix(s, "data:"), ",")
	if !ok || !strings.HasPrefix(s, "data:") {
		return nil, fmt.Errorf("file input %s is not a data: URI", name)
	}
	content, err := base64.StdEncoding.DecodeString(payload)
	if err != nil {
		return nil, fmt.Errorf("file input %s: %w", name, err)
	}
	ct := strings.TrimSuffix(meta, ";base64")
	fname := name + uploadExtension(ct, content)
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, err := mw.CreateFormFile("files", fname)
	if err != nil {
		return nil, fmt.Errorf("upload form: %w", err)
	}
	fw.Write(content)
	if err := mw.Close(); err != nil {
		return nil, fmt.Errorf("upload form: %w", err)
	}
	var paths []string
	if err := b.post(ctx, run, "/gradio_api/upload", mw.FormDataContentType(), buf.Bytes(), &paths); err != nil {
		return nil, err
	}
	if len(paths) != 1 {
		return nil, fmt.Errorf("gradio upload gave %d paths for one file", len(paths))
	}
	return map[string]any{"path": paths[0], "orig_name": fname, "size": len(content), "mime_type": ct,
		"meta": map[string]any{"_type": "gradio.FileData"}}, nil
}

// uploadExtension names an upload's kind for the app, which often decodes
// media by the file's extension: the declared type's, else the sniffed
// content's.
func uploadExtension(contentType string, content []byte) string {
	for _, ct := range []string{contentType, http.DetectContentType(content)} {
		mt, _, _ := strings.Cut(ct, ";")
		switch mt {
		case "audio/wave", "audio/vnd.wave":
			return ".wav"
		case "application/ogg", "audio/ogg":
			return ".ogg"
		case "audio/flac", "audio/x-flac":
			return ".flac"
		case "application/octet-stream", "":
			continue
		}
		if ext := extensionFor(mt); ext != ".bin" && ext != "" {
			return ext
		}
	}
	return ".bin"
}

// post POSTs to the app and decodes its JSON answer into v.
func (b *GradioBackend) post(ctx context.Context, run *tollgate.JobRun, p, contentType string, body []byte, v any) error {
	u, err := url.JoinPath(run.Upstream, p)
	if err != nil {
		return fmt.Errorf("upstream url: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("upstream request: %w", err)
	}
	req.Header.Set("Content-Type", contentType)
	b.identify(req, run)
	resp, err := b.client().Do(req)
	if err != nil {
		return fmt.Errorf("gradio %s: %w", p, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("gradio %s answered %d: %s", p, resp.StatusCode, bytes.TrimSpace(msg))
	}
	if v == nil {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v); err != nil {
		return fmt.Errorf("gradio %s: %w", p, err)
	}
	return nil
}

// Cancel asks the app to cancel the job's call.
func (b *GradioBackend) Cancel(ctx context.Context, run *tollgate.JobRun, handle string) error {
	if handle == "" {
		return nil // not joined yet: ending Watch's context is enough
	}
	h, err := parseGradioHandle(handle)
	if err != nil {
		return err
	}
	b.mu.Lock()
	if b.canceled == nil {
		b.canceled = map[string]bool{}
	}
	b.canceled[handle] = true
	b.mu.Unlock()
	return b.cancelCall(ctx, run, h)
}

func (b *GradioBackend) cancelCall(ctx context.Context, run *tollgate.JobRun, h gradioHandle) error {
	body, _ := json.Marshal(map[string]any{"session_hash": h.session, "fn_index": h.fn, "event_id": h.event})
	return b.post(ctx, run, "/gradio_api/cancel", "application/json", body, nil)
}

// gradioMessage is one message of the queue/data stream.
type gradioMessage struct {
	Msg          string          `json:"msg"`
	EventID      string          `json:"event_id"`
	Success      bool            `json:"success"`
	Output       json.RawMessage `json:"output"`
	Log          string          `json:"log"`
	Level        string          `json:"level"`
	Message      string          `json:"message"`
	ProgressData []struct {
		Index    *float64 `json:"index"`
		Length   *float64 `json:"length"`
		Progress *float64 `json:"progress"`
		Desc     string   `json:"desc"`
	} `json:"progress_data"`
}

// Watch reads the session's event stream until the call completed.
func (b *GradioBackend) Watch(ctx context.Context, run *tollgate.JobRun, handle string) (*tollgate.JobResult, error) {
	h, err := parseGradioHandle(handle)
	if err != nil {
		return nil, err
	}
	ended := false
	defer func() {
		// A job stopped by its owner, its timeout or the gateway stops
		// upstream too (also when Cancel came before the handle was known).
		if !ended && ctx.Err() != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			_ = b.cancelCall(cctx, run, h)
		}
	}()
	u, err := url.JoinPath(run.Upstream, "/gradio_api/queue/data")
	if err != nil {
		return nil, fmt.Errorf("upstream url: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u+"?session_hash="+url.QueryEscape(h.session), nil)
	if err != nil {
		return nil, fmt.Errorf("upstream request: %w", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	b.identify(req, run)
	resp, err := b.client().Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return &tollgate.JobResult{Status: tollgate.JobFailed, Error: "the app could not be reached"}, nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &tollgate.JobResult{Status: tollgate.JobFailed, Error: fmt.Sprintf("the app's event stream answered %d", resp.StatusCode)}, nil
	}
	defer func() {
		b.mu.Lock()
		delete(b.canceled, handle)
		b.mu.Unlock()
	}()
	var started time.Time
	var logs strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data:")
		if !ok {
			continue
		}
		var m gradioMessage
		if json.Unmarshal([]byte(strings.TrimSpace(line)), &m) != nil || (m.EventID != "" && m.EventID != h.event) {
			continue
		}
		switch m.Msg {
		case "process_starts":
			started = b.now()
			run.Report(tollgate.JobEvent{Progress: 0})
		case "progress":
			if len(m.ProgressData) > 0 {
				run.Report(tollgate.JobEvent{Progress: progressShare(m.ProgressData[0].Progress, m.ProgressData[0].Index, m.ProgressData[0].Length)})
			}
		case "log":
			line := m.Log
			if m.Level != "" && m.Level != "info" {
				line = m.Level + ": " + line
			}
			logs.WriteString(line + "\n")
			run.Report(tollgate.JobEvent{Progress: -1, Log: line})
		case "unexpected_error":
			return &tollgate.JobResult{Status: tollgate.JobFailed, Error: "the app failed: " + cmpOr(m.Message, "unexpected error")}, nil
		case "close_stream":
			return &tollgate.JobResult{Status: tollgate.JobFailed, Error: "the app closed its event stream before the call completed"}, nil
		case "process_completed":
			b.mu.Lock()
			canceled := b.canceled[handle]
			b.mu.Unlock()
			if canceled { // the runner ends ctx once the cancel was sent
				ended = true
				<-ctx.Done()
				return nil, ctx.Err()
			}
			ended = true
			res, err := b.completed(ctx, run, m, started)
			if res != nil {
				res.Logs = logs.String()
			}
			return res, err
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return &tollgate.JobResult{Status: tollgate.JobFailed, Error: "the app's event stream broke off"}, nil
}

// progressShare turns a progress_data entry into 0..1 (negative when
// unknown).
func progressShare(progress, index, length *float64) float64 {
	switch {
	case progress != nil:
		return min(1, max(0, *progress))
	case index != nil && length != nil && *length > 0:
		return min(1, max(0, *index / *length))
	}
	return -1
}

// completed turns process_completed into the job's result: GPU time is
// the app's own duration of the call (from process_starts to
// process_completed), else what the gateway measured between the two;
// output audio is the audio in the output files copied.
func (b *GradioBackend) completed(ctx context.Context, run *tollgate.JobRun, m gradioMessage, started time.Time) (*tollgate.JobResult, error) {
	var out struct {
		Data     []any    `json:"data"`
		Duration *float64 `json:"duration"`
		Error    *string  `json:"error"`
	}
	_ = json.Unmarshal(m.Output, &out)
	res := &tollgate.JobResult{}
	switch {
	case out.Duration != nil && *out.Duration >= 0:
		res.PredictMillis = int64(*out.Duration*1000 + 0.5)
	case !started.IsZero():
		res.PredictMillis = b.now().Sub(started).Milliseconds()
	}
	if ctx.Err() != nil { // canceled: the app confirmed it
		return nil, ctx.Err()
	}
	if !m.Success {
		res.Status, res.Error = tollgate.JobFailed, "the app reported an error"
		if out.Error != nil && *out.Error != "" {
			res.Error = "the app reported an error: " + *out.Error
		}
		return res, nil
	}
	if out.Data == nil {
		res.Status, res.Error = tollgate.JobFailed, "the app completed the call without output (canceled upstream)"
		return res, nil
	}
	copied := 0
	run, audio := measuringAudio(run)
	for i, v := range out.Data {
		nv, err := b.copyFiles(ctx, run, v, &copied)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			res.Status, res.Error = tollgate.JobFailed, err.Error()
			return res, nil
		}
		out.Data[i] = nv
	}
	var value any = out.Data
	if len(out.Data) == 1 {
		value = out.Data[0]
	}
	raw, err := json.Marshal(value)
	if err != nil {
		return nil, fmt.Errorf("encode output: %w", err)
	}
	run.Report(tollgate.JobEvent{Progress: 1})
	res.Status, res.Output, res.OutputAudioMillis = tollgate.JobSucceeded, raw, audio.millis
	return res, nil
}

// copyFiles replaces each FileData in an output value by a reference to a
// copy in the result store, fetched by its path from the app's own
// /gradio_api/file= (never from the url the app names).
func (b *GradioBackend) copyFiles(ctx context.Context, run *tollgate.JobRun, v any, copied *int) (any, error) {
	return walkJSON(v, func(v any) (any, bool, error) {
		x, ok := v.(map[string]any)
		if !ok {
			return nil, false, nil
		}
		p, ok := x["path"].(string)
		if !ok || !isFileData(x) {
			return nil, false, nil
		}
		if *copied >= maxCopied {
			return nil, true, fmt.Errorf("the app's answer names more than %d files", maxCopied)
		}
		*copied++
		orig, _ := x["orig_name"].(string)
		ref, err := b.copyFile(ctx, run, p, orig, *copied)
		return ref, true, err
	})
}

func isFileData(m map[string]any) bool {
	meta, _ := m["meta"].(map[string]any)
	if t, _ := meta["_type"].(string); t == "gradio.FileData" {
		return true
	}
	_, hasURL := m["url"]
	return hasURL
}

func (b *GradioBackend) copyFile(ctx context.Context, run *tollgate.JobRun, p, orig string, n int) (string, error) {
	base, err := url.Parse(run.Upstream)
	if err != nil {
		return "", fmt.Errorf("upstream url: %w", err)
	}
	u := base.JoinPath("gradio_api", "file="+p)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", fmt.Errorf("an output file's path is invalid")
	}
	b.identify(req, run)
	resp, err := b.client().Do(req)
	if err != nil {
		return "", fmt.Errorf("an output file could not be fetched from the app")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("the app answered %d for an output file", resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, b.limit()+1))
	if err != nil || int64(len(data)) > b.limit() {
		return "", fmt.Errorf("an output file broke off or is larger than the model's max_output")
	}
	ct := resp.Header.Get("Content-Type")
	if ct == "" || ct == "application/octet-stream" {
		ct = http.DetectContentType(data)
	}
	name := cmpOr(orig, path.Base(p))
	if !validName(name) || path.Ext(name) == "" {
		name = fmt.Sprintf("output-%d%s", n, extensionFor(ct))
	}
	return run.Results.Save(ctx, name, ct, data)
}
