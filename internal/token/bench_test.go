package token_test

import (
	"context"
	"testing"

	"github.com/tollgate/tollgate/internal/token"
)

// BenchmarkVerify: cold is a full verification (cache disabled), warm a
// cache hit (which still consults the denylist).
func BenchmarkVerify(b *testing.B) {
	ctx := context.Background()
	for _, alg := range []string{token.ES256, token.EdDSA, token.RS256} {
		b.Run(alg, func(b *testing.B) {
			for _, mode := range []string{"cold", "warm"} {
				b.Run(mode, func(b *testing.B) {
					size := -1
					if mode == "warm" {
						size = 0 // default size
					}
					f := setup(b, setupOpts{alg: alg, cacheSize: size, realClock: true})
					tok := f.mustIssue(b, aliceClaims)
					if _, err := f.verifier.Verify(ctx, tok); err != nil {
						b.Fatal(err)
					}
					b.ReportAllocs()
					for b.Loop() {
						if _, err := f.verifier.Verify(ctx, tok); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}

func BenchmarkIssue(b *testing.B) {
	ctx := context.Background()
	for _, alg := range []string{token.ES256, token.EdDSA, token.RS256} {
		b.Run(alg, func(b *testing.B) {
			f := setup(b, setupOpts{alg: alg, realClock: true})
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := f.issuer.Issue(ctx, aliceClaims); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
