package config

import (
	"cmp"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Job backends.
const (
	BackendHTTP    = "http"
	BackendComfyUI = "comfyui"
	BackendGradio  = "gradio"
)

// Job input types.
const (
	InputString  = "string"
	InputInteger = "integer"
	InputNumber  = "number"
	InputBoolean = "boolean"
	// File inputs: a data: URI whose sniffed content must be of the kind
	// (any content for file).
	InputImage = "image"
	InputAudio = "audio"
	InputVideo = "video"
	InputFile  = "file"
)

// FileInput reports whether an input type carries a file.
func FileInput(typ string) bool {
	return typ == InputImage || typ == InputAudio || typ == InputVideo || typ == InputFile
}

// JobModel is one job model of the predictions API (a `jobs:` entry):
// POST /v1/models/{owner}/{name}/predictions runs it.
type JobModel struct {
	// Name is "owner/name", the model of the predictions API and the route
	// and model of its usage records. Required, unique.
	Name string `yaml:"name"`
	// Backend is how jobs run upstream: http (a slow endpoint called with
	// the input as JSON), comfyui (a ComfyUI workflow) or gradio (an
	// endpoint of a Gradio app, called through its queue). Required.
	Backend string `yaml:"backend"`
	// Upstreams are the base URLs jobs run on; they share the model's
	// queue, each taking the next job when one of its slots frees.
	// Required.
	Upstreams []string `yaml:"upstreams"`
	// Capacity is how many jobs one upstream runs at once, counted over
	// every model and replica that uses it (one GPU is 1). Defaults to 1.
	Capacity int `yaml:"capacity"`
	// Path is what the http backend POSTs the input to on the upstream.
	// Defaults to /.
	Path string `yaml:"path"`
	// Workflow is the comfyui backend's API-format workflow file, relative
	// to the config file or absolute; inputs are bound to its nodes'
	// fields. Required for comfyui, refused for other backends.
	Workflow string `yaml:"workflow"`
	// APIName is the Gradio endpoint the gradio backend calls, e.g.
	// /generate_audio. Required for backend gradio.
	APIName string `yaml:"api_name"`
	// Inputs declare the input fields; an input field not declared here is
	// refused. Defaults to none (every input refused).
	Inputs map[string]JobInput `yaml:"inputs"`
	// Rules are CEL expressions over claims and input that must all hold,
	// e.g. 'claims.plan == "pro" || input.size <= 680'. Defaults to none.
	Rules []Rule `yaml:"rules"`
	// Scopes the caller must hold, all of them. Defaults to [jobs].
	Scopes []string `yaml:"scopes"`
	// RateLimit is "N/s", "N/m" or "N/h" per user on this model's creates,
	// on top of the plan's rate_limit and tenant_rate_limit, which count
	// creates like proxied calls. Defaults to unlimited.
	RateLimit string `yaml:"rate_limit"`
	// Timeout bounds a job's run upstream; it is also the GPU time its
	// reservation holds. Defaults to 10m.
	Timeout time.Duration `yaml:"timeout"`
	// Retries is how many more times a job is sent to an upstream after
	// the upstream refused its connection before anything ran; a job
	// where anything might have run is never retried. Defaults to 0.
	Retries int `yaml:"retries"`
	// Retention is how long results are kept. Defaults to 24h.
	Retention time.Duration `yaml:"retention"`
	// LinkTTL is how long a signed output link works, never past the
	// retention. Defaults to 1h.
	LinkTTL time.Duration `yaml:"link_ttl"`
	// MaxOutput is the largest output or result file taken from the
	// upstream, e.g. "512MiB". Defaults to 256MiB.
	MaxOutput string `yaml:"max_output"`
	// Price of a job: per_request, per_gpu_second (GPU seconds are the
	// upstream's run time) and per_output_audio_second (the audio in the
	// job's output files; gradio and http backends). Defaults to free.
	Price Price `yaml:"price"`
	// MaxOutputAudio bounds the output audio one job is charged for
	// (per_output_audio_second); its reservation holds this much. Longer
	// audio is delivered but charged as this much. Defaults to the
	// timeout.
	MaxOutputAudio time.Duration `yaml:"max_output_audio"`
	// Graph marks the job model of a comfyui route: its input is a whole
	// API-format workflow, not declared inputs.
	Graph bool `yaml:"-"`
}

// JobInput declares one input field of a job model.
type JobInput struct {
	// Type is string, integer, number, boolean, or a file: image, audio,
	// video or file, given as a data: URI. Required.
	Type string `yaml:"type"`
	// Required inputs must be given. Defaults to false.
	Required bool `yaml:"required"`
	// Default is used when the input is not given. Defaults to none (the
	// field is left out).
	Default any `yaml:"default"`
	// Min and Max bound a number or integer, or a string's length.
	// Defaults to unbounded.
	Min *float64 `yaml:"min"`
	Max *float64 `yaml:"max"`
	// Choices, when set, are the only values allowed. Defaults to any.
	Choices []any `yaml:"choices"`
	// PlanMax lowers a number or integer to the plan's bound instead of
	// refusing it, e.g. {free: 680}: a free user asking for 1000 gets
	// 680, and the prediction's input shows 680. Defaults to none.
	PlanMax map[string]float64 `yaml:"plan_max"`
	// MaxSize bounds a file input's decoded size, e.g. "4MiB". Defaults
	// to 10MiB for file inputs.
	MaxSize string `yaml:"max_size"`
	// Node and Field bind the input to a comfyui workflow's node (its id
	// in the API-format file) and that node's input field; a file input
	// is uploaded to ComfyUI and its name set there. Required for comfyui
	// models, refused for others.
	Node  string `yaml:"node"`
	Field string `yaml:"field"`
	// Position is the index of the input in the data of a gradio
	// backend's endpoint (its parameters in /gradio_api/info). Required
	// for backend gradio, unique within the model; refused otherwise.
	Position *int `yaml:"position"`
}

var jobName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}/[a-z0-9][a-z0-9_.-]{0,63}$`)
var inputName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// setJobDefaults fills the documented defaults of every job model.
func (c *Config) setJobDefaults() {
	for i := range c.Jobs {
		c.Jobs[i].SetDefaults()
	}
}

// SetDefaults fills the job model's unset fields with their documented
// defaults.
func (j *JobModel) SetDefaults() {
	j.Capacity = cmp.Or(j.Capacity, 1)
	j.Path = cmp.Or(j.Path, "/")
	if j.Scopes == nil {
		j.Scopes = []string{"jobs"}
	}
	j.Timeout = cmp.Or(j.Timeout, 10*time.Minute)
	j.Retention = cmp.Or(j.Retention, 24*time.Hour)
	j.LinkTTL = cmp.Or(j.LinkTTL, time.Hour)
	j.MaxOutput = cmp.Or(j.MaxOutput, "256MiB")
	j.MaxOutputAudio = cmp.Or(j.MaxOutputAudio, j.Timeout)
	for k := range j.Rules {
		j.Rules[k].Message = cmp.Or(j.Rules[k].Message, "input refused by rule: "+j.Rules[k].Expr)
	}
	for name, in := range j.Inputs {
		if FileInput(in.Type) && in.MaxSize == "" {
			in.MaxSize = "10MiB"
			j.Inputs[name] = in
		}
	}
}

// validateJobs checks every job model; each problem names the model, e.g.
// `jobs[0] (photo/colorize).capacity: must be at least 1`.
func (c *Config) validateJobs(p *problems) {
	names := map[string]bool{}
	for i, j := range c.Jobs {
		key := fmt.Sprintf("jobs[%d] (%s)", i, j.Name)
		if !jobName.MatchString(j.Name) {
			p.add(key+".name", "want owner/name in lower-case letters, digits, '_', '.' or '-', got %q", j.Name)
		} else if names[j.Name] {
			p.add(key+".name", "%q is used by another job model", j.Name)
		}
		names[j.Name] = true
		if j.Backend != BackendHTTP && j.Backend != BackendComfyUI && j.Backend != BackendGradio {
			p.add(key+".backend", "want http, comfyui or gradio, got %q", j.Backend)
		}
		checkComfyUI(p, key, j)
		checkGradioJob(p, key, j)
		if len(j.Upstreams) == 0 {
			p.add(key+".upstreams", "required")
		}
		for k, u := range j.Upstreams {
			checkURL(p, fmt.Sprintf("%s.upstreams[%d]", key, k), u)
		}
		if j.Capacity < 1 {
			p.add(key+".capacity", "must be at least 1")
		}
		checkRate(p, key+".rate_limit", j.RateLimit)
		if !strings.HasPrefix(j.Path, "/") {
			p.add(key+".path", "must start with /")
		}
		for name, in := range j.Inputs {
			checkJobInput(p, key+".inputs."+name, name, in)
		}
		for k, rule := range j.Rules {
			if strings.TrimSpace(rule.Expr) == "" {
				p.add(fmt.Sprintf("%s.rules[%d].expr", key, k), "required")
			}
		}
		if j.Timeout < time.Second {
			p.add(key+".timeout", "must be at least 1s")
		}
		if j.Retries < 0 {
			p.add(key+".retries", "must not be negative")
		}
		if j.Retention < time.Minute {
			p.add(key+".retention", "must be at least 1m")
		}
		if j.LinkTTL < time.Second {
			p.add(key+".link_ttl", "must be at least 1s")
		}
		if _, err := ParseSize(j.MaxOutput); err != nil {
			p.add(key+".max_output", "%v", err)
		}
		checkPrice(p, key+".price", j.Price)
		if j.Backend == BackendComfyUI && j.Price.ChargesOutputAudio() {
			p.add(key+".price", "output audio is measured for the gradio and http backends only (per_output_audio_second, unit output_audio_seconds)")
		}
		if j.MaxOutputAudio < 0 {
			p.add(key+".max_output_audio", "must not be negative")
		}
		for _, field := range []struct{ name, v string }{
			{"per_1k_input_tokens", j.Price.Per1kInputTokens}, {"per_1k_output_tokens", j.Price.Per1kOutputToken},
			{"per_image", j.Price.PerImage}, {"per_megapixel", j.Price.PerMegapixel}, {"per_audio_second", j.Price.PerAudioSecond},
		} {
			if field.v != "" {
				p.add(key+".price."+field.name, "not a job price; want per_request, per_gpu_second or per_output_audio_second")
			}
		}
		if len(j.Price.Models) > 0 {
			p.add(key+".price.models", "not a job price")
		}
	}
}

func checkJobInput(p *problems, key, name string, in JobInput) {
	if !inputName.MatchString(name) {
		p.add(key, "an input name is a letter or '_' then letters, digits or '_'")
	}
	types := []string{InputString, InputInteger, InputNumber, InputBoolean, InputImage, InputAudio, InputVideo, InputFile}
	if !slices.Contains(types, in.Type) {
		p.add(key+".type", "want one of %s, got %q", strings.Join(types, ", "), in.Type)
		return
	}
	if FileInput(in.Type) {
		if in.Min != nil || in.Max != nil || in.Default != nil || len(in.Choices) > 0 || len(in.PlanMax) > 0 {
			p.add(key, "a file input takes only required and max_size")
		}
		if _, err := ParseSize(in.MaxSize); err != nil {
			p.add(key+".max_size", "%v", err)
		}
		return
	}
	if in.MaxSize != "" {
		p.add(key+".max_size", "only file inputs have a size")
	}
	if in.Min != nil && in.Max != nil && *in.Min > *in.Max {
		p.add(key+".min", "is above max")
	}
	if in.Type == InputBoolean && (in.Min != nil || in.Max != nil) {
		p.add(key+".min", "a boolean has no bounds")
	}
	if in.Default != nil {
		if err := CheckInputValue(in, in.Default); err != nil {
			p.add(key+".default", "%v", err)
		}
	}
	for plan, bound := range in.PlanMax {
		if in.Type != InputInteger && in.Type != InputNumber {
			p.add(key+".plan_max", "only numbers and integers have a plan bound")
			break
		}
		if err := CheckInputValue(JobInput{Type: in.Type, Min: in.Min, Max: in.Max}, bound); err != nil {
			p.add(key+".plan_max."+plan, "%v", err)
		}
	}
	for k, ch := range in.Choices {
		if err := CheckInputValue(JobInput{Type: in.Type}, ch); err != nil {
			p.add(fmt.Sprintf("%s.choices[%d]", key, k), "%v", err)
		}
	}
}

// CheckInputValue checks one input value, as decoded from JSON or YAML,
// against its declaration: type, bounds and choices. The error says what
// is wanted, without the field name.
func CheckInputValue(in JobInput, v any) error {
	var num float64
	switch in.Type {
	case InputString:
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("want a string")
		}
		num = float64(len([]rune(s)))
	case InputBoolean:
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("want true or false")
		}
	case InputInteger, InputNumber:
		f, ok := toFloat(v)
		if !ok {
			return fmt.Errorf("want a number")
		}
		if in.Type == InputInteger && (f != math.Trunc(f) || math.Abs(f) > 1<<53) {
			return fmt.Errorf("want an integer")
		}
		num = f
	}
	what := "at least"
	if in.Type == InputString {
		what = "a length of at least"
	}
	if in.Min != nil && num < *in.Min {
		return fmt.Errorf("want %s %v", what, *in.Min)
	}
	if in.Max != nil && num > *in.Max {
		return fmt.Errorf("want %s %v", strings.Replace(what, "at least", "at most", 1), *in.Max)
	}
	if len(in.Choices) > 0 && !slices.ContainsFunc(in.Choices, func(c any) bool { return sameValue(c, v) }) {
		return fmt.Errorf("want one of %v", in.Choices)
	}
	return nil
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint64:
		return float64(n), true
	}
	return 0, false
}

func sameValue(a, b any) bool {
	fa, oka := toFloat(a)
	fb, okb := toFloat(b)
	if oka && okb {
		return fa == fb
	}
	return a == b
}

// JobModel returns the job model named name, or nil.
func (c *Config) JobModel(name string) *JobModel {
	for i := range c.Jobs {
		if c.Jobs[i].Name == name {
			return &c.Jobs[i]
		}
	}
	return nil
}

// checkComfyUI checks the keys that only the comfyui backend takes: a
// workflow, and each input bound to a node and field.
func checkComfyUI(p *problems, key string, j JobModel) {
	comfy := j.Backend == BackendComfyUI
	switch {
	case comfy && j.Workflow == "":
		p.add(key+".workflow", "required for backend comfyui (an API-format workflow file)")
	case !comfy && j.Workflow != "":
		p.add(key+".workflow", "only backend comfyui runs a workflow")
	}
	for name, in := range j.Inputs {
		switch {
		case comfy && (in.Node == "" || in.Field == ""):
			p.add(key+".inputs."+name, "backend comfyui needs node and field: the workflow node id and its input field")
		case !comfy && (in.Node != "" || in.Field != ""):
			p.add(key+".inputs."+name, "node and field bind inputs of backend comfyui only")
		}
	}
}

// ResolveWorkflows makes every relative comfyui workflow path relative to
// dir (the config file's directory) and checks that each file is there.
func (c *Config) ResolveWorkflows(dir string) error {
	for i := range c.Jobs {
		j := &c.Jobs[i]
		if j.Workflow == "" {
			continue
		}
		if !filepath.IsAbs(j.Workflow) {
			j.Workflow = filepath.Join(dir, j.Workflow)
		}
		if st, err := os.Stat(j.Workflow); err != nil || st.IsDir() {
			return fmt.Errorf("jobs[%d] (%s).workflow: no such file %s", i, j.Name, j.Workflow)
		}
	}
	return nil
}

// checkGradioJob checks the fields that belong to the gradio backend:
// api_name and the inputs' positions. Whether they match the app is
// checked against its /gradio_api/info when the model first runs a job.
func checkGradioJob(p *problems, key string, j JobModel) {
	if j.Backend != BackendGradio {
		if j.APIName != "" {
			p.add(key+".api_name", "only the gradio backend has an api_name")
		}
		for name, in := range j.Inputs {
			if in.Position != nil {
				p.add(key+".inputs."+name+".position", "only the gradio backend binds inputs to positions")
			}
		}
		return
	}
	if !strings.HasPrefix(j.APIName, "/") || len(j.APIName) < 2 {
		p.add(key+".api_name", "want the endpoint's name starting with /, e.g. /generate, got %q", j.APIName)
	}
	used := map[int]string{}
	names := make([]string, 0, len(j.Inputs))
	for name := range j.Inputs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		in := j.Inputs[name]
		switch {
		case in.Position == nil:
			p.add(key+".inputs."+name+".position", "required for the gradio backend")
		case *in.Position < 0:
			p.add(key+".inputs."+name+".position", "must not be negative")
		case used[*in.Position] != "":
			p.add(key+".inputs."+name+".position", "%d is also the position of %s", *in.Position, used[*in.Position])
		default:
			used[*in.Position] = name
		}
	}
}
