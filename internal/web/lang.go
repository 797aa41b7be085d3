package web

import (
	"net/http"
	"strconv"
	"strings"
)

// lang is a language the pages speak: "en" or "zh-CN".
type lang string

const (
	langEN lang = "en"
	langZH lang = "zh-CN"
)

// langCookie remembers the language chosen with ?lang=.
const langCookie = "tollgate_lang"

// parseLang maps a language tag to one the pages speak; ok is false for
// any other language.
func parseLang(tag string) (lang, bool) {
	tag = strings.ToLower(strings.TrimSpace(tag))
	switch {
	case tag == "en" || strings.HasPrefix(tag, "en-"):
		return langEN, true
	case tag == "zh" || tag == "zh-cn" || tag == "zh-hans" || strings.HasPrefix(tag, "zh-hans-") || tag == "zh-sg":
		return langZH, true
	}
	return "", false
}

// chooseLang picks the page's language: ?lang= (then remembered in a
// cookie), else the cookie, else the best of Accept-Language, else
// English.
func chooseLang(w http.ResponseWriter, r *http.Request) lang {
	if q := r.URL.Query().Get("lang"); q != "" {
		if l, ok := parseLang(q); ok {
			http.SetCookie(w, &http.Cookie{Name: langCookie, Value: string(l), Path: "/ui/", MaxAge: 365 * 24 * 3600,
				HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
			return l
		}
	}
	if c, err := r.Cookie(langCookie); err == nil {
		if l, ok := parseLang(c.Value); ok {
			return l
		}
	}
	return acceptLanguage(r.Header.Get("Accept-Language"))
}

// acceptLanguage returns the language of the highest-weighted tag the
// pages speak, English when none.
func acceptLanguage(h string) lang {
	best, bestQ := langEN, 0.0
	for _, part := range strings.Split(h, ",") {
		tag, params, _ := strings.Cut(part, ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				continue
			}
			q = f
		}
		if l, ok := parseLang(tag); ok && q > bestQ {
			best, bestQ = l, q
		}
	}
	return best
}

// text is the translation of key, the English text when l lacks it, the
// key itself when both do.
func (l lang) text(key string) string {
	if s, ok := messages[l][key]; ok {
		return s
	}
	if s, ok := messages[langEN][key]; ok {
		return s
	}
	return key
}

// scriptStrings is every translation of l, for the pages' scripts (the
// template writes it as JSON).
func (l lang) scriptStrings() map[string]string {
	out := map[string]string{}
	for k := range messages[langEN] {
		out[k] = l.text(k)
	}
	return out
}
