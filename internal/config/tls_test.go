package config_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/tollgate/tollgate/internal/config"
)

// TestTLSAndLoginConfig: the defaults HTTPS and sessions bring, and the
// mistakes they refuse, each naming its key.
func TestTLSAndLoginConfig(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		cfg, err := config.Parse([]byte(`listen: 127.0.0.1:8443
tls: {cert_file: c.pem, key_file: k.pem}
routes:
  - {name: comfy, path: /comfy/, type: http, upstreams: [http://127.0.0.1:8188], cookie_auth: true}
  - {name: api, path: /api/, upstreams: [http://127.0.0.1:8000]}
`))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.PublicURL != "https://127.0.0.1:8443" {
			t.Errorf("public_url on TLS defaults to %q", cfg.PublicURL)
		}
		if cfg.Login.CookieName != "tollgate_session" || !*cfg.Login.Password || cfg.TLS.HSTSMaxAge.Hours() != 8760 {
			t.Errorf("login %+v, hsts %v", cfg.Login, cfg.TLS.HSTSMaxAge)
		}
		if !slices.Contains(cfg.Headers.StripCookies, "tollgate_session") {
			t.Errorf("strip_cookies %v lacks the session cookie", cfg.Headers.StripCookies)
		}
		if !cfg.Routes[0].CookieAuthOn() || cfg.Routes[1].CookieAuthOn() {
			t.Error("cookie_auth: the opted-in route or the default of an http route is wrong")
		}
		for typ, want := range map[string]bool{"comfyui": true, "gradio": true, "http": false, "openai": false} {
			if got := (&config.Route{Type: typ}).CookieAuthOn(); got != want {
				t.Errorf("cookie_auth default of type %s = %v", typ, got)
			}
		}
		off := false
		if (&config.Route{Type: "comfyui", CookieAuth: &off}).CookieAuthOn() {
			t.Error("cookie_auth: false on a comfyui route is ignored")
		}
	})
	for name, tc := range map[string]struct{ yaml, key string }{
		"cert without key":        {"tls: {cert_file: c.pem}\n", "tls: cert_file and key_file go together"},
		"files and acme":          {"tls: {cert_file: c.pem, key_file: k.pem, acme: {domains: [a.example]}}\n", "tls.acme:"},
		"bad domain":              {"tls: {acme: {domains: [\"https://a.example/\"]}}\n", "tls.acme.domains[0]"},
		"missing ca_root":         {"tls: {acme: {domains: [a.example], ca_root: /nonexistent/root.pem}}\n", "tls.acme.ca_root"},
		"listen_http without tls": {"listen_http: :80\n", "listen_http: needs tls"},
		"login without client_id": {"trusted_issuers: [{issuer: https://idp.example, jwks_url: https://idp.example/jwks, audience: tg, login: true}]\n", "trusted_issuers[0].client_id"},
		"bad cookie name":         {"login: {cookie_name: \"a b\"}\n", "login.cookie_name"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := config.Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.key) {
				t.Fatalf("error %v, want one naming %q", err, tc.key)
			}
		})
	}
	t.Run("client secret masked", func(t *testing.T) {
		cfg, err := config.Parse([]byte("trusted_issuers: [{issuer: https://idp.example, jwks_url: https://idp.example/jwks, audience: tg, login: true, client_id: tg, client_secret: very-secret-value}]\n"))
		if err != nil {
			t.Fatal(err)
		}
		out, _ := cfg.EffectiveYAML()
		if strings.Contains(string(out), "very-secret-value") {
			t.Errorf("effective config shows the client secret:\n%s", out)
		}
	})
}
