package token_test

import (
	"context"
	"strings"
	"testing"
)

// FuzzVerify feeds the verifier valid tokens, every attack of TestJWTAttacks
// style and their mutations. It must never panic, and it may accept only
// the exact valid tokens it was seeded with: any other accepted string
// would be a forgery.
func FuzzVerify(f *testing.F) {
	e := newAttackEnv(f)
	valid := map[string]bool{}
	for _, tg := range []*target{e.own, e.ext} {
		tok := tg.valid(f)
		valid[tok] = true
		f.Add(tok)
		now := e.clock.Now().Unix()
		h, c := tg.header(), tg.claims()
		f.Add(tg.sign(f, with(h, "alg", "none"), c))
		f.Add(tg.sign(f, with(h, "crit", []string{"x"}), c))
		f.Add(tg.sign(f, with(h, "jku", e.attackerURL), c))
		f.Add(tg.sign(f, with(h, "kid", "../../../dev/null"), c))
		f.Add(tg.sign(f, h, with(c, "exp", "1999999999")))
		f.Add(tg.sign(f, h, with(c, "exp", now-3600)))
		f.Add(tg.sign(f, h, with(c, "sub", "a\x00b")))
		f.Add(tg.sign(f, h, `{"sub":"a","SUB":"admin"}`))
		f.Add(tg.sign(f, `{"alg":["ES256"]}`, c))
		f.Add(strings.TrimSuffix(tok, tok[strings.LastIndexByte(tok, '.')+1:]))
		f.Add(tok + "==")
		f.Add(tok + ".a.b")
		f.Add(malleate(f, tok))
	}
	f.Add("")
	f.Add("...")
	f.Add(`{"payload":"e30","signatures":[]}`)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := e.v.Verify(ctx, raw)
		if err == nil && !valid[raw] && !isMalleatedTwin(raw, valid) {
			t.Fatalf("accepted a token that was never signed: %q → %+v", raw, p)
		}
		if err != nil && p != nil {
			t.Fatal("principal returned with an error")
		}
	})
}

// isMalleatedTwin reports whether raw is a seeded token with s → n−s.
func isMalleatedTwin(raw string, valid map[string]bool) bool {
	for tok := range valid {
		i := strings.LastIndexByte(tok, '.')
		if strings.HasPrefix(raw, tok[:i+1]) {
			return true // same header and payload: only the signature differs
		}
	}
	return false
}
