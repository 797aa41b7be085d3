package comfyui

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// Backend runs a job model's jobs as prompts of its workflow. tollgate
// mints each prompt's prompt_id (the job's handle) and client_id, so the
// websocket messages it reads are its own prompt's only.
type Backend struct {
	model    *config.JobModel
	workflow Workflow
	client   *http.Client
	maxOut   int64
	poll     time.Duration
	log      *slog.Logger

	// graph: the jobs are a comfyui route's raw workflows; their output
	// is the prompt's history entry, not copied files. tap, when set,
	// sees every websocket message of the job's prompt.
	graph bool
	tap   func(run *tollgate.JobRun, typ websocket.MessageType, data []byte)

	mu    sync.Mutex
	conns map[string]*websocket.Conn       // dialed at Submit, taken by Watch, by job id
	specs map[string]map[string]*fieldSpec // node fields by upstream and class
}

var _ tollgate.Backend = (*Backend)(nil)

// Options are a Backend's collaborators.
type Options struct {
	// Client makes the HTTP calls. Defaults to a client without a timeout
	// (the runner's context bounds each job).
	Client *http.Client
	// Poll is how often /history is read while the websocket is down.
	// Defaults to 1s.
	Poll time.Duration
	// Logger. Defaults to slog.Default().
	Logger *slog.Logger
}

// New loads m's workflow and returns its backend.
func New(m *config.JobModel, o Options) (*Backend, error) {
	w, err := LoadWorkflow(m)
	if err != nil {
		return nil, err
	}
	return newBackend(m, w, o)
}

func newBackend(m *config.JobModel, w Workflow, o Options) (*Backend, error) {
	maxOut, err := config.ParseSize(m.MaxOutput)
	if err != nil {
		return nil, fmt.Errorf("max_output: %w", err)
	}
	b := &Backend{model: m, workflow: w, client: o.Client, maxOut: maxOut, poll: o.Poll, log: o.Logger,
		conns: map[string]*websocket.Conn{}, specs: map[string]map[string]*fieldSpec{}}
	if b.client == nil {
		b.client = http.DefaultClient
	}
	if b.poll <= 0 {
		b.poll = time.Second
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	return b, nil
}

// NewUUID returns a random version 4 UUID, ComfyUI's shape of prompt ids.
func NewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// ClientID is the websocket client id of a prompt tollgate queued: one
// per prompt, so no other prompt's messages ever reach it, and derived
// from the prompt id, so a restarted gateway finds it again.
func ClientID(promptID string) string { return "tollgate-" + promptID }

// Submit binds the job's input into the workflow (uploading files into
// the owner's subfolder), connects to the websocket and queues the
// prompt. ComfyUI's node_errors become an EInputInvalid error naming the
// input (or the node, when no input is bound to it).
func (b *Backend) Submit(ctx context.Context, run *tollgate.JobRun) (string, error) {
	var input map[string]any
	if err := json.Unmarshal(run.Job.Input, &input); err != nil {
		return "", fmt.Errorf("decode job input: %w", err)
	}
	c := &client{http: b.client, base: strings.TrimSuffix(run.Upstream, "/"), user: ComfyUser(run.Job.Owner)}
	graph := b.workflow.clone()
	folder := UserFolder(run.Job.Owner)
	names := make([]string, 0, len(input))
	for name := range input {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		in, ok := b.model.Inputs[name]
		if !ok {
			continue
		}
		inputs, _ := graph.node(in.Node)
		v := input[name]
		if config.FileInput(in.Type) {
			s, _ := v.(string)
			data, ct, err := decodeDataURI(s)
			if err != nil {
				return "", tollgate.Errorf(tollgate.EInputInvalid, "input.%s: %v", name, err)
			}
			uploaded, err := c.upload(ctx, folder, run.Job.ID+"-"+name+extension(ct), data)
			if err != nil {
				return "", tollgate.RefusedIfDial(err) // an upload runs nothing
			}
			v = uploaded
		}
		inputs[in.Field] = v
	}
	graph.PrefixOutputs(folder)
	promptID := NewUUID()
	conn, err := c.dial(ctx, ClientID(promptID))
	if err != nil {
		b.log.Warn("comfyui: websocket unavailable, reading /history instead", "upstream", run.Upstream, "err", err)
	}
	if err := c.queuePrompt(ctx, graph, promptID, ClientID(promptID)); err != nil {
		if conn != nil {
			_ = conn.CloseNow()
		}
		if ctx.Err() != nil { // ComfyUI may have queued it before the call broke off
			b.abandon(ctx, run, promptID)
			return "", b.explain(err)
		}
		return "", tollgate.RefusedIfDial(b.explain(err)) // a POST that never connected queued nothing
	}
	if conn != nil {
		b.mu.Lock()
		b.conns[run.Job.ID] = conn
		b.mu.Unlock()
	}
	return promptID, nil
}

// ComfyUser is the Comfy-User header of a user's requests: under
// --multi-user ComfyUI keeps each user's settings and workflows apart.
func ComfyUser(o tollgate.Owner) string {
	return strings.TrimPrefix(UserFolder(o), "tollgate/")
}

// explain turns ComfyUI's refusal of a prompt into a message naming the
// model's input bound to the failing node field, or the node.
func (b *Backend) explain(err error) error {
	ne, ok := err.(*nodeErrors)
	if !ok {
		return err
	}
	var msgs []string
	for _, e := range ne.list() {
		name := ""
		for n, in := range b.model.Inputs {
			if in.Node == e.node && (in.Field == e.field || e.field == "") {
				name = n
				break
			}
		}
		if name != "" {
			msgs = append(msgs, fmt.Sprintf("input.%s: %s", name, e.message))
		} else {
			msgs = append(msgs, fmt.Sprintf("node %s (%s): %s", e.node, b.workflow.ClassOf(e.node), e.message))
		}
	}
	if len(msgs) == 0 {
		msgs = append(msgs, "ComfyUI refused the workflow: "+ne.message)
	}
	sort.Strings(msgs)
	return tollgate.Errorf(tollgate.EInputInvalid, "%s", strings.Join(msgs, "; "))
}

// Cancel removes the prompt from ComfyUI's queue when it waits there, or
// interrupts it by its prompt_id when it runs; never another prompt.
func (b *Backend) Cancel(ctx context.Context, run *tollgate.JobRun, handle string) error {
	if handle == "" {
		return nil
	}
	c := &client{http: b.client, base: strings.TrimSuffix(run.Upstream, "/"), user: ComfyUser(run.Job.Owner)}
	running, pending, err := c.queue(ctx)
	if err != nil {
		return err
	}
	switch {
	case pending[handle]:
		return c.post(ctx, "/queue", map[string]any{"delete": []string{handle}})
	case running[handle]:
		return c.post(ctx, "/interrupt", map[string]any{"prompt_id": handle})
	}
	return nil
}

// takeConn returns the websocket Submit opened for the job, or nil.
func (b *Backend) takeConn(jobID string) *websocket.Conn {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.conns[jobID]
	delete(b.conns, jobID)
	return c
}
