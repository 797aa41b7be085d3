package auth

import (
	"context"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// TenantStores are the stores a tenant's disabling writes: the gateway's
// store, or the transaction of an audited change (tollgate.AuditTx).
type TenantStores interface {
	Stores
	Tenants() tollgate.TenantStore
}

// SetTenantDisabledIn disables or enables a tenant in st. Disabling
// refuses every login, token, API key and session of its users, on every
// replica within a second, and revokes its users' tokens and sessions, so
// enabling it again brings their API keys back but makes them log in
// anew. The returned Commit applies the change once st's transaction
// commits.
func (s *Service) SetTenantDisabledIn(ctx context.Context, st TenantStores, tenantID string, disabled bool) (*tollgate.Tenant, Commit, error) {
	t, err := st.Tenants().UpdateTenant(ctx, tenantID, tollgate.TenantUpdate{Disabled: &disabled})
	if err != nil {
		return nil, nil, err
	}
	dl := s.opts.Verifier.Denylist()
	if !disabled {
		return t, func(ctx context.Context) {
			dl.EnableTenant(t.ID)
			s.publish(ctx, tollgate.Event{Kind: tollgate.EventEnableTenant, TenantID: t.ID})
		}, nil
	}
	users, err := st.Users().Users(ctx, t.ID)
	if err != nil {
		return nil, nil, err
	}
	revokes := make([]Commit, 0, len(users))
	for _, u := range users {
		revoke, err := s.RevokeUserIn(ctx, st, u.ID)
		if err != nil {
			return nil, nil, err
		}
		revokes = append(revokes, revoke)
	}
	return t, func(ctx context.Context) {
		dl.DisableTenant(t.ID)
		s.publish(ctx, tollgate.Event{Kind: tollgate.EventDisableTenant, TenantID: t.ID})
		for _, revoke := range revokes {
			revoke(ctx)
		}
	}, nil
}

// blocked reports whether u may not authenticate: the user or its tenant
// is disabled.
func (s *Service) blocked(u *tollgate.User) bool {
	return u.Disabled || s.opts.Verifier.Denylist().TenantDisabled(u.TenantID)
}
