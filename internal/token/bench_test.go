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

// BenchmarkVerifyParallel: cache hits from all cores at once (shared
// shard and denylist locks).
func BenchmarkVerifyParallel(b *testing.B) {
	ctx := context.Background()
	f := setup(b, setupOpts{alg: token.ES256, realClock: true})
	toks := make([]string, 64)
	for i := range toks {
		toks[i] = f.mustIssue(b, aliceClaims)
		if _, err := f.verifier.Verify(ctx, toks[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := f.verifier.Verify(ctx, toks[i%len(toks)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
