package config

import "time"

// Route types.
const (
	RouteOpenAI = "openai"
	RouteHTTP   = "http"
	// RouteGradio serves a Gradio app's own UI and API to many users, each
	// seeing only their own sessions, events and files.
	RouteGradio = "gradio"
	// RouteComfyUI serves ComfyUI's own UI and API to many users: each
	// prompt is a job of its user, and each user sees only their own
	// prompts, files and websocket messages.
	RouteComfyUI = "comfyui"
)

// Route is one configured upstream API.
type Route struct {
	// Name identifies the route in logs, metrics and the ledger. Required,
	// unique.
	Name string `yaml:"name"`
	// Path is matched exactly, or as a prefix when it ends in "/". Required.
	Path string `yaml:"path"`
	// Type is openai, http, gradio or comfyui. Defaults to http.
	Type string `yaml:"type"`
	// Methods allowed; empty allows all.
	Methods []string `yaml:"methods"`
	// Public routes need no token. Defaults to false.
	Public bool `yaml:"public"`
	// Scopes the caller must hold, all of them.
	Scopes []string `yaml:"scopes"`
	// Roles of which the caller must hold one; empty allows every role.
	Roles []string `yaml:"roles"`
	// Upstreams are base URLs balanced by least outstanding requests.
	// Required unless every request is routed by Models or Tenants.
	Upstreams []string `yaml:"upstreams"`
	// Models maps an OpenAI model name to its own upstream pool (openai
	// routes). An unknown model is a 404 when Models is set.
	Models map[string][]string `yaml:"models"`
	// Tenants maps a tenant_id to a dedicated upstream pool.
	Tenants map[string][]string `yaml:"tenants"`
	// StripPrefix removes the route's path prefix before forwarding.
	// Defaults to true on gradio and comfyui routes (the app is served at
	// its root), false otherwise.
	StripPrefix *bool `yaml:"strip_prefix"`
	// AllowGetBody forwards GET and HEAD requests that carry a body
	// (Content-Length above 0, or chunked). Without it they are refused
	// with 400: an upstream that ignores such a body would read it as a
	// request of its own. Defaults to false.
	AllowGetBody bool `yaml:"allow_get_body"`
	// Timeout for the whole upstream exchange; streams are bounded by it
	// too. Defaults to 300s.
	Timeout time.Duration `yaml:"timeout"`
	// MaxBody is the largest request body accepted, e.g. "10MiB". Defaults
	// to 10MiB.
	MaxBody string `yaml:"max_body"`
	// UpstreamHeaders are set on every forwarded request, e.g.
	// Authorization: "Bearer ${VLLM_API_KEY}"; ${VAR} reads the environment.
	UpstreamHeaders map[string]string `yaml:"upstream_headers"`
	// InternalToken sends a short-lived token signed by tollgate to the
	// upstream. Defaults to false.
	InternalToken bool `yaml:"internal_token"`
	// Rules are CEL expressions over claims and the request; all must hold.
	Rules []Rule `yaml:"rules"`
	// Schema is a JSON Schema (inline JSON or a file path) the request body
	// must satisfy.
	Schema string `yaml:"schema"`
	// HealthCheck enables active health checks of the upstreams.
	HealthCheck *HealthCheck `yaml:"health_check"`
	// Price of calls on this route.
	Price Price `yaml:"price"`
	// MaxCost is the most a call may cost, reserved against budgets before
	// forwarding when it cannot be derived from the request.
	MaxCost string `yaml:"max_cost"`
	// MaxOutputAudio bounds the output audio one call is charged for
	// (per_output_audio_second); its reservation holds this much. Longer
	// audio is delivered but charged as this much. Defaults to the
	// route's timeout.
	MaxOutputAudio time.Duration `yaml:"max_output_audio"`
	// ChargeFailures charges a call the upstream answered with a 4xx or
	// 5xx status its full price. Otherwise such a call (outcome
	// upstream_error) is charged only the tokens and GPU time the upstream
	// reported, never the per-request or media price. Defaults to false.
	ChargeFailures bool `yaml:"charge_failures"`
	// RateLimit per user on this route ("N/s", "N/m", "N/h").
	RateLimit string `yaml:"rate_limit"`
	// GPUSecondsHeader names an upstream response header reporting GPU time.
	GPUSecondsHeader string `yaml:"gpu_seconds_header"`
	// CookieAuth lets a browser's session cookie authenticate calls on the
	// route, besides bearer tokens; state-changing calls then need the
	// CSRF token and a same-origin Origin. Defaults to true for comfyui and
	// gradio routes, false otherwise.
	CookieAuth *bool `yaml:"cookie_auth"`
	// Capacity is how many prompts one upstream of a comfyui route runs at
	// once, counted over every route, job model and replica that uses it.
	// Defaults to 1 on comfyui routes.
	Capacity int `yaml:"capacity"`
	// Nodes are the node classes a workflow may use on a comfyui route.
	// Defaults to every class.
	Nodes NodeRules `yaml:"nodes"`
	// Demo marks routes served by the built-in demo backends.
	Demo bool `yaml:"-"`
}

// CookieAuthOn reports whether the session cookie authenticates calls on
// the route.
func (r *Route) CookieAuthOn() bool {
	if r.CookieAuth != nil {
		return *r.CookieAuth
	}
	return r.Type == RouteComfyUI || r.Type == RouteGradio
}

// Rule is one CEL expression with the message shown when it fails.
type Rule struct {
	// Expr is a CEL expression over claims, request and body.
	Expr string `yaml:"expr"`
	// Message tells the caller what to change. Defaults to "request
	// refused by rule: " and the expression.
	Message string `yaml:"message"`
	// Methods are the request methods the rule judges. Defaults to every
	// method when the rule does not read body, and to the methods that
	// carry one (all but GET, HEAD, DELETE and OPTIONS) when it does.
	Methods []string `yaml:"methods"`
}

// HealthCheck configures active upstream health checks.
type HealthCheck struct {
	// Path to GET on each upstream. Defaults to /health.
	Path string `yaml:"path"`
	// Interval between checks. Defaults to 10s.
	Interval time.Duration `yaml:"interval"`
}

// Price of calls, as decimal strings of the configured currency.
type Price struct {
	PerRequest       string `yaml:"per_request"`
	Per1kInputTokens string `yaml:"per_1k_input_tokens"`
	Per1kOutputToken string `yaml:"per_1k_output_tokens"`
	PerImage         string `yaml:"per_image"`
	PerMegapixel     string `yaml:"per_megapixel"`
	PerAudioSecond   string `yaml:"per_audio_second"`
	PerGPUSecond     string `yaml:"per_gpu_second"`
	// PerOutputAudioSecond prices each second of audio in the files a
	// call returns (gradio routes and job models), measured from the
	// files' headers (WAV, MP3, FLAC, Ogg Opus or Vorbis), at most
	// max_output_audio per call.
	PerOutputAudioSecond string `yaml:"per_output_audio_second"`
	// Tiers are graduated: from a cumulative usage in the billing period
	// on, a unit costs the tier's price.
	Tiers []Tier `yaml:"tiers"`
	// Models overrides prices per model (openai routes).
	Models map[string]Price `yaml:"models"`
}

// ChargesOutputAudio reports whether the price charges output audio,
// itself or through a tier or a model's price.
func (p Price) ChargesOutputAudio() bool {
	if p.PerOutputAudioSecond != "" {
		return true
	}
	for _, t := range p.Tiers {
		if t.Unit == "output_audio_seconds" {
			return true
		}
	}
	for _, mp := range p.Models {
		if mp.ChargesOutputAudio() {
			return true
		}
	}
	return false
}

// Tier is one step of graduated pricing.
type Tier struct {
	// Unit is requests, input_tokens, output_tokens, images, megapixels,
	// audio_seconds, gpu_seconds or output_audio_seconds.
	Unit string `yaml:"unit"`
	// From is the cumulative usage in the period from which Price applies.
	From int64 `yaml:"from"`
	// Price per unit (per 1k for tokens).
	Price string `yaml:"price"`
}

// Strips reports whether the route removes its path prefix before
// forwarding: strip_prefix, or its default for the route's type.
func (r *Route) Strips() bool {
	if r.StripPrefix != nil {
		return *r.StripPrefix
	}
	return r.Type == RouteGradio || r.Type == RouteComfyUI
}
