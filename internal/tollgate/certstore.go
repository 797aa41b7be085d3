package tollgate

import (
	"context"
	"time"
)

// CertStore keeps TLS material by key — ACME accounts, certificates, keys
// and challenge tokens, named like paths ("certificates/acme/a.example/
// a.example.crt") — and the locks that let one replica at a time obtain a
// certificate, so every replica of a cluster serves and renews the same
// certificates.
type CertStore interface {
	// PutCert stores value under key (replacing it), modified at now.
	PutCert(ctx context.Context, key string, value []byte, now time.Time) error
	// Cert returns the value under key and when it was stored. ENotFound.
	Cert(ctx context.Context, key string) ([]byte, time.Time, error)
	// DeleteCert removes key and every key below it (key + "/…").
	// ENotFound when there was none.
	DeleteCert(ctx context.Context, key string) error
	// CertKeys lists the keys below prefix (prefix + "/…"), every one of
	// them when prefix is "", ordered.
	CertKeys(ctx context.Context, prefix string) ([]string, error)
	// LockCert takes the lock name for owner until until, when it is free,
	// expired, or already owner's (then it is extended); it reports whether
	// owner holds it now.
	LockCert(ctx context.Context, name, owner string, until, now time.Time) (bool, error)
	// UnlockCert releases owner's lock name; a lock of another owner stays.
	UnlockCert(ctx context.Context, name, owner string) error
}
