package config

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/s3"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// problems collects validation errors, each naming its key.
type problems []error

func (p *problems) add(key, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
}

var routeName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// Validate checks every field and returns all problems at once, each naming
// its key, e.g. "routes[1].upstreams[0]: ...".
func (c *Config) Validate() error {
	var p problems
	if _, err := netip.ParseAddrPort(c.Listen); err != nil && !strings.HasPrefix(c.Listen, ":") && !strings.HasPrefix(c.Listen, "localhost:") {
		p.add("listen", "%q is not host:port", c.Listen)
	}
	if c.Store != "sqlite" && !strings.HasPrefix(c.Store, "postgres://") && !strings.HasPrefix(c.Store, "postgresql://") {
		p.add("store", "want sqlite or a postgres:// URL")
	}
	if c.Redis != "" && !strings.HasPrefix(c.Redis, "redis://") && !strings.HasPrefix(c.Redis, "rediss://") {
		p.add("redis", "want empty or a redis:// URL")
	}
	if c.Results != "" {
		if _, err := s3.ParseURL(c.Results, nil); err != nil {
			p.add("results", "%v", err)
		}
	}
	checkURL(&p, "public_url", c.PublicURL)
	if len(c.Currency) != 3 || strings.ToUpper(c.Currency) != c.Currency {
		p.add("currency", "want a three-letter ISO code such as USD, got %q", c.Currency)
	}
	c.validateTokens(&p)
	for i, ti := range c.TrustedIssuers {
		key := fmt.Sprintf("trusted_issuers[%d]", i)
		checkURL(&p, key+".issuer", ti.Issuer)
		checkURL(&p, key+".jwks_url", ti.JWKSURL)
		if ti.Audience == "" {
			p.add(key+".audience", "required")
		}
		if ti.Issuer == c.PublicURL {
			p.add(key+".issuer", "is tollgate's own issuer (public_url)")
		}
		for j, a := range ti.Algorithms {
			if !slices.Contains([]string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}, a) {
				p.add(fmt.Sprintf("%s.algorithms[%d]", key, j), "%q is not an allowed asymmetric algorithm", a)
			}
		}
		if ti.Login && ti.ClientID == "" {
			p.add(key+".client_id", "required with login: true")
		}
		for k := range ti.Claims {
			if !slices.Contains([]string{"sub", "tenant_id", "role", "scope", "plan"}, k) {
				p.add(key+".claims."+k, "unknown claim; want sub, tenant_id, role, scope or plan")
			}
		}
	}
	for name, pl := range c.Plans {
		key := "plans." + name
		checkRate(&p, key+".rate_limit", pl.RateLimit)
		checkRate(&p, key+".tenant_rate_limit", pl.TenantRateLimit)
		if pl.MaxQueued < 0 {
			p.add(key+".max_queued", "must not be negative")
		}
		if pl.Concurrency < 0 || pl.TenantConcurrency < 0 {
			p.add(key+".concurrency", "must not be negative")
		}
		checkBudget(&p, key+".budget", pl.Budget)
		checkBudget(&p, key+".tenant_budget", pl.TenantBudget)
		for u, n := range pl.FreeUnits {
			if !slices.Contains(UnitNames(), u) {
				p.add(key+".free_units."+u, "unknown unit; want one of %s", strings.Join(UnitNames(), ", "))
			}
			if n < 0 {
				p.add(key+".free_units."+u, "must not be negative")
			}
		}
	}
	c.validateRoutes(&p)
	c.validateJobs(&p)
	c.checkPlanNodes(&p)
	c.validateTLS(&p)
	checkRate(&p, "protection.ip_rate_limit", c.Protection.IPRateLimit)
	checkRate(&p, "protection.login_rate_limit", c.Protection.LoginRateLimit)
	if !slices.Contains([]string{"local", "refuse"}, c.Protection.RedisFailure) {
		p.add("protection.redis_failure", "want local or refuse")
	}
	for i, cidr := range c.Server.TrustedProxies {
		if _, err := netip.ParsePrefix(cidr); err != nil {
			p.add(fmt.Sprintf("server.trusted_proxies[%d]", i), "%q is not a CIDR such as 10.0.0.0/8", cidr)
		}
	}
	for i, name := range c.Headers.StripCookies {
		if name == "" || strings.ContainsAny(name, " \t;=,\"") {
			p.add(fmt.Sprintf("headers.strip_cookies[%d]", i), "%q is not a cookie name", name)
		}
	}
	if !slices.Contains([]string{"reserved", "none"}, c.Metering.UnknownCharge) {
		p.add("metering.unknown_charge", "want reserved or none")
	}
	if c.Metering.LeaseTTL < time.Second {
		p.add("metering.lease_ttl", "want at least 1s")
	}
	for i, w := range c.Webhooks {
		checkURL(&p, fmt.Sprintf("webhooks[%d].url", i), w.URL)
	}
	return errors.Join(p...)
}

func (c *Config) validateTokens(p *problems) {
	t := c.Tokens
	if !slices.Contains([]string{"ES256", "EdDSA", "RS256"}, t.Algorithm) {
		p.add("tokens.algorithm", "want ES256, EdDSA or RS256, got %q", t.Algorithm)
	}
	if t.Leeway < 0 || t.Leeway > time.Minute {
		p.add("tokens.leeway", "must be between 0 and 60s")
	}
	if t.AccessTTL < time.Minute || t.AccessTTL > 24*time.Hour {
		p.add("tokens.access_ttl", "must be between 1m and 24h")
	}
	if t.RefreshIdleTTL > t.RefreshTTL {
		p.add("tokens.refresh_idle_ttl", "must not exceed tokens.refresh_ttl")
	}
	if t.KeyPassphraseFile != "" {
		if _, err := os.Stat(t.KeyPassphraseFile); err != nil {
			p.add("tokens.key_passphrase_file", "cannot be read: %v", err)
		}
	}
}

func (c *Config) validateRoutes(p *problems) {
	names := map[string]bool{}
	paths := map[string]bool{}
	for i, r := range c.Routes {
		key := fmt.Sprintf("routes[%d]", i)
		if !routeName.MatchString(r.Name) {
			p.add(key+".name", "want 1-64 letters, digits, '_', '.' or '-', got %q", r.Name)
		} else if names[r.Name] {
			p.add(key+".name", "%q is used by another route", r.Name)
		}
		names[r.Name] = true
		if !strings.HasPrefix(r.Path, "/") {
			p.add(key+".path", "must start with /")
		} else if reservedPath(r.Path) {
			p.add(key+".path", "%q overlaps a built-in endpoint", r.Path)
		} else if paths[r.Path] {
			p.add(key+".path", "%q is used by another route", r.Path)
		}
		paths[r.Path] = true
		if r.Type != RouteOpenAI && r.Type != RouteHTTP && r.Type != RouteGradio && r.Type != RouteComfyUI {
			p.add(key+".type", "want openai, http, gradio or comfyui, got %q", r.Type)
		}
		c.checkComfyRoute(p, key, r)
		if r.Type == RouteGradio && !strings.HasSuffix(r.Path, "/") {
			p.add(key+".path", "a gradio route serves a whole app: want a prefix ending in /, got %q", r.Path)
		}
		if r.Type != RouteGradio && r.Price.ChargesOutputAudio() {
			p.add(key+".price", "output audio is measured on gradio routes only (per_output_audio_second, unit output_audio_seconds)")
		}
		if r.MaxOutputAudio < 0 {
			p.add(key+".max_output_audio", "must not be negative")
		}
		if r.Type == RouteGradio && r.Public {
			p.add(key+".public", "a gradio route keeps each caller's sessions and files apart, so it needs authenticated callers")
		}
		for j, m := range r.Methods {
			if m != strings.ToUpper(m) || m == "" {
				p.add(fmt.Sprintf("%s.methods[%d]", key, j), "want an upper-case HTTP method, got %q", m)
			}
		}
		if r.AllowGetBody && len(r.Methods) > 0 && !slices.Contains(r.Methods, "GET") && !slices.Contains(r.Methods, "HEAD") {
			p.add(key+".allow_get_body", "has no effect: the route allows neither GET nor HEAD")
		}
		if len(r.Upstreams) == 0 && len(r.Models) == 0 && len(r.Tenants) == 0 && !r.Demo {
			p.add(key+".upstreams", "required (or models / tenants)")
		}
		for j, u := range r.Upstreams {
			checkURL(p, fmt.Sprintf("%s.upstreams[%d]", key, j), u)
		}
		for m, pool := range r.Models {
			if len(pool) == 0 {
				p.add(key+".models."+m, "needs at least one upstream")
			}
			for j, u := range pool {
				checkURL(p, fmt.Sprintf("%s.models.%s[%d]", key, m, j), u)
			}
		}
		for t, pool := range r.Tenants {
			if len(pool) == 0 {
				p.add(key+".tenants."+t, "needs at least one upstream")
			}
			for j, u := range pool {
				checkURL(p, fmt.Sprintf("%s.tenants.%s[%d]", key, t, j), u)
			}
		}
		if _, err := ParseSize(r.MaxBody); err != nil {
			p.add(key+".max_body", "%v", err)
		}
		if r.Timeout < 0 {
			p.add(key+".timeout", "must be positive")
		}
		if r.Public && (len(r.Scopes) > 0 || len(r.Roles) > 0) {
			p.add(key+".public", "a public route cannot require scopes or roles")
		}
		checkRate(p, key+".rate_limit", r.RateLimit)
		checkPrice(p, key+".price", r.Price)
		if r.MaxCost != "" {
			checkMoney(p, key+".max_cost", r.MaxCost)
		}
		for j, rule := range r.Rules {
			if strings.TrimSpace(rule.Expr) == "" {
				p.add(fmt.Sprintf("%s.rules[%d].expr", key, j), "required")
			}
			for k, m := range rule.Methods {
				if m != strings.ToUpper(m) || m == "" {
					p.add(fmt.Sprintf("%s.rules[%d].methods[%d]", key, j, k), "want an upper-case HTTP method, got %q", m)
				}
			}
		}
	}
}

// reservedPath reports whether a route path lies under a built-in
// endpoint, where it would never be reached. A prefix route such as /v1/
// may contain built-in paths (/v1/me): the built-in one wins for its path.
func reservedPath(path string) bool {
	for _, b := range []string{"/healthz", "/readyz", "/metrics", "/auth/", "/oauth/", "/.well-known/", "/admin/", "/v1/me"} {
		if path == b || strings.HasPrefix(path, b) || path == strings.TrimSuffix(b, "/") {
			return true
		}
	}
	return false
}

func checkURL(p *problems, key, s string) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.add(key, "%q is not an http(s) URL", s)
	}
}

func checkRate(p *problems, key, s string) {
	if s == "" || s == RateOff {
		return
	}
	if _, err := ParseRate(s); err != nil {
		p.add(key, "%v", err)
	}
}

func checkMoney(p *problems, key, s string) {
	if m, err := tollgate.ParseMoney(s); err != nil {
		p.add(key, "%s", tollgate.ErrorMessage(err))
	} else if m < 0 {
		p.add(key, "must not be negative")
	}
}

func checkBudget(p *problems, key string, b *Budget) {
	if b == nil {
		return
	}
	checkMoney(p, key+".amount", b.Amount)
	if !slices.Contains([]string{"day", "month", "total"}, b.Period) {
		p.add(key+".period", "want day, month or total, got %q", b.Period)
	}
	for i, a := range b.Alerts {
		if a <= 0 || a > 100 {
			p.add(fmt.Sprintf("%s.alerts[%d]", key, i), "want a percentage from 1 to 100")
		}
	}
}

func checkPrice(p *problems, key string, pr Price) {
	for k, v := range map[string]string{
		"per_request": pr.PerRequest, "per_1k_input_tokens": pr.Per1kInputTokens,
		"per_1k_output_tokens": pr.Per1kOutputToken, "per_image": pr.PerImage,
		"per_megapixel": pr.PerMegapixel, "per_audio_second": pr.PerAudioSecond,
		"per_gpu_second": pr.PerGPUSecond, "per_output_audio_second": pr.PerOutputAudioSecond,
	} {
		if v != "" {
			checkMoney(p, key+"."+k, v)
		}
	}
	for i, t := range pr.Tiers {
		tk := fmt.Sprintf("%s.tiers[%d]", key, i)
		if !slices.Contains(UnitNames(), t.Unit) {
			p.add(tk+".unit", "unknown unit; want one of %s", strings.Join(UnitNames(), ", "))
		}
		if t.From < 0 {
			p.add(tk+".from", "must not be negative")
		}
		checkMoney(p, tk+".price", t.Price)
	}
	for m, mp := range pr.Models {
		checkPrice(p, key+".models."+m, mp)
	}
}

func (c *Config) validateTLS(p *problems) {
	t := c.TLS
	if (t.CertFile == "") != (t.KeyFile == "") {
		p.add("tls", "cert_file and key_file go together")
	}
	if t.CertFile != "" && len(t.ACME.Domains) > 0 {
		p.add("tls.acme", "use either cert_file and key_file or acme, not both")
	}
	for i, d := range t.ACME.Domains {
		if d == "" || strings.ContainsAny(d, "/: ") {
			p.add(fmt.Sprintf("tls.acme.domains[%d]", i), "%q is not a host name", d)
		}
	}
	if len(t.ACME.Domains) > 0 {
		checkURL(p, "tls.acme.ca", t.ACME.CA)
	}
	if t.ACME.CARoot != "" {
		if _, err := os.Stat(t.ACME.CARoot); err != nil {
			p.add("tls.acme.ca_root", "%v", err)
		}
	}
	if c.ListenHTTP != "" {
		if !t.Enabled() {
			p.add("listen_http", "needs tls: it redirects to HTTPS")
		}
		if _, err := netip.ParseAddrPort(c.ListenHTTP); err != nil && !strings.HasPrefix(c.ListenHTTP, ":") && !strings.HasPrefix(c.ListenHTTP, "localhost:") {
			p.add("listen_http", "%q is not host:port", c.ListenHTTP)
		}
	}
	if name := c.Login.CookieName; strings.ContainsAny(name, " \t;=,\"") {
		p.add("login.cookie_name", "%q is not a cookie name", name)
	}
}
