package auth

import (
	"encoding/json"
	"net/http"
	"slices"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/httpx"
)

// discoveryDocument is the OpenID/OAuth metadata of the gateway.
func discoveryDocument(cfg *config.Config) []byte {
	base := cfg.PublicURL
	doc := map[string]any{
		"issuer":                                           base,
		"jwks_uri":                                         base + "/.well-known/jwks.json",
		"token_endpoint":                                   base + "/oauth/token",
		"revocation_endpoint":                              base + "/oauth/revoke",
		"userinfo_endpoint":                                base + "/v1/me",
		"grant_types_supported":                            []string{"refresh_token", "client_credentials"},
		"token_endpoint_auth_methods_supported":            []string{"client_secret_post", "client_secret_basic"},
		"response_types_supported":                         []string{"token"},
		"subject_types_supported":                          []string{"public"},
		"id_token_signing_alg_values_supported":            []string{cfg.Tokens.Algorithm},
		"token_endpoint_auth_signing_alg_values_supported": []string{cfg.Tokens.Algorithm},
		"access_token_signing_alg_values_supported":        []string{cfg.Tokens.Algorithm},
		"scopes_supported":                                 allScopes(cfg),
	}
	b, _ := json.Marshal(doc)
	return b
}

func allScopes(cfg *config.Config) []string {
	seen := map[string]bool{}
	var out []string
	for _, name := range sortedNames(cfg.Roles) {
		for _, s := range cfg.Roles[name].Scopes {
			if s != "*" && !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	for _, name := range sortedNames(cfg.Plans) {
		for _, s := range cfg.Plans[name].Scopes {
			if s != "*" && !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	return out
}

func (s *Service) discovery(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(s.discover)
}

func (s *Service) jwks(w http.ResponseWriter, _ *http.Request) {
	writeJWKS(w, s.opts.AccessKeys.JWKS())
}

func writeJWKS(w http.ResponseWriter, set []byte) {
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=60")
	_, _ = w.Write(set)
}

// me answers GET /v1/me: the caller's identity, plan, scopes, limits and
// budget state.
func (s *Service) me(w http.ResponseWriter, r *http.Request) error {
	p := PrincipalFrom(r.Context())
	plan := s.opts.Config.Plans[p.Plan]
	out := map[string]any{
		"user_id": p.UserID, "tenant_id": p.TenantID, "role": p.Role, "plan": p.Plan,
		"scopes": p.Scopes, "issuer": p.Issuer, "external": p.External,
		"limits": map[string]any{
			"rate_limit": plan.RateLimit, "tenant_rate_limit": plan.TenantRateLimit,
			"concurrency": plan.Concurrency, "tenant_concurrency": plan.TenantConcurrency,
		},
	}
	if !p.External {
		if u, err := s.opts.Store.Users().User(r.Context(), p.UserID); err == nil {
			out["username"] = u.Name
		}
	}
	if s.opts.Budget != nil {
		b, err := s.opts.Budget(r.Context(), p)
		if err != nil {
			return err
		}
		out["budget"] = b
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
