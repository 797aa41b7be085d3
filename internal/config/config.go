// Package config holds tollgate's configuration: one documented struct,
// its defaults, YAML loading and validation. Every field says its default;
// Load fills defaults and validates before anything starts, and an error
// names the key and what is wrong with it.
package config

import "time"

// Config is the whole configuration file.
type Config struct {
	// Listen is the address the gateway serves on. Defaults to 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// DataDir holds the SQLite store and generated files. Defaults to
	// ./tollgate-data.
	DataDir string `yaml:"data_dir"`
	// Store is "sqlite" (embedded, in DataDir) or a postgres:// URL for
	// cluster mode. Defaults to sqlite.
	Store string `yaml:"store"`
	// Redis is a redis:// URL for cluster mode; empty keeps rate limits,
	// revocation fan-out and live counters in process. Defaults to "".
	Redis string `yaml:"redis"`
	// RedisPrefix starts every Redis key and channel, so deployments
	// sharing one Redis never collide. Defaults to "tollgate:".
	RedisPrefix string `yaml:"redis_prefix"`
	// Results is where job results are kept: "" for files under
	// DataDir/results, or an s3:// URL for cluster mode,
	// s3://bucket/prefix?endpoint=host:port&secure=false&region=R&create_bucket=true
	// (credentials from the URL's userinfo or AWS_ACCESS_KEY_ID and
	// AWS_SECRET_ACCESS_KEY). Defaults to "".
	Results string `yaml:"results"`
	// PublicURL is the gateway's external URL and the issuer (iss) of its
	// tokens. Defaults to http://<listen>.
	PublicURL string `yaml:"public_url"`
	// Currency is the ISO code money is kept in. Defaults to USD.
	Currency string `yaml:"currency"`
	// DefaultPlan is the plan of users who name none. Defaults to "free",
	// which exists even when Plans does not define it.
	DefaultPlan string `yaml:"default_plan"`

	Tokens         Tokens          `yaml:"tokens"`
	TrustedIssuers []TrustedIssuer `yaml:"trusted_issuers"`
	Roles          map[string]Role `yaml:"roles"`
	Plans          map[string]Plan `yaml:"plans"`
	Routes         []Route         `yaml:"routes"`
	Headers        Headers         `yaml:"headers"`
	Server         Server          `yaml:"server"`
	Protection     Protection      `yaml:"protection"`
	Metering       Metering        `yaml:"metering"`
	Webhooks       []Webhook       `yaml:"webhooks"`
	// Jobs are the job models of the predictions API (see jobs.go).
	Jobs []JobModel `yaml:"jobs"`
	// WebhookAllowPrivate lets prediction webhooks go to loopback and
	// private addresses. Defaults to false.
	WebhookAllowPrivate bool `yaml:"webhook_allow_private"`

	// TLS serves HTTPS (with HTTP/2) on Listen. Defaults to off.
	TLS TLS `yaml:"tls"`
	// ListenHTTP, with TLS on, is a plain HTTP address (e.g. :80) that
	// redirects to HTTPS and answers ACME HTTP-01 challenges. Defaults to
	// "" (none).
	ListenHTTP string `yaml:"listen_http"`
	// Login configures browser sessions (the /login page and its cookie).
	Login Login `yaml:"login"`
}

// TLS configures HTTPS: certificate files, or certificates obtained by ACME.
type TLS struct {
	// CertFile is a PEM certificate chain; reloaded when the file changes.
	// Defaults to "" (no file).
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of CertFile. Defaults to "".
	KeyFile string `yaml:"key_file"`
	// ACME obtains and renews certificates instead. Defaults to off.
	ACME ACME `yaml:"acme"`
	// HSTSMaxAge of the Strict-Transport-Security header sent on HTTPS;
	// a negative value sends none. Defaults to 8760h (one year).
	HSTSMaxAge time.Duration `yaml:"hsts_max_age"`
}

// ACME obtains certificates from an ACME CA (Let's Encrypt by default).
type ACME struct {
	// Domains to obtain certificates for. Required to use ACME.
	Domains []string `yaml:"domains"`
	// Email is the ACME account's contact. Defaults to "".
	Email string `yaml:"email"`
	// CA is the ACME directory URL. Defaults to Let's Encrypt production.
	CA string `yaml:"ca"`
	// CARoot is a PEM file of the root that a private ACME CA's own HTTPS
	// endpoint is signed by. Defaults to "" (system roots).
	CARoot string `yaml:"ca_root"`
}

// Enabled reports whether HTTPS is configured.
func (t TLS) Enabled() bool { return t.CertFile != "" || len(t.ACME.Domains) > 0 }

// Login configures browser sessions.
type Login struct {
	// CookieName is the session cookie's name. Defaults to tollgate_session.
	CookieName string `yaml:"cookie_name"`
	// Password enables the username/password form at /login. Defaults to
	// true.
	Password *bool `yaml:"password"`
}

// Tokens configures the gateway's own tokens.
type Tokens struct {
	// Algorithm signs access tokens: ES256, EdDSA or RS256. Defaults to ES256.
	Algorithm string `yaml:"algorithm"`
	// Audience is the aud of issued tokens and the one required of them.
	// Defaults to "tollgate".
	Audience string `yaml:"audience"`
	// AccessTTL is the access-token lifetime. Defaults to 15m.
	AccessTTL time.Duration `yaml:"access_ttl"`
	// RefreshIdleTTL: a refresh token unused this long dies. Defaults to 24h.
	RefreshIdleTTL time.Duration `yaml:"refresh_idle_ttl"`
	// RefreshTTL is the absolute lifetime of a refresh-token family.
	// Defaults to 720h (30 days).
	RefreshTTL time.Duration `yaml:"refresh_ttl"`
	// Leeway tolerated on exp, nbf and iat; at most 60s. Defaults to 30s.
	Leeway time.Duration `yaml:"leeway"`
	// RotationDelay: a rotated key is published this long before it signs,
	// so every replica and client cache has it. Defaults to 10m.
	RotationDelay time.Duration `yaml:"rotation_delay"`
	// KeyPassphraseFile holds the passphrase that encrypts private keys at
	// rest; the TOLLGATE_KEY_PASSPHRASE environment variable wins over it.
	// Defaults to "" (keys stored unencrypted, file mode 0600 / DB only).
	KeyPassphraseFile string `yaml:"key_passphrase_file"`
	// CacheSize is the number of verified tokens kept so a repeated token
	// costs no signature check. Defaults to 100000.
	CacheSize int `yaml:"cache_size"`
}

// TrustedIssuer is an external identity provider whose tokens are accepted.
type TrustedIssuer struct {
	// Issuer is the exact iss. Required.
	Issuer string `yaml:"issuer"`
	// JWKSURL is where its keys are fetched. Required.
	JWKSURL string `yaml:"jwks_url"`
	// Audience is the aud required of its tokens. Required.
	Audience string `yaml:"audience"`
	// Algorithms allowed for its tokens. Defaults to [RS256].
	Algorithms []string `yaml:"algorithms"`
	// Typ, when set, is the typ header its tokens must carry.
	Typ string `yaml:"typ"`
	// Claims maps tollgate's claims (tenant_id, role, scope, plan) to claim
	// paths of the issuer's tokens, dot-separated. Defaults to identity.
	Claims map[string]string `yaml:"claims"`
	// DefaultPlan for its users when no claim names one. Defaults to the
	// global default plan.
	DefaultPlan string `yaml:"default_plan"`
	// DefaultRole when no claim names one. Defaults to "user".
	DefaultRole string `yaml:"default_role"`
	// DefaultTenant when no claim names one. Defaults to the issuer URL.
	DefaultTenant string `yaml:"default_tenant"`
	// RefreshInterval bounds how often keys are refetched for an unknown
	// kid. Defaults to 1m.
	RefreshInterval time.Duration `yaml:"refresh_interval"`
	// MaxStale: keys are still used this long after the IdP stops answering.
	// Defaults to 24h.
	MaxStale time.Duration `yaml:"max_stale"`
	// Login offers sign-in with this issuer on /login (OpenID Connect
	// authorization code flow with PKCE). Defaults to false.
	Login bool `yaml:"login"`
	// ClientID is tollgate's client at the issuer; the audience of its ID
	// tokens. Required with Login.
	ClientID string `yaml:"client_id"`
	// ClientSecret of ClientID; ${VAR} reads the environment. Defaults to
	// "" (a public client, PKCE only).
	ClientSecret string `yaml:"client_secret"`
	// LoginName is the button's label on /login. Defaults to the issuer's
	// host.
	LoginName string `yaml:"login_name"`
}

// Role grants scopes.
type Role struct {
	// Scopes granted to the role; "*" grants every scope.
	Scopes []string `yaml:"scopes"`
}

// Plan is a commercial plan: extra scopes, limits and a budget.
type Plan struct {
	// Scopes added to those of the user's role.
	Scopes []string `yaml:"scopes"`
	// RateLimit is "N/s", "N/m" or "N/h" per user; empty is unlimited.
	RateLimit string `yaml:"rate_limit"`
	// TenantRateLimit is the same per tenant; empty is unlimited.
	TenantRateLimit string `yaml:"tenant_rate_limit"`
	// Concurrency caps requests or jobs in flight per user; 0 is unlimited.
	Concurrency int `yaml:"concurrency"`
	// TenantConcurrency caps them per tenant; 0 is unlimited.
	TenantConcurrency int `yaml:"tenant_concurrency"`
	// Budget is a hard spending limit per user; nil is unlimited.
	Budget *Budget `yaml:"budget"`
	// TenantBudget is a hard spending limit per tenant; nil is unlimited.
	TenantBudget *Budget `yaml:"tenant_budget"`
	// FreeUnits included per billing period, by unit name (requests,
	// input_tokens, output_tokens, images, megapixels, audio_seconds,
	// gpu_seconds).
	FreeUnits map[string]int64 `yaml:"free_units"`
	// Priority orders jobs: a higher one starts first. Defaults to 0.
	Priority int `yaml:"priority"`
	// MaxQueued caps a user's jobs waiting to start; 0 is unlimited.
	// Defaults to 0.
	MaxQueued int `yaml:"max_queued"`
	// Nodes narrow the node classes the plan's users may run on comfyui
	// routes, on top of each route's own nodes. Defaults to every class.
	Nodes NodeRules `yaml:"nodes"`
}

// Budget is a spending limit over a period.
type Budget struct {
	// Amount as a decimal string in the configured currency, e.g. "5.00".
	Amount string `yaml:"amount"`
	// Period is day or month (calendar, UTC) or total (a credit). Defaults
	// to month.
	Period string `yaml:"period"`
	// Alerts are soft thresholds in percent that post webhooks and log.
	// Defaults to [80, 100].
	Alerts []int `yaml:"alerts"`
}

// Headers names the identity headers sent upstream. Every one of them is
// deleted from incoming requests before it is set.
type Headers struct {
	UserID    string `yaml:"user_id"`    // Defaults to X-User-ID.
	TenantID  string `yaml:"tenant_id"`  // Defaults to X-Tenant-ID.
	Role      string `yaml:"role"`       // Defaults to X-User-Role.
	Scopes    string `yaml:"scopes"`     // Defaults to X-User-Scopes.
	Plan      string `yaml:"plan"`       // Defaults to X-User-Plan.
	RequestID string `yaml:"request_id"` // Defaults to X-Request-ID.
	// InternalToken carries the short-lived internal token on routes that
	// ask for one. Defaults to X-Tollgate-Token.
	InternalToken string `yaml:"internal_token"`
	// StripCookies names cookies (e.g. a gateway session cookie) that are
	// removed from every forwarded request. Defaults to none.
	StripCookies []string `yaml:"strip_cookies"`
}

// Server configures the listener and its protection against slow or
// hostile clients.
type Server struct {
	// ReadHeaderTimeout bounds a request head; a new connection's first
	// head is due this long after the accept, so a connection that sends
	// nothing is closed then. Defaults to 10s.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// IdleTimeout bounds the wait for the next request on a keep-alive
	// connection. Defaults to 120s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes. Defaults to 65536.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxConnections accepted at once; 0 is unlimited. Defaults to 10000.
	MaxConnections int `yaml:"max_connections"`
	// DrainTimeout: on SIGTERM in-flight requests get this long. Defaults
	// to 30s.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// TrustedProxies are CIDRs whose X-Forwarded-For / Forwarded headers are
	// believed. Defaults to none.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// AccessLog writes one JSON line per request. Defaults to true.
	AccessLog *bool `yaml:"access_log"`
}

// Protection configures abuse protection.
type Protection struct {
	// IPRateLimit applies per client IP on every route; "off" disables it.
	// Defaults to 100/s.
	IPRateLimit string `yaml:"ip_rate_limit"`
	// LoginRateLimit applies per client IP on /auth/login and /oauth/token;
	// "off" disables it. Defaults to 10/m.
	LoginRateLimit string `yaml:"login_rate_limit"`
	// LoginBackoffMax caps the per-account back-off after failed logins.
	// Defaults to 5m.
	LoginBackoffMax time.Duration `yaml:"login_backoff_max"`
	// BanThreshold invalid tokens from one IP within BanWindow ban it for
	// BanDuration. Defaults to 50, 1m, 15m.
	BanThreshold int           `yaml:"ban_threshold"`
	BanWindow    time.Duration `yaml:"ban_window"`
	BanDuration  time.Duration `yaml:"ban_duration"`
	// RedisFailure is "local" (each replica limits at limit ÷ Replicas while
	// Redis is down) or "refuse". Defaults to local.
	RedisFailure string `yaml:"redis_failure"`
	// Replicas is the replica count assumed for the local fallback.
	// Defaults to 1.
	Replicas int `yaml:"replicas"`
}

// Metering configures the usage ledger.
type Metering struct {
	// UnknownCharge is how a record left open by a killed process is
	// charged at the next start: "reserved" (its reservation) or "none".
	// Defaults to reserved.
	UnknownCharge string `yaml:"unknown_charge"`
	// FlushInterval of the group commit. Defaults to 20ms.
	FlushInterval time.Duration `yaml:"flush_interval"`
	// MaxBatch records per group commit. Defaults to 512.
	MaxBatch int `yaml:"max_batch"`
	// LeaseTTL is how long a replica's lease lasts in cluster mode; it is
	// renewed every third of it, and when it expires another replica
	// reconciles the records it left open. Defaults to 15s.
	LeaseTTL time.Duration `yaml:"lease_ttl"`
}

// Webhook receives budget alerts.
type Webhook struct {
	// URL to POST JSON to. Required.
	URL string `yaml:"url"`
	// Events to send; empty sends all.
	Events []string `yaml:"events"`
}
