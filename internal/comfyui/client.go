package comfyui

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// client makes one job's calls to one ComfyUI.
type client struct {
	http *http.Client
	base string // http://host:port, no trailing slash
	user string // Comfy-User
}

func (c *client) do(ctx context.Context, method, path, contentType string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("comfyui request: %w", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Comfy-User", c.user)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("comfyui %s %s: %w", method, path, err)
	}
	return resp, nil
}

// getJSON decodes a GET's JSON answer into v.
func (c *client) getJSON(ctx context.Context, path string, v any) error {
	resp, err := c.do(ctx, http.MethodGet, path, "", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("comfyui GET %s answered %d", path, resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(v); err != nil {
		return fmt.Errorf("comfyui GET %s: %w", path, err)
	}
	return nil
}

// post sends a JSON body and wants a 2xx answer.
func (c *client) post(ctx context.Context, path string, v any) error {
	b, _ := json.Marshal(v)
	resp, err := c.do(ctx, http.MethodPost, path, "application/json", bytes.NewReader(b))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 300 {
		return fmt.Errorf("comfyui POST %s answered %d", path, resp.StatusCode)
	}
	return nil
}

// upload stores a file in ComfyUI's input directory under folder and
// returns the name a loader node takes ("folder/name").
func (c *client) upload(ctx context.Context, folder, name string, data []byte) (string, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("image", name)
	if err != nil {
		return "", fmt.Errorf("upload form: %w", err)
	}
	_, _ = fw.Write(data)
	_ = mw.WriteField("subfolder", folder)
	_ = mw.WriteField("type", "input")
	_ = mw.WriteField("overwrite", "true")
	_ = mw.Close()
	resp, err := c.do(ctx, http.MethodPost, "/upload/image", mw.FormDataContentType(), &body)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("comfyui upload answered %d", resp.StatusCode)
	}
	var got struct{ Name, Subfolder string }
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&got); err != nil || got.Name == "" {
		return "", fmt.Errorf("comfyui upload: an answer without a name")
	}
	if got.Subfolder == "" {
		return got.Name, nil
	}
	return got.Subfolder + "/" + got.Name, nil
}

// dial opens the websocket of clientID.
func (c *client) dial(ctx context.Context, clientID string) (*websocket.Conn, error) {
	u := "ws" + strings.TrimPrefix(c.base, "http") + "/ws?clientId=" + url.QueryEscape(clientID)
	conn, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: http.Header{"Comfy-User": {c.user}}})
	if err != nil {
		return nil, fmt.Errorf("comfyui websocket: %w", err)
	}
	conn.SetReadLimit(32 << 20)
	// ComfyUI registers the socket after the handshake and then sends
	// "status": until that greeting, messages of the client's prompt
	// would go nowhere.
	greetCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, _, err := conn.Read(greetCtx); err != nil {
		_ = conn.CloseNow()
		return nil, fmt.Errorf("comfyui websocket greeting: %w", err)
	}
	return conn, nil
}

// nodeErrors is ComfyUI's refusal of a prompt.
type nodeErrors struct {
	message string
	nodes   map[string]nodeReport
}

// nodeReport is one node's entry in node_errors.
type nodeReport struct {
	Errors []struct {
		Message   string         `json:"message"`
		Details   string         `json:"details"`
		ExtraInfo map[string]any `json:"extra_info"`
	} `json:"errors"`
}

func (e *nodeErrors) Error() string { return "comfyui refused the prompt: " + e.message }

type nodeError struct{ node, field, message string }

// list flattens the errors, ordered by node.
func (e *nodeErrors) list() []nodeError {
	var out []nodeError
	for id, n := range e.nodes {
		for _, ne := range n.Errors {
			field, _ := ne.ExtraInfo["input_name"].(string)
			msg := ne.Message
			if ne.Details != "" && ne.Details != field {
				msg += " (" + ne.Details + ")"
			}
			out = append(out, nodeError{node: id, field: field, message: msg})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].node < out[j].node })
	return out
}

// queuePrompt posts the prompt under promptID for clientID.
func (c *client) queuePrompt(ctx context.Context, graph Workflow, promptID, clientID string) error {
	return c.postPrompt(ctx, map[string]any{"prompt": graph, "prompt_id": promptID, "client_id": clientID})
}

// postPrompt posts a /prompt body; a refusal is a *nodeErrors.
func (c *client) postPrompt(ctx context.Context, req map[string]any) error {
	b, _ := json.Marshal(req)
	resp, err := c.do(ctx, http.MethodPost, "/prompt", "application/json", bytes.NewReader(b))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	var refusal struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
		NodeErrors map[string]nodeReport `json:"node_errors"`
	}
	if resp.StatusCode == http.StatusBadRequest && json.Unmarshal(body, &refusal) == nil && refusal.Error.Message != "" {
		return &nodeErrors{message: refusal.Error.Message, nodes: refusal.NodeErrors}
	}
	return fmt.Errorf("comfyui POST /prompt answered %d", resp.StatusCode)
}

// queue returns the prompt ids running and pending.
func (c *client) queue(ctx context.Context) (running, pending map[string]bool, err error) {
	var q struct {
		Running [][]any `json:"queue_running"`
		Pending [][]any `json:"queue_pending"`
	}
	if err := c.getJSON(ctx, "/queue", &q); err != nil {
		return nil, nil, err
	}
	ids := func(items [][]any) map[string]bool {
		m := map[string]bool{}
		for _, it := range items {
			if len(it) > 1 {
				if id, ok := it[1].(string); ok {
					m[id] = true
				}
			}
		}
		return m
	}
	return ids(q.Running), ids(q.Pending), nil
}
