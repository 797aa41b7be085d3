package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/config"
)

func TestDefaults(t *testing.T) {
	cfg, err := config.Parse(nil)
	if err != nil {
		t.Fatalf("Parse(nil): %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"listen", cfg.Listen, "127.0.0.1:8080"},
		{"data_dir", cfg.DataDir, "./tollgate-data"},
		{"store", cfg.Store, "sqlite"},
		{"public_url", cfg.PublicURL, "http://127.0.0.1:8080"},
		{"tokens.algorithm", cfg.Tokens.Algorithm, "ES256"},
		{"tokens.access_ttl", cfg.Tokens.AccessTTL, 15 * time.Minute},
		{"headers.user_id", cfg.Headers.UserID, "X-User-ID"},
		{"default plan exists", len(cfg.Plans), 1},
		{"admin scopes", cfg.Roles["admin"].Scopes[0], "*"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestParseErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", "listne: 1.2.3.4:80\n", "line 1: listne: unknown key; did you mean listen?"},
		{"bad store", "store: mysql\n", "store: want sqlite or a postgres:// URL"},
		{"bad algorithm", "tokens: {algorithm: HS256}\n", "tokens.algorithm"},
		{"leeway too large", "tokens: {leeway: 5m}\n", "tokens.leeway"},
		{"bad rate", "plans: {free: {rate_limit: 10/d}}\n", "plans.free.rate_limit"},
		{"off is only for protection limits", "plans: {free: {rate_limit: of}}\n", "plans.free.rate_limit"},
		{"bad budget", "plans: {free: {budget: {amount: \"5.0000001\"}}}\n", "plans.free.budget.amount"},
		{"float budget period", "plans: {free: {budget: {amount: \"5\", period: week}}}\n", "plans.free.budget.period"},
		{"route without upstream", "routes: [{name: chat, path: /v1/chat}]\n", "routes[0].upstreams: required"},
		{"bad upstream", "routes: [{name: chat, path: /v1/chat, upstreams: [ftp://x]}]\n", "routes[0].upstreams[0]"},
		{"duplicate route", "routes: [{name: a, path: /a, upstreams: [http://x]}, {name: a, path: /b, upstreams: [http://x]}]\n", "routes[1].name"},
		{"shadowing route", "routes: [{name: a, path: /oauth/token, upstreams: [http://x]}]\n", "routes[0].path"},
		{"bad max_body", "routes: [{name: a, path: /a, upstreams: [http://x], max_body: lots}]\n", "routes[0].max_body"},
		{"gradio route not a prefix", "routes: [{name: a, path: /tts, type: gradio, upstreams: [http://x]}]\n", "routes[0].path: a gradio route serves a whole app"},
		{"public gradio route", "routes: [{name: a, path: /tts/, type: gradio, public: true, upstreams: [http://x]}]\n", "routes[0].public: a gradio route"},
		{"allow_get_body without GET", "routes: [{name: a, path: /a, upstreams: [http://x], methods: [POST], allow_get_body: true}]\n", "routes[0].allow_get_body"},
		{"allow_get_body not a bool", "routes: [{name: a, path: /a, upstreams: [http://x], allow_get_body: sometimes}]\n", "routes[0].allow_get_body: want true or false"},
		{"bad price", "routes: [{name: a, path: /a, upstreams: [http://x], price: {per_request: \"1e-3\"}}]\n", "routes[0].price.per_request"},
		{"bad issuer", "trusted_issuers: [{issuer: idp, jwks_url: http://idp/jwks, audience: a}]\n", "trusted_issuers[0].issuer"},
		{"symmetric issuer alg", "trusted_issuers: [{issuer: http://idp, jwks_url: http://idp/jwks, audience: a, algorithms: [HS256]}]\n", "trusted_issuers[0].algorithms[0]"},
		{"bad proxy cidr", "server: {trusted_proxies: [10.0.0.0]}\n", "server.trusted_proxies[0]"},
		{"wrong type", "listen: [1]\n", "line 1: listen: want a string, got a list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse accepted %q", tt.yaml)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not name %q", err, tt.want)
			}
		})
	}
}

func TestMergeKeys(t *testing.T) {
	cfg, err := config.Parse([]byte(`routes:
  - &base {name: a, path: /a, upstreams: ["http://x"], timeout: 5s}
  - <<: *base
    name: b
    path: /b
`))
	if err != nil {
		t.Fatalf("anchors and merge keys: %v", err)
	}
	if len(cfg.Routes) != 2 || cfg.Routes[1].Timeout.String() != "5s" {
		t.Fatalf("merged route %+v", cfg.Routes)
	}
	if _, err := config.Parse([]byte("routes:\n  - &base {name: a, path: /a, upstreams: [\"http://x\"], timout: 5s}\n  - <<: *base\n    name: b\n")); err == nil || !strings.Contains(err.Error(), "did you mean timeout?") {
		t.Fatalf("a typo in a merged mapping: %v", err)
	}
}

func TestLoadFromEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tollgate.yaml")
	data := `listen: 127.0.0.1:9999
routes:
  - name: chat
    path: /v1/chat/completions
    type: openai
    upstreams: [http://127.0.0.1:8000]
    scopes: [infer:text]
    price: {per_request: "0.001"}
`
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(config.EnvConfig, path)
	cfg, err := config.Load("")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.Listen != "127.0.0.1:9999" || len(cfg.Routes) != 1 || cfg.Routes[0].MaxBody != "10MiB" {
		t.Fatalf("loaded %+v", cfg)
	}
	if _, err := config.Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("Load of a missing file succeeded")
	}
}

func TestParseRate(t *testing.T) {
	tests := []struct {
		in   string
		want config.Rate
		ok   bool
	}{
		{"60/m", config.Rate{N: 60, Period: time.Minute}, true},
		{"10/s", config.Rate{N: 10, Period: time.Second}, true},
		{"1000/h", config.Rate{N: 1000, Period: time.Hour}, true},
		{"0/s", config.Rate{}, false},
		{"-1/s", config.Rate{}, false},
		{"10/d", config.Rate{}, false},
		{"10", config.Rate{}, false},
	}
	for _, tt := range tests {
		got, err := config.ParseRate(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"512", 512}, {"64KiB", 64 << 10}, {"10MiB", 10 << 20}, {"1GiB", 1 << 30}, {"2MB", 2e6},
		{"", 0}, {"-1", 0}, {"ten", 0}, {"1TiB", 0},
	}
	for _, tt := range tests {
		got, err := config.ParseSize(tt.in)
		if got != tt.want || (err == nil) != (tt.want > 0) {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

// TestErrorsAUserCanAct: unknown keys get a suggestion and their line,
// mis-indented keys are named at their own line, and no Go type names or
// doubled prefixes reach the user.
func TestErrorsAUserCanAct(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"typo", "plans:\n  free:\n    rate_limt: 10/m\n", "line 3: plans.free.rate_limt: unknown key; did you mean rate_limit?"},
		{"top-level typo", "lisen: 127.0.0.1:1\n", "line 1: lisen: unknown key; did you mean listen?"},
		{"key under the wrong parent", "routes:\n  - name: a\n    path: /a\n    upstreams: [http://x]\nrate_limit: 3/m\n",
			"line 5: rate_limit: unknown key; rate_limit is a key of plans.NAME and routes[] and jobs[]: check its indentation"},
		{"key indented less than its block", "server:\n  access_log: true\n drain_timeout: 5s\n", `line 3: "drain_timeout: 5s" is not indented like the keys around it`},
		{"key indented more than its block", "server:\n  drain_timeout: 5s\n    idle_timeout: 5s\n", `line 3: "idle_timeout: 5s" is not indented`},
		{"route key out of its list item", "routes:\n  - name: chat\n    path: /v1/\n  upstreams: [http://x]\n", `line 4: "upstreams: [http://x]" is not indented`},
		{"wrong kind", "server: {drain_timeout: soon}\n", `line 1: server.drain_timeout: want a duration such as 30s or 5m, got "soon"`},
		{"mapping expected", "tokens: 5\n", "line 1: tokens: want a mapping of keys (algorithm,"},
		{"unquoted colon in a value", "routes:\n  - name: a\n    path: /a\n    upstreams: [http://x]\n    rules:\n      - expr: 'true'\n        message: free plan: at most 1024 tokens\n",
			`line 7: mapping values are not allowed in this context (a value that contains ": " needs quotes`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tollgate.yaml")
			if err := os.WriteFile(path, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := config.Load(path)
			if err == nil {
				t.Fatalf("Load accepted %q", tt.yaml)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) {
				t.Fatalf("error %q does not say %q", msg, tt.want)
			}
			rest, ok := strings.CutPrefix(msg, "config "+path+": ")
			if !ok || strings.Contains(rest, "config") || strings.Contains(rest, "yaml:") || strings.Contains(rest, "unmarshal") {
				t.Fatalf("error %q: want one \"config FILE:\" prefix and no yaml: or Go type names", msg)
			}
		})
	}
}

// TestEffectiveYAML: the printed config has every default, masks secrets,
// and loads again as it is.
func TestEffectiveYAML(t *testing.T) {
	cfg, err := config.Parse([]byte(`store: postgres://tollgate:s3cret@db/tollgate?sslmode=require
redis: redis://:r3dis@cache:6379/0
routes:
  - name: chat
    path: /v1/
    upstreams: [http://127.0.0.1:8000]
    upstream_headers: {Authorization: "Bearer sk-live-123", X-Key: "${VLLM_API_KEY}"}
webhooks: [{url: "https://hooks.example/x?token=hook-secret"}]
`))
	if err != nil {
		t.Fatal(err)
	}
	out, err := cfg.EffectiveYAML()
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	for _, secret := range []string{"s3cret", "r3dis", "sk-live-123", "hook-secret"} {
		if strings.Contains(text, secret) {
			t.Errorf("effective config shows the secret %q:\n%s", secret, text)
		}
	}
	for _, want := range []string{"drain_timeout: 30s", "access_ttl: 15m0s", "max_body: 10MiB", "strip_prefix: false", "${VLLM_API_KEY}", "Bearer ***", "sslmode=require"} {
		if !strings.Contains(text, want) {
			t.Errorf("effective config lacks %q:\n%s", want, text)
		}
	}
	if _, err := config.Parse(out); err != nil {
		t.Fatalf("effective config does not load again: %v\n%s", err, text)
	}
}

func TestStripPrefixDefaultsByRouteType(t *testing.T) {
	cfg, err := config.Parse([]byte(`routes:
  - {name: app, path: /tts/, type: gradio, upstreams: [http://x:1]}
  - {name: api, path: /api/, upstreams: [http://x:1]}
  - {name: mounted, path: /m/, type: gradio, strip_prefix: false, upstreams: [http://x:1]}
`))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, false, false} {
		if got := cfg.Routes[i].Strips(); got != want {
			t.Errorf("route %s strips its prefix: %v, want %v", cfg.Routes[i].Name, got, want)
		}
	}
}

func TestResultsURL(t *testing.T) {
	for _, good := range []string{"", "s3://results/tg?endpoint=10.0.0.5:9000&secure=false", "s3://ak:sk@results"} {
		if _, err := config.Parse([]byte("results: \"" + good + "\"\n")); err != nil {
			t.Errorf("results %q: %v", good, err)
		}
	}
	for _, bad := range []string{"/srv/results", "s3://", "s3://Bad_Bucket", "s3://results?typo=1", "http://results"} {
		_, err := config.Parse([]byte("results: \"" + bad + "\"\n"))
		if err == nil || !strings.Contains(err.Error(), "results:") {
			t.Errorf("results %q = %v, want an error naming results", bad, err)
		}
	}
	cfg, err := config.Parse([]byte("results: \"s3://ak:topsecret@results?endpoint=h:9000\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := cfg.EffectiveYAML()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "topsecret") || !strings.Contains(string(out), "results: s3://ak:"+config.Masked+"@results") {
		t.Errorf("printed config shows the secret or lost the URL:\n%s", out)
	}
}
