package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/tollgate/tollgate/internal/config"
)

// gradioApp is what the gradio backend learned of one upstream's
// endpoint: its fn_index and parameters.
type gradioApp struct {
	fnIndex int
	params  []gradioParam
}

// gradioParam is one parameter of an endpoint in /gradio_api/info.
type gradioParam struct {
	Name       string          `json:"parameter_name"`
	Label      any             `json:"label"`
	HasDefault bool            `json:"parameter_has_default"`
	Default    json.RawMessage `json:"parameter_default"`
	Component  string          `json:"component"`
	Type       map[string]any  `json:"type"`
}

// isFile reports whether the parameter takes a FileData.
func (p gradioParam) isFile() bool {
	if slices.Contains([]string{"Audio", "Image", "Video", "File", "Model3D"}, p.Component) {
		return true
	}
	if title, _ := p.Type["title"].(string); title == "FileData" || title == "ImageData" {
		return true
	}
	props, _ := p.Type["properties"].(map[string]any)
	_, hasPath := props["path"]
	return hasPath
}

// configError is a mismatch between a job model's config and its app: the
// job fails with this message, which names the model.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

// app returns the endpoint's description on upstream, read from the app's
// /config and /gradio_api/info the first time and checked against the
// model's inputs. A mismatch is a *configError; it is not remembered, so
// a fixed app is picked up by the next job.
func (b *GradioBackend) app(ctx context.Context, upstream string) (*gradioApp, error) {
	b.mu.Lock()
	a := b.apps[upstream]
	b.mu.Unlock()
	if a != nil {
		return a, nil
	}
	var cfg struct {
		Dependencies []struct {
			ID      *int   `json:"id"`
			APIName any    `json:"api_name"`
			Backend bool   `json:"backend_fn"`
			Vis     string `json:"api_visibility"`
		} `json:"dependencies"`
	}
	if err := b.getJSON(ctx, upstream, "/config", &cfg); err != nil {
		return nil, err
	}
	var info struct {
		Named map[string]struct {
			Parameters []gradioParam `json:"parameters"`
		} `json:"named_endpoints"`
	}
	if err := b.getJSON(ctx, upstream, "/gradio_api/info", &info); err != nil {
		return nil, err
	}
	a = &gradioApp{fnIndex: -1}
	name := strings.TrimPrefix(b.APIName, "/")
	for i, d := range cfg.Dependencies {
		if d.APIName == name {
			a.fnIndex = i
			if d.ID != nil {
				a.fnIndex = *d.ID
			}
			break
		}
	}
	ep, ok := info.Named[b.APIName]
	if !ok || a.fnIndex < 0 {
		names := make([]string, 0, len(info.Named))
		for n := range info.Named {
			names = append(names, n)
		}
		slices.Sort(names)
		return nil, b.mismatch("the app at %s has no endpoint %s (it has %s)", upstream, b.APIName, strings.Join(names, ", "))
	}
	a.params = ep.Parameters
	if err := b.check(a); err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.apps[upstream] = a
	b.mu.Unlock()
	return a, nil
}

// check compares the model's inputs with the endpoint's parameters:
// every position exists and has a parameter of the input's kind, and
// every parameter without a default is bound to an input.
func (b *GradioBackend) check(a *gradioApp) error {
	var problems []string
	bound := map[int]bool{}
	names := make([]string, 0, len(b.Inputs))
	for n := range b.Inputs {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		in := b.Inputs[n]
		if in.Position == nil {
			continue
		}
		pos := *in.Position
		bound[pos] = true
		if pos >= len(a.params) {
			problems = append(problems, fmt.Sprintf("input %s has position %d, but %s takes %d inputs", n, pos, b.APIName, len(a.params)))
			continue
		}
		p := a.params[pos]
		typ, _ := p.Type["type"].(string)
		switch {
		case config.FileInput(in.Type) != p.isFile():
			problems = append(problems, fmt.Sprintf("input %s (%s) is at position %d, where %s takes %s %q", n, in.Type, pos, b.APIName, p.Component, p.Name))
		case in.Type == config.InputString && typ != "" && typ != "string",
			(in.Type == config.InputNumber || in.Type == config.InputInteger) && typ != "" && typ != "number" && typ != "integer",
			in.Type == config.InputBoolean && typ != "" && typ != "boolean":
			problems = append(problems, fmt.Sprintf("input %s (%s) is at position %d, where %s takes a %s (%s %q)", n, in.Type, pos, b.APIName, typ, p.Component, p.Name))
		}
	}
	for i, p := range a.params {
		if !bound[i] && !p.HasDefault {
			problems = append(problems, fmt.Sprintf("%s's input %d (%s %q) has no default and no input at its position", b.APIName, i, p.Component, p.Name))
		}
	}
	if len(problems) > 0 {
		return b.mismatch("%s", strings.Join(problems, "; "))
	}
	return nil
}

func (b *GradioBackend) mismatch(format string, args ...any) error {
	return &configError{msg: fmt.Sprintf("config error in job model %s: ", b.Model) + fmt.Sprintf(format, args...)}
}

// getJSON GETs a path of the app and decodes its JSON answer.
func (b *GradioBackend) getJSON(ctx context.Context, upstream, p string, v any) error {
	u, err := url.JoinPath(upstream, p)
	if err != nil {
		return fmt.Errorf("upstream url: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("upstream request: %w", err)
	}
	resp, err := b.client().Do(req)
	if err != nil {
		return fmt.Errorf("gradio %s: %w", p, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("gradio %s answered %d", p, resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(v); err != nil {
		return fmt.Errorf("gradio %s: %w", p, err)
	}
	return nil
}
