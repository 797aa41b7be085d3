package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/config"
)

func TestJobDefaults(t *testing.T) {
	cfg, err := config.Parse([]byte(`
plans: {pro: {priority: 10, max_queued: 5}}
jobs:
  - name: photo/colorize
    backend: http
    upstreams: [http://127.0.0.1:9000]
    inputs:
      size: {type: integer, default: 512, min: 256, max: 1280}
`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	j := cfg.JobModel("photo/colorize")
	if j == nil {
		t.Fatal("JobModel(photo/colorize) = nil")
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"capacity", j.Capacity, 1},
		{"path", j.Path, "/"},
		{"scopes", strings.Join(j.Scopes, " "), "jobs"},
		{"timeout", j.Timeout, 10 * time.Minute},
		{"retention", j.Retention, 24 * time.Hour},
		{"link_ttl", j.LinkTTL, time.Hour},
		{"max_output", j.MaxOutput, "256MiB"},
		{"plans.pro.priority", cfg.Plans["pro"].Priority, 10},
		{"plans.pro.max_queued", cfg.Plans["pro"].MaxQueued, 5},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestJobErrorsNameTheModel(t *testing.T) {
	base := "jobs:\n  - {name: photo/colorize, backend: http, upstreams: [http://127.0.0.1:9000]%s}\n"
	tests := []struct {
		name, extra, want string
	}{
		{"unknown backend", ", backend: ftp", "jobs[0] (photo/colorize).backend: want http, comfyui or gradio"},
		{"zero capacity", ", capacity: -1", "jobs[0] (photo/colorize).capacity: must be at least 1"},
		{"bad input type", ", inputs: {size: {type: float}}", "jobs[0] (photo/colorize).inputs.size.type"},
		{"default out of bounds", ", inputs: {size: {type: integer, default: 2000, max: 1280}}", "jobs[0] (photo/colorize).inputs.size.default: want at most 1280"},
		{"default of the wrong type", ", inputs: {size: {type: integer, default: big}}", "inputs.size.default: want a number"},
		{"min above max", ", inputs: {size: {type: number, min: 5, max: 1}}", "inputs.size.min: is above max"},
		{"token price", ", price: {per_1k_input_tokens: \"1\"}", "jobs[0] (photo/colorize).price.per_1k_input_tokens"},
		{"bad money", ", price: {per_gpu_second: \"x\"}", "jobs[0] (photo/colorize).price.per_gpu_second"},
		{"short timeout", ", timeout: 1ms", "jobs[0] (photo/colorize).timeout"},
		{"empty rule", ", rules: [{expr: ' '}]", "jobs[0] (photo/colorize).rules[0].expr: required"},
		{"bad path", ", path: run", "jobs[0] (photo/colorize).path: must start with /"},
		{"bad rate limit", ", rate_limit: 10/d", "jobs[0] (photo/colorize).rate_limit"},
		{"plan bound out of range", ", inputs: {size: {type: integer, max: 1280, plan_max: {free: 2000}}}", "jobs[0] (photo/colorize).inputs.size.plan_max.free: want at most 1280"},
		{"bounds on a file", ", inputs: {photo: {type: image, max: 5}}", "jobs[0] (photo/colorize).inputs.photo: a file input takes only required and max_size"},
		{"bad file size", ", inputs: {photo: {type: image, max_size: lots}}", "jobs[0] (photo/colorize).inputs.photo.max_size"},
		{"size of a string", ", inputs: {name: {type: string, max_size: 1MiB}}", "inputs.name.max_size: only file inputs"},
		{"plan bound on a string", ", inputs: {name: {type: string, plan_max: {free: 3}}}", "jobs[0] (photo/colorize).inputs.name.plan_max: only numbers"},
		{"gradio without api_name", ", backend: gradio, inputs: {text: {type: string, position: 0}}", "jobs[0] (photo/colorize).api_name: want the endpoint's name"},
		{"gradio input without position", ", backend: gradio, api_name: /generate, inputs: {text: {type: string}}", "jobs[0] (photo/colorize).inputs.text.position: required for the gradio backend"},
		{"gradio positions shared", ", backend: gradio, api_name: /generate, inputs: {a: {type: string, position: 1}, b: {type: string, position: 1}}", "jobs[0] (photo/colorize).inputs.b.position: 1 is also the position of a"},
		{"gradio negative position", ", backend: gradio, api_name: /generate, inputs: {a: {type: string, position: -1}}", "inputs.a.position: must not be negative"},
		{"position on http", ", inputs: {a: {type: string, position: 0}}", "jobs[0] (photo/colorize).inputs.a.position: only the gradio backend"},
		{"api_name on http", ", api_name: /generate", "jobs[0] (photo/colorize).api_name: only the gradio backend"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			y := strings.Replace(base, "%s", tt.extra, 1)
			if strings.Contains(tt.extra, "backend:") {
				y = strings.Replace(y, "backend: http, ", "", 1)
			}
			_, err := config.Parse([]byte(y))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse(%s) error = %v, want it to contain %q", y, err, tt.want)
			}
		})
	}
	t.Run("duplicate and malformed names", func(t *testing.T) {
		_, err := config.Parse([]byte("jobs:\n  - {name: a/b, backend: http, upstreams: [http://x:1]}\n  - {name: a/b, backend: http, upstreams: [http://x:1]}\n  - {name: Nope, backend: http, upstreams: [http://x:1]}\n"))
		for _, want := range []string{`jobs[1] (a/b).name: "a/b" is used by another job model`, "jobs[2] (Nope).name: want owner/name"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error = %v, want it to contain %q", err, want)
			}
		}
	})
	t.Run("negative max_queued", func(t *testing.T) {
		_, err := config.Parse([]byte("plans: {free: {max_queued: -1}}\n"))
		if err == nil || !strings.Contains(err.Error(), "plans.free.max_queued") {
			t.Errorf("error = %v, want plans.free.max_queued", err)
		}
	})
}
