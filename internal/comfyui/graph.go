package comfyui

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/coder/websocket"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// GraphBackend runs the prompts of a comfyui route: each job's input is
// an API-format workflow a user queued from ComfyUI's UI or API. Before
// it is queued the workflow is checked against the node classes the
// route and the user's plan allow, and rewritten into the user's
// namespace: every save node's filename_prefix and every loader's file
// name point under the user's subfolder. The job's id is the prompt_id
// ComfyUI runs it under; its output is the prompt's history entry.
type GraphBackend struct {
	*Backend
	nodes config.NodeRules
	plans func(plan string) config.NodeRules
}

var (
	_ tollgate.Backend       = (*GraphBackend)(nil)
	_ tollgate.InputPreparer = (*GraphBackend)(nil)
)

// GraphOptions are what a route adds to a backend's Options.
type GraphOptions struct {
	Options
	// Nodes are the route's node rules.
	Nodes config.NodeRules
	// Plans returns a plan's node rules. Defaults to none.
	Plans func(plan string) config.NodeRules
	// Tap sees every websocket message (text or binary) of every prompt
	// the backend runs, as it arrives. Optional.
	Tap func(run *tollgate.JobRun, typ websocket.MessageType, data []byte)
}

// NewGraph returns the backend of a comfyui route's job model m.
func NewGraph(m *config.JobModel, o GraphOptions) (*GraphBackend, error) {
	b, err := newBackend(m, nil, o.Options)
	if err != nil {
		return nil, err
	}
	b.graph, b.tap = true, o.Tap
	g := &GraphBackend{Backend: b, nodes: o.Nodes, plans: o.Plans}
	if g.plans == nil {
		g.plans = func(string) config.NodeRules { return config.NodeRules{} }
	}
	return g, nil
}

// GraphInput is a route job's stored input: what POST /prompt carried,
// rewritten for its owner.
type GraphInput struct {
	Prompt   map[string]any `json:"prompt"`
	ClientID string         `json:"client_id,omitempty"`
	Extra    map[string]any `json:"extra_data,omitempty"`
	Partial  []any          `json:"partial_execution_targets,omitempty"`
}

// MaxClasses bounds the distinct node classes of one workflow.
const MaxClasses = 256

// sensitiveExtra are extra_data keys ComfyUI keeps out of its queue and
// history (comfy.org credentials); tollgate never stores them.
var sensitiveExtra = []string{"auth_token_comfy_org", "api_key_comfy_org"}

// RefusedNodes returns the nodes of prompt whose class p may not run, by
// node id.
func (g *GraphBackend) RefusedNodes(p *tollgate.Principal, prompt map[string]any) map[string]string {
	plan := g.plans(p.Plan)
	out := map[string]string{}
	for id, n := range prompt {
		node, _ := n.(map[string]any)
		class, _ := node["class_type"].(string)
		if class == "" {
			continue // ComfyUI refuses it
		}
		if !g.nodes.Allows(class) || !plan.Allows(class) {
			out[id] = class
		}
	}
	return out
}

// PrepareInput checks a /prompt body's node classes and rewrites its
// outputs and loaders into the owner's subfolder.
func (g *GraphBackend) PrepareInput(ctx context.Context, p *tollgate.Principal, jobID string, raw json.RawMessage) (json.RawMessage, error) {
	var in GraphInput
	if err := json.Unmarshal(raw, &in); err != nil || in.Prompt == nil {
		return nil, tollgate.Errorf(tollgate.EInvalid, "no prompt provided: want {\"prompt\": an API-format workflow}")
	}
	classes := map[string]bool{}
	for _, n := range in.Prompt {
		node, _ := n.(map[string]any)
		if class, _ := node["class_type"].(string); class != "" {
			classes[class] = true
		}
	}
	if len(classes) > MaxClasses {
		// Each class is looked up on ComfyUI.
		return nil, tollgate.Errorf(tollgate.EInvalid, "a workflow may use at most %d node classes, this one uses %d", MaxClasses, len(classes))
	}
	if refused := g.RefusedNodes(p, in.Prompt); len(refused) > 0 {
		ids := make([]string, 0, len(refused))
		for id := range refused {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		msgs := make([]string, len(ids))
		for i, id := range ids {
			msgs[i] = fmt.Sprintf("node %s (%s)", id, refused[id])
		}
		return nil, tollgate.Errorf(tollgate.EForbidden, "node class not allowed on this route: %s", strings.Join(msgs, ", "))
	}
	for _, k := range sensitiveExtra {
		delete(in.Extra, k)
	}
	delete(in.Extra, "client_id")
	folder := UserFolder(tollgate.Owner{TenantID: p.TenantID, UserID: p.UserID})
	ids := make([]string, 0, len(in.Prompt))
	for id := range in.Prompt {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		node, _ := in.Prompt[id].(map[string]any)
		class, _ := node["class_type"].(string)
		inputs, _ := node["inputs"].(map[string]any)
		fields := make([]string, 0, len(inputs))
		for field := range inputs {
			fields = append(fields, field)
		}
		sort.Strings(fields)
		for _, field := range fields {
			if field != "filename_prefix" && !g.loaderField(ctx, class, field) {
				switch v := inputs[field].(type) {
				case string:
					if foreignPath(folder, v) {
						return nil, tollgate.Errorf(tollgate.EForbidden, "node %s (%s): %s names a path outside your own files (%q); on this route files are named by an upload or a save prefix", id, class, field, v)
					}
				case []any:
					if pathName(field) || g.pathField(ctx, class, field) {
						return nil, tollgate.Errorf(tollgate.EForbidden, "node %s (%s): %s must be a literal string on this route, not a link", id, class, field)
					}
				}
				continue
			}
			// A path fed by another node's output would be known only
			// when the workflow runs, out of reach of the rewrite.
			s, ok := inputs[field].(string)
			if !ok {
				return nil, tollgate.Errorf(tollgate.EForbidden, "node %s (%s): %s must be a literal string on this route, not a link", id, class, field)
			}
			inputs[field] = OwnPath(folder, s)
		}
	}
	return json.Marshal(in)
}

// knownLoaders are the file fields of ComfyUI's own loaders: each reads
// its value as an annotated name (folder_paths.get_annotated_filepath),
// whether or not /object_info declares it an upload (LoadLatent's is a
// plain list of the input folder's .latent files).
var knownLoaders = map[string]string{"LoadImage": "image", "LoadImageMask": "image", "LoadImageOutput": "image",
	"WebcamCapture": "image", "LoadLatent": "latent", "LoadAudio": "audio", "LoadVideo": "file"}

// loaderField reports whether a node field names an uploaded file: its
// /object_info declaration is an upload combo (image_upload, …).
func (g *GraphBackend) loaderField(ctx context.Context, class, field string) bool {
	fields, err := g.fields(ctx, g.model.Upstreams[0], class)
	if err != nil {
		return knownLoaders[class] == field
	}
	f := fields[field]
	return f != nil && f.upload || knownLoaders[class] == field
}

// pathField reports whether /object_info hints that a node field is a
// path the node opens itself (VHS's vhs_path_extensions, a placeholder
// naming a path).
func (g *GraphBackend) pathField(ctx context.Context, class, field string) bool {
	fields, err := g.fields(ctx, g.model.Upstreams[0], class)
	return err == nil && fields[field] != nil && fields[field].path
}

// SplitAnnotation splits a file name as ComfyUI's
// folder_paths.annotated_filepath does: a name ending in "[output]",
// "[input]" or "[temp]" names a file of that directory, the suffix and
// the one character before it (the space of "x.png [output]") cut off.
// Any other name comes back whole, with typ "".
func SplitAnnotation(v string) (name, typ string) {
	for _, t := range []string{"output", "input", "temp"} {
		if strings.HasSuffix(v, "["+t+"]") {
			return v[:max(len(v)-len(t)-3, 0)], t
		}
	}
	return v, ""
}

// OwnPath puts a file name or save prefix under folder: cleaned of ".."
// and absolute parts, kept as it is when already there, a trailing
// " [input]" / " [output]" / " [temp]" annotation kept. The annotation
// is read as ComfyUI reads it, so everything ComfyUI joins to its
// directory is what was cleaned.
func OwnPath(folder, v string) string {
	name, typ := SplitAnnotation(v)
	clean := strings.TrimPrefix(path.Clean("/"+strings.ReplaceAll(name, `\`, "/")), "/")
	if clean == "" {
		clean = "ComfyUI"
	}
	if !strings.HasPrefix(clean, folder+"/") {
		clean = folder + "/" + clean
	}
	if typ != "" {
		clean += " [" + typ + "]"
	}
	return clean
}

// Submit queues a route job's prompt under its job id, with a client_id
// of tollgate's own, so its messages reach only the job's watcher (and,
// through the tap, its owner's sockets).
func (g *GraphBackend) Submit(ctx context.Context, run *tollgate.JobRun) (string, error) {
	var in GraphInput
	if err := json.Unmarshal(run.Job.Input, &in); err != nil {
		return "", fmt.Errorf("decode prompt: %w", err)
	}
	c := &client{http: g.client, base: strings.TrimSuffix(run.Upstream, "/"), user: ComfyUser(run.Job.Owner)}
	id := run.Job.ID
	conn, err := c.dial(ctx, ClientID(id))
	if err != nil {
		g.log.Warn("comfyui: websocket unavailable, reading /history instead", "upstream", run.Upstream, "err", err)
	}
	body := map[string]any{"prompt": in.Prompt, "prompt_id": id, "client_id": ClientID(id)}
	if in.Extra != nil {
		body["extra_data"] = in.Extra
	}
	if in.Partial != nil {
		body["partial_execution_targets"] = in.Partial
	}
	if err := c.postPrompt(ctx, body); err != nil {
		if conn != nil {
			_ = conn.CloseNow()
		}
		if ctx.Err() != nil {
			g.abandon(ctx, run, id)
		}
		if ne, ok := err.(*nodeErrors); ok {
			return "", tollgate.Errorf(tollgate.EInputInvalid, "%s", ne.summary())
		}
		return "", err
	}
	if conn != nil {
		g.mu.Lock()
		g.conns[run.Job.ID] = conn
		g.mu.Unlock()
	}
	return id, nil
}

// summary names each refused node and why.
func (e *nodeErrors) summary() string {
	var msgs []string
	for _, ne := range e.list() {
		msgs = append(msgs, fmt.Sprintf("node %s: %s", ne.node, ne.message))
	}
	if len(msgs) == 0 {
		return "ComfyUI refused the workflow: " + e.message
	}
	return strings.Join(msgs, "; ")
}

// Interrupt stops a route job's prompt on its ComfyUI when it runs there
// (by its prompt_id) and reports whether it did; a prompt still waiting
// in ComfyUI's own queue is left to the job's cancel.
func (g *GraphBackend) Interrupt(ctx context.Context, j *tollgate.Job) (bool, error) {
	c := &client{http: g.client, base: strings.TrimSuffix(j.Upstream, "/"), user: ComfyUser(j.Owner)}
	running, _, err := c.queue(ctx)
	if err != nil || !running[j.ID] {
		return false, err
	}
	return true, c.post(ctx, "/interrupt", map[string]any{"prompt_id": j.ID})
}
