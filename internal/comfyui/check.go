package comfyui

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/tollgate"
)

var _ tollgate.InputChecker = (*Backend)(nil)

// fieldSpec is one node input as /object_info declares it.
type fieldSpec struct {
	options  []string // a combo's choices
	min, max *float64
	upload   bool // a loader's file name (image_upload, audio_upload, …)
	path     bool // a path the node opens itself, by its hints (vhs_path_extensions, a placeholder naming a path)
}

// CheckInput checks every bound value input against the node definitions
// ComfyUI publishes at /object_info/{class} (bounds and combo choices),
// so a value ComfyUI would refuse with node_errors is refused before the
// job is queued, naming the input. Definitions are read once per class
// and upstream. An upstream that cannot be asked is no refusal: the
// error is not EInputInvalid, and ComfyUI's own validation decides.
func (b *Backend) CheckInput(ctx context.Context, upstream string, input map[string]any) error {
	var problems []string
	for name, v := range input {
		in, ok := b.model.Inputs[name]
		if !ok || config.FileInput(in.Type) {
			continue
		}
		class := b.workflow.ClassOf(in.Node)
		spec, err := b.spec(ctx, upstream, class, in.Field)
		if err != nil {
			return err
		}
		if spec == nil {
			continue
		}
		if len(spec.options) > 0 {
			if s, _ := v.(string); !slices.Contains(spec.options, s) {
				problems = append(problems, fmt.Sprintf("input.%s: %s takes one of %s", name, class, strings.Join(spec.options, ", ")))
			}
			continue
		}
		f, isNum := v.(float64)
		switch {
		case isNum && spec.min != nil && f < *spec.min:
			problems = append(problems, fmt.Sprintf("input.%s: %s takes %s of at least %v", name, class, in.Field, *spec.min))
		case isNum && spec.max != nil && f > *spec.max:
			problems = append(problems, fmt.Sprintf("input.%s: %s takes %s of at most %v", name, class, in.Field, *spec.max))
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return tollgate.Errorf(tollgate.EInputInvalid, "%s", strings.Join(problems, "; "))
	}
	return nil
}

// spec returns a node field's declaration, nil when ComfyUI declares
// none (a custom node may take undeclared fields).
func (b *Backend) spec(ctx context.Context, upstream, class, field string) (*fieldSpec, error) {
	fields, err := b.fields(ctx, upstream, class)
	if err != nil {
		return nil, err
	}
	return fields[field], nil
}

// fields returns the input declarations of a node class, read once per
// class and upstream.
func (b *Backend) fields(ctx context.Context, upstream, class string) (map[string]*fieldSpec, error) {
	key := upstream + "\x00" + class
	b.mu.Lock()
	fields, ok := b.specs[key]
	b.mu.Unlock()
	if !ok {
		c := &client{http: b.client, base: strings.TrimSuffix(upstream, "/")}
		var info map[string]struct {
			Input map[string]map[string][]json.RawMessage `json:"input"`
		}
		if err := c.getJSON(ctx, "/object_info/"+url.PathEscape(class), &info); err != nil {
			return nil, err
		}
		fields = map[string]*fieldSpec{}
		for _, group := range info[class].Input {
			for name, decl := range group {
				fields[name] = parseSpec(decl)
			}
		}
		if _, known := info[class]; known { // a class ComfyUI lacks is not kept: any name can be asked
			b.mu.Lock()
			b.specs[key] = fields
			b.mu.Unlock()
		}
	}
	return fields, nil
}

// parseSpec reads ("INT", {min, max}) or ([choices], {...}) or ("COMBO",
// {options}).
func parseSpec(decl []json.RawMessage) *fieldSpec {
	s := &fieldSpec{}
	if len(decl) == 0 {
		return s
	}
	var opts struct {
		Min     *float64 `json:"min"`
		Max     *float64 `json:"max"`
		Options []string `json:"options"`
	}
	if len(decl) > 1 {
		_ = json.Unmarshal(decl[1], &opts)
		var flags map[string]any
		_ = json.Unmarshal(decl[1], &flags)
		for k, v := range flags {
			if on, _ := v.(bool); on && strings.HasSuffix(k, "_upload") {
				s.upload = true
			}
			if kind, _ := v.(string); k == "upload" && kind != "" {
				s.upload = true
			}
			if hint, _ := v.(string); strings.Contains(k, "path") || k == "placeholder" && strings.Contains(strings.ToLower(hint), "path") {
				s.path = true
			}
		}
	}
	s.min, s.max = opts.Min, opts.Max
	var choices []string
	if json.Unmarshal(decl[0], &choices) == nil {
		s.options = choices
	} else if len(opts.Options) > 0 {
		s.options = opts.Options
	}
	return s
}
