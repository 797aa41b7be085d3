package proxy

import (
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/policy"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// route is a configured route compiled for the hot path.
type route struct {
	name          string
	path          string
	prefix        bool
	methods       []string // empty allows every method
	public        bool
	scopes        []string
	roles         []string
	openai        bool
	maxBody       int64
	timeout       time.Duration
	stripPrefix   bool
	internalToken bool
	allowGetBody  bool // GET and HEAD requests may carry a body
	gpuHeader     string
	// measure: the route prices images, megapixels or audio, so its
	// bodies are read for the meter to measure, not streamed through.
	measure bool

	pool       *pool            // default pool; nil when every request is routed by model or tenant
	models     map[string]*pool // openai model → pool
	modelNames []string         // sorted keys of models
	tenants    map[string]*pool // tenant_id → dedicated pool
	upHeaders  []headerValue    // upstream_headers, expanded and canonical

	policy  *policy.Policy
	gradio  *gradioGuard // gradio routes
	native  Native       // comfyui routes
	metrics *routeMetrics
	health  *config.HealthCheck
}

type headerValue struct {
	name  string
	value []string
}

func (rt *route) allowsMethod(m string) bool {
	return len(rt.methods) == 0 || slices.Contains(rt.methods, m)
}

// refusesBody reports a GET or HEAD request with a body on a route that
// does not allow one: an upstream that ignores such a body would read it
// as a request of its own.
func (rt *route) refusesBody(r *http.Request) bool {
	if rt.allowGetBody || r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	return r.ContentLength != 0 || len(r.TransferEncoding) > 0
}

// permits reports whether p may call the route: all scopes, one of the
// roles.
func (rt *route) permits(p *tollgate.Principal) bool {
	if rt.public {
		return true
	}
	if p == nil || !p.HasScopes(rt.scopes) {
		return false
	}
	return len(rt.roles) == 0 || slices.Contains(rt.roles, p.Role)
}

// pools returns every pool of the route, for health checks.
func (rt *route) pools() []*pool {
	var out []*pool
	if rt.pool != nil {
		out = append(out, rt.pool)
	}
	for _, m := range rt.modelNames {
		out = append(out, rt.models[m])
	}
	for _, pl := range rt.tenants {
		out = append(out, pl)
	}
	return out
}

// table finds the route of a path: exact paths first, then the longest
// matching prefix.
type table struct {
	exact    map[string]*route
	prefixes []*route // longest first
	all      []*route
}

func (t *table) lookup(path string) *route {
	if rt, ok := t.exact[path]; ok {
		return rt
	}
	for _, rt := range t.prefixes {
		if strings.HasPrefix(path, rt.path) {
			return rt
		}
	}
	return nil
}

// compileRoutes builds the table; an error names the route, e.g.
// `routes[2] "chat": rules[0]: ...`.
func (p *Proxy) compileRoutes(routes []config.Route) (*table, error) {
	t := &table{exact: map[string]*route{}}
	for i := range routes {
		rc := &routes[i]
		rt, err := p.compileRoute(rc)
		if err != nil {
			return nil, fmt.Errorf("routes[%d] %q: %w", i, rc.Name, err)
		}
		t.all = append(t.all, rt)
		if rt.prefix {
			t.prefixes = append(t.prefixes, rt)
		} else {
			t.exact[rt.path] = rt
		}
	}
	sort.SliceStable(t.prefixes, func(i, j int) bool { return len(t.prefixes[i].path) > len(t.prefixes[j].path) })
	return t, nil
}

func (p *Proxy) compileRoute(rc *config.Route) (*route, error) {
	maxBody, err := config.ParseSize(rc.MaxBody)
	if err != nil {
		return nil, fmt.Errorf("max_body: %w", err)
	}
	rt := &route{
		name: rc.Name, path: rc.Path, prefix: strings.HasSuffix(rc.Path, "/"),
		methods: rc.Methods, public: rc.Public, scopes: rc.Scopes, roles: rc.Roles,
		openai: rc.Type == config.RouteOpenAI, maxBody: maxBody, timeout: rc.Timeout,
		stripPrefix: rc.Strips(), internalToken: rc.InternalToken, allowGetBody: rc.AllowGetBody,
		gpuHeader: rc.GPUSecondsHeader, health: rc.HealthCheck, measure: mediaPriced(rc.Price),
		metrics: p.metrics.forRoute(rc.Name),
	}
	if rt.timeout <= 0 {
		rt.timeout = 300 * time.Second
	}
	if rc.Type == config.RouteGradio {
		rt.gradio = newGradioGuard(rt.timeout, p.now)
		if rc.Price.ChargesOutputAudio() {
			rt.gradio.audio = &gradioAudio{p: p, rt: rt}
		}
	}
	if rt.native = p.opts.Native[rc.Name]; rt.native == nil && rc.Type == config.RouteComfyUI {
		return nil, fmt.Errorf("a comfyui route needs the gateway's handler of its prompts")
	}
	for k, v := range rc.UpstreamHeaders {
		rt.upHeaders = append(rt.upHeaders, headerValue{textproto.CanonicalMIMEHeaderKey(k), []string{expandEnv(v)}})
	}
	sort.Slice(rt.upHeaders, func(i, j int) bool { return rt.upHeaders[i].name < rt.upHeaders[j].name })
	if len(rc.Upstreams) > 0 {
		if rt.pool, err = p.newPool(rc.Upstreams); err != nil {
			return nil, fmt.Errorf("upstreams: %w", err)
		}
	}
	if len(rc.Models) > 0 {
		rt.models = map[string]*pool{}
		for m, urls := range rc.Models {
			if rt.models[m], err = p.newPool(urls); err != nil {
				return nil, fmt.Errorf("models.%s: %w", m, err)
			}
			rt.modelNames = append(rt.modelNames, m)
		}
		sort.Strings(rt.modelNames)
	}
	if len(rc.Tenants) > 0 {
		rt.tenants = map[string]*pool{}
		for tn, urls := range rc.Tenants {
			if rt.tenants[tn], err = p.newPool(urls); err != nil {
				return nil, fmt.Errorf("tenants.%s: %w", tn, err)
			}
		}
	}
	if rt.policy, err = policy.Compile(rc); err != nil {
		return nil, err
	}
	return rt, nil
}

func (p *Proxy) newPool(urls []string) (*pool, error) {
	pl := &pool{threshold: int32(p.opts.FailureThreshold), cooldown: p.opts.Cooldown}
	for j, s := range urls {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("[%d]: %q is not an http(s) URL", j, s)
		}
		pl.ups = append(pl.ups, &backend{url: u})
	}
	if len(pl.ups) == 0 {
		return nil, fmt.Errorf("no upstreams")
	}
	return pl, nil
}

// expandEnv replaces ${VAR} with the environment variable VAR; a lone $
// is kept, so secrets holding $ survive.
func expandEnv(s string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		b.WriteString(os.Getenv(s[i+2 : i+j]))
		s = s[i+j+1:]
	}
}

// selectPool picks the pool of a request: the tenant's dedicated pool,
// else the model's, else the route's default. ok is false when none fits.
func (rt *route) selectPool(p *tollgate.Principal, model string) (*pool, bool) {
	if p != nil && rt.tenants != nil {
		if pl, ok := rt.tenants[p.TenantID]; ok {
			return pl, true
		}
	}
	if model != "" && rt.models != nil {
		if pl, ok := rt.models[model]; ok {
			return pl, true
		}
	}
	return rt.pool, rt.pool != nil
}

// isUpgrade reports a websocket (or other protocol) upgrade request.
func isUpgrade(r *http.Request) bool {
	return r.Header.Get("Upgrade") != ""
}

// mediaPriced reports whether a price (or one of its model prices or
// tiers) charges for images, megapixels or audio seconds, which are
// measured from request bodies.
func mediaPriced(p config.Price) bool {
	positive := func(s string) bool {
		m, err := tollgate.ParseMoney(s)
		return err == nil && m > 0
	}
	if positive(p.PerImage) || positive(p.PerMegapixel) || positive(p.PerAudioSecond) {
		return true
	}
	for _, t := range p.Tiers {
		if (t.Unit == "images" || t.Unit == "megapixels" || t.Unit == "audio_seconds") && positive(t.Price) {
			return true
		}
	}
	for _, mp := range p.Models {
		if mediaPriced(mp) {
			return true
		}
	}
	return false
}
