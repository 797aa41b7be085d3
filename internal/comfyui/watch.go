package comfyui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// frame is one text message of ComfyUI's websocket.
type frame struct {
	Type string         `json:"type"`
	Data map[string]any `json:"data"`
}

// Watch follows the prompt on the websocket (progress, the running node)
// until its end, then reads its history entry: the outputs, copied into
// the result store, and the GPU time from execution_start to its end
// message. Without a websocket (or after it broke) it reads /history
// every poll interval; a prompt found in neither the queue nor the
// history fails. Watch also re-attaches a restarted gateway to a prompt
// by its handle.
func (b *Backend) Watch(ctx context.Context, run *tollgate.JobRun, handle string) (*tollgate.JobResult, error) {
	c := &client{http: b.client, base: strings.TrimSuffix(run.Upstream, "/"), user: ComfyUser(run.Job.Owner)}
	defer func() {
		if ctx.Err() != nil && !errors.Is(context.Cause(ctx), tollgate.ErrDetached) {
			b.abandon(ctx, run, handle)
		}
	}()
	conn := b.takeConn(run.Job.ID)
	if conn == nil {
		conn, _ = c.dial(ctx, ClientID(handle))
	}
	var frames chan frame
	if conn != nil {
		defer conn.CloseNow()
		frames = make(chan frame, 256)
		var tap func(websocket.MessageType, []byte)
		if b.tap != nil {
			tap = func(typ websocket.MessageType, data []byte) { b.tap(run, typ, data) }
		}
		go readFrames(ctx, conn, frames, tap)
	}
	// The prompt may have ended already (a re-attach after a restart).
	if res, err := b.fromHistory(ctx, c, run, handle); res != nil || err != nil {
		b.drain(ctx, frames, handle, false)
		return res, err
	}
	tick := time.NewTicker(b.poll)
	defer tick.Stop()
	progress := 0.0
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case f, ok := <-frames:
			if !ok {
				frames = nil // the websocket is down: /history from now on
				continue
			}
			if id, _ := f.Data["prompt_id"].(string); id != handle {
				continue
			}
			switch f.Type {
			case "progress":
				v, _ := f.Data["value"].(float64)
				m, _ := f.Data["max"].(float64)
				if m > 0 {
					progress = min(max(v/m, 0), 1)
					run.Report(tollgate.JobEvent{Progress: progress})
				}
			case "executing":
				if node, ok := f.Data["node"].(string); ok {
					run.Report(tollgate.JobEvent{Progress: progress, Log: fmt.Sprintf("node %s (%s) running", node, b.workflow.ClassOf(node))})
				}
			case "execution_success", "execution_error", "execution_interrupted":
				res, err := b.fromHistory(ctx, c, run, handle)
				if res != nil || err != nil {
					b.drain(ctx, frames, handle, true)
					return res, err
				}
				frames = nil // written before the message in ComfyUI; read it on the next tick
			}
		case <-tick.C:
			if frames != nil {
				continue
			}
			res, err := b.fromHistory(ctx, c, run, handle)
			if res != nil || err != nil {
				return res, err
			}
			running, pending, err := c.queue(ctx)
			if err == nil && !running[handle] && !pending[handle] {
				if res, err := b.fromHistory(ctx, c, run, handle); res != nil || err != nil {
					return res, err
				}
				return &tollgate.JobResult{Status: tollgate.JobFailed, Error: "ComfyUI dropped the prompt (its queue was cleared or it restarted)"}, nil
			}
		}
	}
}

// drain lets a route's tap see the rest of an ended prompt's messages
// (its end message, then executing {node: null}) before the socket
// closes, for at most two seconds.
func (b *Backend) drain(ctx context.Context, frames <-chan frame, handle string, sawEnd bool) {
	if !b.graph || frames == nil {
		return
	}
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			return
		case f, ok := <-frames:
			if !ok {
				return
			}
			if id, _ := f.Data["prompt_id"].(string); id != handle {
				continue
			}
			switch {
			case f.Type == "execution_success" || f.Type == "execution_error" || f.Type == "execution_interrupted":
				sawEnd = true
			case f.Type == "executing" && f.Data["node"] == nil && sawEnd:
				return
			}
		}
	}
}

var _ tollgate.Reattacher = (*Backend)(nil)

// Reattach follows a prompt that a stopped gateway submitted, by its
// handle, to its end: ComfyUI keeps it in its queue and history, so Watch
// finds it running, queued or ended. A prompt in neither (ComfyUI
// restarted too) failed without running here.
func (b *Backend) Reattach(ctx context.Context, run *tollgate.JobRun, handle string) (*tollgate.JobResult, error) {
	c := &client{http: b.client, base: strings.TrimSuffix(run.Upstream, "/"), user: ComfyUser(run.Job.Owner)}
	running, pending, err := c.queue(ctx)
	if err == nil && !running[handle] && !pending[handle] {
		if res, err := b.fromHistory(ctx, c, run, handle); res != nil || err != nil {
			return res, err // it ended meanwhile
		}
		return &tollgate.JobResult{Status: tollgate.JobFailed, Error: "ComfyUI no longer has the prompt (it restarted while the gateway was down)"}, nil
	}
	return b.Watch(ctx, run, handle)
}

// abandon stops a prompt whose job ended here (canceled, past its
// timeout, or the gateway stopping without detaching it, which fails the
// job): it leaves ComfyUI's queue or is interrupted, so no GPU time goes
// to it.
func (b *Backend) abandon(ctx context.Context, run *tollgate.JobRun, handle string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := b.Cancel(ctx, run, handle); err != nil {
		b.log.Warn("comfyui: could not stop an abandoned prompt", "prompt", handle, "err", err)
	}
}

func readFrames(ctx context.Context, conn *websocket.Conn, out chan<- frame, tap func(websocket.MessageType, []byte)) {
	defer close(out)
	for {
		typ, data, err := conn.Read(ctx)
		if err != nil {
			return
		}
		if tap != nil {
			tap(typ, data)
		}
		if typ != websocket.MessageText {
			continue // previews
		}
		var f frame
		if json.Unmarshal(data, &f) != nil {
			continue
		}
		select {
		case out <- f:
		case <-ctx.Done():
			return
		}
	}
}

// historyEntry is the part of /history/{id} a job's end needs.
type historyEntry struct {
	Outputs map[string]map[string]json.RawMessage `json:"outputs"`
	Status  struct {
		StatusStr string  `json:"status_str"`
		Completed bool    `json:"completed"`
		Messages  [][]any `json:"messages"`
	} `json:"status"`
}

// fileRef is one file a node's ui output names.
type fileRef struct {
	Filename  string `json:"filename"`
	Subfolder string `json:"subfolder"`
	Type      string `json:"type"`
}

// fromHistory returns the prompt's result when its history entry says it
// ended, or nil, nil while it has none.
func (b *Backend) fromHistory(ctx context.Context, c *client, run *tollgate.JobRun, handle string) (*tollgate.JobResult, error) {
	var h map[string]json.RawMessage
	if err := c.getJSON(ctx, "/history/"+url.PathEscape(handle), &h); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, nil // ComfyUI unreachable for now: the watch goes on
	}
	var e historyEntry
	if raw, ok := h[handle]; !ok || json.Unmarshal(raw, &e) != nil {
		return nil, nil
	}
	var start, end float64
	var endEvent string
	var endData map[string]any
	for _, m := range e.Status.Messages {
		if len(m) < 2 {
			continue
		}
		ev, _ := m[0].(string)
		data, _ := m[1].(map[string]any)
		ts, _ := data["timestamp"].(float64)
		switch ev {
		case "execution_start":
			start = ts
		case "execution_success", "execution_error", "execution_interrupted":
			end, endEvent, endData = ts, ev, data
		}
	}
	if endEvent == "" {
		return nil, nil
	}
	res := &tollgate.JobResult{PredictMillis: int64(max(end-start, 0))}
	if start == 0 {
		res.PredictMillis = 0
	}
	switch endEvent {
	case "execution_interrupted":
		res.Status = tollgate.JobCanceled
	case "execution_error":
		node, _ := endData["node_id"].(string)
		class, _ := endData["node_type"].(string)
		msg, _ := endData["exception_message"].(string)
		res.Status, res.Error = tollgate.JobFailed, fmt.Sprintf("node %s (%s): %s", node, class, strings.TrimSpace(msg))
	}
	switch {
	case b.graph:
		// A route's prompt: its history entry is its output, for the
		// route's /history; the files stay on ComfyUI for /view.
		res.Output = h[handle]
		if res.Status == "" {
			res.Status = tollgate.JobSucceeded
		}
	case res.Status == "":
		out, err := b.collect(ctx, c, run, e)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			res.Status, res.Error = tollgate.JobFailed, err.Error()
		} else {
			res.Status, res.Output = tollgate.JobSucceeded, out
		}
	}
	run.Report(tollgate.JobEvent{Progress: 1})
	return res, nil
}

// collect copies the output files the history names (type output, in
// node order) into the result store: one file is the output, several a
// list of them.
func (b *Backend) collect(ctx context.Context, c *client, run *tollgate.JobRun, e historyEntry) (json.RawMessage, error) {
	nodes := make([]string, 0, len(e.Outputs))
	for id := range e.Outputs {
		nodes = append(nodes, id)
	}
	sort.Strings(nodes)
	var refs []string
	for _, id := range nodes {
		keys := make([]string, 0, len(e.Outputs[id]))
		for k := range e.Outputs[id] {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			var files []fileRef
			if json.Unmarshal(e.Outputs[id][k], &files) != nil {
				continue
			}
			for _, f := range files {
				if f.Filename == "" || f.Type != "output" {
					continue
				}
				if len(refs) >= 64 {
					return nil, fmt.Errorf("the workflow wrote more than 64 output files")
				}
				ref, err := b.copyFile(ctx, c, run, f)
				if err != nil {
					return nil, err
				}
				refs = append(refs, ref)
			}
		}
	}
	switch len(refs) {
	case 0:
		return json.RawMessage("null"), nil
	case 1:
		return json.Marshal(refs[0])
	}
	return json.Marshal(refs)
}

func (b *Backend) copyFile(ctx context.Context, c *client, run *tollgate.JobRun, f fileRef) (string, error) {
	q := url.Values{"filename": {f.Filename}, "subfolder": {f.Subfolder}, "type": {f.Type}}
	resp, err := c.do(ctx, http.MethodGet, "/view?"+q.Encode(), "", nil)
	if err != nil {
		return "", fmt.Errorf("an output file could not be fetched from ComfyUI")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("ComfyUI answered %d for the output file %s", resp.StatusCode, f.Filename)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, b.maxOut+1))
	if err != nil || int64(len(data)) > b.maxOut {
		return "", fmt.Errorf("an output file broke off or is larger than the model's max_output")
	}
	ct := resp.Header.Get("Content-Type")
	if ct == "" || ct == "application/octet-stream" {
		ct = http.DetectContentType(data)
	}
	return run.Results.Save(ctx, path.Base(f.Filename), ct, data)
}
