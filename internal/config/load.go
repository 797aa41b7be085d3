package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// EnvConfig names the environment variable that points at the config file
// when --config is not given.
const EnvConfig = "TOLLGATE_CONFIG"

// Load reads the YAML file at path (or, when path is empty, the file named
// by TOLLGATE_CONFIG, or nothing), fills defaults and validates. An unknown
// key or a bad value is an error naming the key.
func Load(path string) (*Config, error) {
	path = cmp.Or(path, os.Getenv(EnvConfig))
	if path == "" {
		return Parse(nil)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes YAML, fills defaults and validates. Empty data yields the
// documented defaults.
func Parse(data []byte) (*Config, error) {
	var cfg Config
	if len(bytes.TrimSpace(data)) > 0 {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// SetDefaults fills every unset field with its documented default.
func (c *Config) SetDefaults() {
	c.Listen = cmp.Or(c.Listen, "127.0.0.1:8080")
	c.DataDir = cmp.Or(c.DataDir, "./tollgate-data")
	c.Store = cmp.Or(c.Store, "sqlite")
	c.RedisPrefix = cmp.Or(c.RedisPrefix, "tollgate:")
	c.PublicURL = strings.TrimSuffix(cmp.Or(c.PublicURL, "http://"+c.Listen), "/")
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
		r.Timeout = cmp.Or(r.Timeout, 300*time.Second)
		r.MaxBody = cmp.Or(r.MaxBody, "10MiB")
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

	m := &c.Metering
	m.UnknownCharge = cmp.Or(m.UnknownCharge, "reserved")
	m.FlushInterval = cmp.Or(m.FlushInterval, 20*time.Millisecond)
	m.MaxBatch = cmp.Or(m.MaxBatch, 512)
}

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
