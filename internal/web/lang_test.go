package web

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestAcceptLanguage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		header string
		want   lang
	}{
		{"", langEN},
		{"zh-CN,zh;q=0.9,en;q=0.8", langZH},
		{"en-US,en;q=0.9,zh-CN;q=0.8", langEN},
		{"fr-FR,zh;q=0.5", langZH},
		{"fr-FR,de;q=0.5", langEN},
		{"zh-TW", langEN}, // Traditional Chinese is not offered
		{"zh-Hans-CN;q=0.7,en;q=0.6", langZH},
		{"en;q=0.2,zh-CN;q=0.9", langZH},
		{"zh-CN;q=bogus,en", langEN},
	} {
		if got := acceptLanguage(tc.header); got != tc.want {
			t.Errorf("Accept-Language %q: %s, want %s", tc.header, got, tc.want)
		}
	}
}

func TestChooseLang(t *testing.T) {
	t.Parallel()
	t.Run("query wins and is remembered", func(t *testing.T) {
		r := httptest.NewRequest("GET", "/ui/?lang=zh-CN", nil)
		r.Header.Set("Accept-Language", "en")
		w := httptest.NewRecorder()
		if got := chooseLang(w, r); got != langZH {
			t.Fatalf("got %s", got)
		}
		c := w.Result().Cookies()
		if len(c) != 1 || c[0].Name != langCookie || c[0].Value != "zh-CN" || !c[0].HttpOnly {
			t.Fatalf("cookie %v", c)
		}
		r = httptest.NewRequest("GET", "/ui/", nil)
		r.Header.Set("Accept-Language", "en")
		r.AddCookie(c[0])
		if got := chooseLang(httptest.NewRecorder(), r); got != langZH {
			t.Errorf("with the cookie: %s, want zh-CN", got)
		}
	})
	t.Run("unknown query changes nothing", func(t *testing.T) {
		r := httptest.NewRequest("GET", "/ui/?lang=xx", nil)
		r.AddCookie(&http.Cookie{Name: langCookie, Value: "zh-CN"})
		w := httptest.NewRecorder()
		if got := chooseLang(w, r); got != langZH || len(w.Result().Cookies()) != 0 {
			t.Errorf("got %s, cookies %v", got, w.Result().Cookies())
		}
	})
}

// TestMessagesComplete: every text has both languages.
func TestMessagesComplete(t *testing.T) {
	t.Parallel()
	for l := range messages {
		for k := range messages[langEN] {
			if _, ok := messages[l][k]; !ok {
				t.Errorf("%s lacks %q", l, k)
			}
		}
		for k := range messages[l] {
			if _, ok := messages[langEN][k]; !ok {
				t.Errorf("%s has %q, English does not", l, k)
			}
		}
	}
}

func TestAPIAllowed(t *testing.T) {
	t.Parallel()
	for path, want := range map[string]bool{
		"/v1/me": true, "/v1/me/usage": true, "/v1/me/keys/abc": true, "/admin/v1/users": true,
		"/v1/predictions/x/cancel": true, "/v1/webhooks/default/secret": true,
		"/v1/chat/completions": false, "/app/x": false, "/v1/models": false, "/admin/v2/x": false, "/v1/me2": false,
	} {
		if got := apiAllowed(path); got != want {
			t.Errorf("apiAllowed(%q) = %v", path, got)
		}
	}
}
