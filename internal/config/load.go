package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// EnvConfig names the environment variable that points at the config file
// when --config is not given.
const EnvConfig = "TOLLGATE_CONFIG"

// Load reads the YAML file at path (or, when path is empty, the file named
// by TOLLGATE_CONFIG, or nothing), fills defaults and validates. An unknown
// key or a bad value is an error naming the file, the line and the key:
// "config tollgate.yaml: line 3: plans.free.rate_limt: unknown key; did you
// mean rate_limit?".
func Load(path string) (*Config, error) {
	path = cmp.Or(path, os.Getenv(EnvConfig))
	if path == "" {
		cfg, err := Parse(nil)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		return cfg, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if err := cfg.ResolveWorkflows(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes YAML, fills defaults and validates. Empty data yields the
// documented defaults. Errors carry the line of the key they name.
func Parse(data []byte) (*Config, error) {
	var cfg Config
	if len(bytes.TrimSpace(data)) > 0 {
		var doc yaml.Node
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return nil, syntaxError(data, err)
		}
		if problems := checkNodes(&doc); len(problems) > 0 {
			return nil, errors.Join(problems...)
		}
		if err := doc.Decode(&cfg); err != nil {
			return nil, errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
		}
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// syntaxError rewrites a YAML syntax error. The parser often names the
// line where the enclosing block started; a key indented differently from
// its neighbours is named at its own line instead.
func syntaxError(data []byte, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if n, line, ok := misindented(data); ok {
		return fmt.Errorf("line %d: %q is not indented like the keys around it (%s)", n, strings.TrimSpace(line), msg)
	}
	if strings.Contains(msg, "mapping values are not allowed") {
		msg += ` (a value that contains ": " needs quotes, e.g. message: "free plan: at most 1024 tokens")`
	}
	return errors.New(msg)
}

// misindented finds the first line of block YAML whose indentation matches
// no open block: deeper than the line before although that line opens no
// block, or shallower than its block but at no enclosing level.
func misindented(data []byte) (int, string, bool) {
	type level struct {
		indent int
		seq    bool // a list's level: only "- " items belong at it
	}
	levels := []level{{}}
	opens := false // the line before ends with ":" and so opens a block
	for i, line := range strings.Split(string(data), "\n") {
		text := strings.TrimRight(line, " \t\r")
		trimmed := strings.TrimLeft(text, " ")
		if trimmed == "" || strings.HasPrefix(trimmed, "#") || trimmed == "---" {
			continue
		}
		if strings.HasSuffix(stripComment(text), "|") || strings.HasSuffix(stripComment(text), ">") || strings.ContainsAny(trimmed[:1], "|>") {
			return 0, "", false // block scalars: leave it to the parser
		}
		if strings.Count(text, "[")+strings.Count(text, "{") != strings.Count(text, "]")+strings.Count(text, "}") {
			return 0, "", false // a flow collection over several lines
		}
		indent := len(text) - len(trimmed)
		item := strings.HasPrefix(trimmed, "- ") || trimmed == "-"
		top := levels[len(levels)-1]
		switch {
		case indent > top.indent && opens:
			levels = append(levels, level{indent, item})
		case indent > top.indent:
			return i + 1, line, true
		case indent == top.indent && opens && item && !top.seq:
			levels = append(levels, level{indent, true}) // a list at its key's indentation
		default:
			for n := len(levels); n > 1; n = len(levels) {
				l := levels[n-1]
				if l.indent > indent || (l.indent == indent && l.seq && !item && levels[n-2].indent == indent) {
					levels = levels[:n-1]
					continue
				}
				break
			}
			if l := levels[len(levels)-1]; l.indent != indent || l.seq != item {
				return i + 1, line, true
			}
		}
		// "- key: v" opens a mapping at the key's column.
		for strings.HasPrefix(trimmed, "- ") {
			rest := strings.TrimLeft(trimmed[2:], " ")
			indent += len(trimmed) - len(rest)
			trimmed = rest
			if strings.Contains(trimmed, ": ") || strings.HasSuffix(stripComment(trimmed), ":") {
				levels = append(levels, level{indent: indent})
			}
		}
		opens = strings.HasSuffix(stripComment(trimmed), ":")
	}
	return 0, "", false
}

func stripComment(s string) string {
	if i := strings.Index(s, " #"); i >= 0 {
		s = s[:i]
	}
	return strings.TrimRight(s, " ")
}

// SetDefaults fills every unset field with its documented default.
func (c *Config) SetDefaults() {
	c.Listen = cmp.Or(c.Listen, "127.0.0.1:8080")
	c.DataDir = cmp.Or(c.DataDir, "./tollgate-data")
	c.Store = cmp.Or(c.Store, "sqlite")
	c.RedisPrefix = cmp.Or(c.RedisPrefix, "tollgate:")
	scheme := "http://"
	if c.TLS.Enabled() {
		scheme = "https://"
	}
	c.PublicURL = strings.TrimSuffix(cmp.Or(c.PublicURL, scheme+c.Listen), "/")
	c.Currency = cmp.Or(c.Currency, "USD")
	c.DefaultPlan = cmp.Or(c.DefaultPlan, "free")

	t := &c.Tokens
	t.Algorithm = cmp.Or(t.Algorithm, "ES256")
	t.Audience = cmp.Or(t.Audience, "tollgate")
	t.AccessTTL = cmp.Or(t.AccessTTL, 15*time.Minute)
	t.RefreshIdleTTL = cmp.Or(t.RefreshIdleTTL, 24*time.Hour)
	t.RefreshTTL = cmp.Or(t.RefreshTTL, 720*time.Hour)
	t.Leeway = cmp.Or(t.Leeway, 30*time.Second)
	t.RotationDelay = cmp.Or(t.RotationDelay, 10*time.Minute)
	t.CacheSize = cmp.Or(t.CacheSize, 100_000)

	for i := range c.TrustedIssuers {
		ti := &c.TrustedIssuers[i]
		if len(ti.Algorithms) == 0 {
			ti.Algorithms = []string{"RS256"}
		}
		ti.DefaultPlan = cmp.Or(ti.DefaultPlan, c.DefaultPlan)
		ti.DefaultRole = cmp.Or(ti.DefaultRole, "user")
		ti.DefaultTenant = cmp.Or(ti.DefaultTenant, ti.Issuer)
		ti.RefreshInterval = cmp.Or(ti.RefreshInterval, time.Minute)
		ti.MaxStale = cmp.Or(ti.MaxStale, 24*time.Hour)
		if u, err := url.Parse(ti.Issuer); err == nil {
			ti.LoginName = cmp.Or(ti.LoginName, u.Host)
		}
	}

	if c.Roles == nil {
		c.Roles = map[string]Role{}
	}
	if _, ok := c.Roles["user"]; !ok {
		c.Roles["user"] = Role{Scopes: []string{"infer:text", "infer:image", "infer:audio", "jobs"}}
	}
	if _, ok := c.Roles["admin"]; !ok {
		c.Roles["admin"] = Role{Scopes: []string{"*"}}
	}
	if c.Plans == nil {
		c.Plans = map[string]Plan{}
	}
	if _, ok := c.Plans[c.DefaultPlan]; !ok {
		c.Plans[c.DefaultPlan] = Plan{}
	}
	for name, p := range c.Plans {
		for _, b := range []*Budget{p.Budget, p.TenantBudget} {
			if b != nil {
				b.Period = cmp.Or(b.Period, "month")
				if b.Alerts == nil {
					b.Alerts = []int{80, 100}
				}
			}
		}
		c.Plans[name] = p
	}

	c.setJobDefaults()
	for i := range c.Routes {
		r := &c.Routes[i]
		r.Type = cmp.Or(r.Type, RouteHTTP)
		if r.StripPrefix == nil {
			strip := r.Strips()
			r.StripPrefix = &strip
		}
		r.Timeout = cmp.Or(r.Timeout, 300*time.Second)
		r.MaxOutputAudio = cmp.Or(r.MaxOutputAudio, r.Timeout)
		r.MaxBody = cmp.Or(r.MaxBody, "10MiB")
		if r.Type == RouteComfyUI {
			r.Capacity = cmp.Or(r.Capacity, 1)
		}
		if hc := r.HealthCheck; hc != nil {
			hc.Path = cmp.Or(hc.Path, "/health")
			hc.Interval = cmp.Or(hc.Interval, 10*time.Second)
		}
		for j := range r.Rules {
			r.Rules[j].Message = cmp.Or(r.Rules[j].Message, "request refused by rule: "+r.Rules[j].Expr)
		}
	}

	h := &c.Headers
	h.UserID = cmp.Or(h.UserID, "X-User-ID")
	h.TenantID = cmp.Or(h.TenantID, "X-Tenant-ID")
	h.Role = cmp.Or(h.Role, "X-User-Role")
	h.Scopes = cmp.Or(h.Scopes, "X-User-Scopes")
	h.Plan = cmp.Or(h.Plan, "X-User-Plan")
	h.RequestID = cmp.Or(h.RequestID, "X-Request-ID")
	h.InternalToken = cmp.Or(h.InternalToken, "X-Tollgate-Token")

	s := &c.Server
	s.ReadHeaderTimeout = cmp.Or(s.ReadHeaderTimeout, 10*time.Second)
	s.IdleTimeout = cmp.Or(s.IdleTimeout, 120*time.Second)
	s.MaxHeaderBytes = cmp.Or(s.MaxHeaderBytes, 64<<10)
	s.MaxConnections = cmp.Or(s.MaxConnections, 10_000)
	s.DrainTimeout = cmp.Or(s.DrainTimeout, 30*time.Second)
	if s.AccessLog == nil {
		on := true
		s.AccessLog = &on
	}

	p := &c.Protection
	p.IPRateLimit = cmp.Or(p.IPRateLimit, "100/s")
	p.LoginRateLimit = cmp.Or(p.LoginRateLimit, "10/m")
	p.LoginBackoffMax = cmp.Or(p.LoginBackoffMax, 5*time.Minute)
	p.BanThreshold = cmp.Or(p.BanThreshold, 50)
	p.BanWindow = cmp.Or(p.BanWindow, time.Minute)
	p.BanDuration = cmp.Or(p.BanDuration, 15*time.Minute)
	p.RedisFailure = cmp.Or(p.RedisFailure, "local")
	p.Replicas = cmp.Or(p.Replicas, 1)

	c.TLS.HSTSMaxAge = cmp.Or(c.TLS.HSTSMaxAge, 8760*time.Hour)
	c.TLS.ACME.CA = cmp.Or(c.TLS.ACME.CA, LetsEncryptCA)
	c.Login.CookieName = cmp.Or(c.Login.CookieName, "tollgate_session")
	if c.Login.Password == nil {
		on := true
		c.Login.Password = &on
	}
	if !slices.Contains(c.Headers.StripCookies, c.Login.CookieName) {
		// The session cookie is tollgate's own: no upstream ever sees it.
		c.Headers.StripCookies = append(c.Headers.StripCookies, c.Login.CookieName)
	}

	m := &c.Metering
	m.UnknownCharge = cmp.Or(m.UnknownCharge, "reserved")
	m.FlushInterval = cmp.Or(m.FlushInterval, 20*time.Millisecond)
	m.MaxBatch = cmp.Or(m.MaxBatch, 512)
	m.LeaseTTL = cmp.Or(m.LeaseTTL, 15*time.Second)
}

// LetsEncryptCA is the ACME directory used when tls.acme.ca is not set.
const LetsEncryptCA = "https://acme-v02.api.letsencrypt.org/directory"

// Scopes returns the scopes of a role and plan together, deduplicated.
func (c *Config) Scopes(role, plan string) []string {
	var out []string
	seen := map[string]bool{}
	add := func(ss []string) {
		for _, s := range ss {
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	add(c.Roles[role].Scopes)
	add(c.Plans[c.PlanName(plan)].Scopes)
	return out
}

// PlanName returns plan, or the default plan when plan is empty.
func (c *Config) PlanName(plan string) string { return cmp.Or(plan, c.DefaultPlan) }
