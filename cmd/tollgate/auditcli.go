package main

import (
	"cmp"
	"context"
	"fmt"
	"os/user"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// auditCLI returns e with every change a command makes through its user,
// tenant, API key and ban stores stored together with its audit event, in
// one transaction (actor "cli", with the operating-system user). Budget
// changes, which the ledger makes outside that transaction, are recorded
// before they run, and refused when that record cannot be stored.
func auditCLI(e *engines) *engines {
	a := cliAuditor{audit: e.Audit, name: "cli"}
	if u, err := user.Current(); err == nil {
		a.name = "cli:" + u.Username
	}
	out := *e
	out.Store = &cliStore{Store: e.Store, a: a}
	out.Bans = &cliBans{BanStore: e.Bans, a: a}
	out.Ledger = &cliLedger{ledger: e.Ledger, a: a}
	return &out
}

// cliAuditor makes audited changes for the command line.
type cliAuditor struct {
	audit tollgate.AuditStore
	name  string
}

// change runs fn in a transaction with the event of action on target.
func (a cliAuditor) change(ctx context.Context, action, target, detail string, fn func(tx tollgate.AuditTx) error) error {
	ev := &tollgate.AuditEvent{Actor: "cli", ActorName: a.name, Action: action, Target: target, Detail: detail, Outcome: tollgate.AuditOutcomeOK}
	return a.audit.Audited(ctx, ev, fn)
}

type cliStore struct {
	tollgate.Store
	a cliAuditor
}

func (s *cliStore) Tenants() tollgate.TenantStore {
	return &cliTenants{TenantStore: s.Store.Tenants(), a: s.a}
}
func (s *cliStore) Users() tollgate.UserStore { return &cliUsers{UserStore: s.Store.Users(), a: s.a} }
func (s *cliStore) APIKeys() tollgate.APIKeyStore {
	return &cliKeys{APIKeyStore: s.Store.APIKeys(), a: s.a}
}

type cliTenants struct {
	tollgate.TenantStore
	a cliAuditor
}

func (s *cliTenants) CreateTenant(ctx context.Context, t *tollgate.Tenant) error {
	return s.a.change(ctx, tollgate.AuditTenantCreate, t.ID, "name "+t.Name, func(tx tollgate.AuditTx) error {
		return tx.Tenants().CreateTenant(ctx, t)
	})
}

// UpdateTenant renames, disables or enables a tenant, audited. Disabling
// also revokes every token and session of the tenant's users in the same
// transaction, as the admin API does; running gateways refuse the users'
// credentials from their next reload of the store (within a second).
func (s *cliTenants) UpdateTenant(ctx context.Context, id string, upd tollgate.TenantUpdate) (*tollgate.Tenant, error) {
	action, detail := tollgate.AuditTenantUpdate, ""
	switch {
	case upd.Disabled != nil && *upd.Disabled:
		action = tollgate.AuditTenantDisable
	case upd.Disabled != nil:
		action = tollgate.AuditTenantEnable
	case upd.Name != nil:
		detail = "name " + *upd.Name
	}
	var t *tollgate.Tenant
	err := s.a.change(ctx, action, id, detail, func(tx tollgate.AuditTx) error {
		var err error
		if t, err = tx.Tenants().UpdateTenant(ctx, id, upd); err != nil || action != tollgate.AuditTenantDisable {
			return err
		}
		users, err := tx.Users().Users(ctx, id)
		if err != nil {
			return err
		}
		mark := time.Now().Truncate(time.Second).Add(time.Second)
		for _, u := range users {
			if _, err := tx.Users().UpdateUser(ctx, u.ID, tollgate.UserUpdate{TokensValidAfter: &mark}); err != nil {
				return err
			}
			if err := tx.RefreshTokens().RevokeUserRefreshTokens(ctx, u.ID); err != nil {
				return err
			}
		}
		return nil
	})
	return t, err
}

type cliUsers struct {
	tollgate.UserStore
	a cliAuditor
}

func (s *cliUsers) CreateUser(ctx context.Context, u *tollgate.User) error {
	ev := &tollgate.AuditEvent{Actor: "cli", ActorName: s.a.name, Action: tollgate.AuditUserCreate, Outcome: tollgate.AuditOutcomeOK,
		Detail: fmt.Sprintf("name=%s tenant=%s role=%s plan=%s", u.Name, u.TenantID, u.Role, u.Plan)}
	return s.a.audit.Audited(ctx, ev, func(tx tollgate.AuditTx) error {
		err := tx.Users().CreateUser(ctx, u)
		ev.Target = u.ID // set by the store; the event is stored after the change
		return err
	})
}

func (s *cliUsers) UpdateUser(ctx context.Context, id string, upd tollgate.UserUpdate) (*tollgate.User, error) {
	action, detail := userUpdateAction(upd)
	var u *tollgate.User
	err := s.a.change(ctx, action, id, detail, func(tx tollgate.AuditTx) error {
		var err error
		u, err = tx.Users().UpdateUser(ctx, id, upd)
		return err
	})
	return u, err
}

// userUpdateAction names a user update for the audit trail.
func userUpdateAction(upd tollgate.UserUpdate) (action, detail string) {
	switch {
	case upd.Disabled != nil && *upd.Disabled:
		return tollgate.AuditUserDisable, ""
	case upd.Disabled != nil:
		return tollgate.AuditUserEnable, ""
	case upd.Role == nil && upd.Plan == nil && upd.PasswordHash == nil && upd.TokensValidAfter != nil:
		return tollgate.AuditUserRevoke, ""
	}
	var changed []string
	if upd.Role != nil {
		changed = append(changed, "role="+*upd.Role)
	}
	if upd.Plan != nil {
		changed = append(changed, "plan="+*upd.Plan)
	}
	if upd.PasswordHash != nil {
		changed = append(changed, "password changed")
	}
	return tollgate.AuditUserUpdate, strings.Join(changed, " ")
}

type cliKeys struct {
	tollgate.APIKeyStore
	a cliAuditor
}

func (s *cliKeys) CreateAPIKey(ctx context.Context, k *tollgate.APIKey) error {
	return s.a.change(ctx, tollgate.AuditKeyCreate, k.ID, "user "+k.UserID+" name "+k.Name, func(tx tollgate.AuditTx) error {
		return tx.APIKeys().CreateAPIKey(ctx, k)
	})
}

func (s *cliKeys) RevokeAPIKey(ctx context.Context, id string) error {
	return s.a.change(ctx, tollgate.AuditKeyRevoke, id, "", func(tx tollgate.AuditTx) error {
		return tx.APIKeys().RevokeAPIKey(ctx, id)
	})
}

type cliBans struct {
	tollgate.BanStore
	a cliAuditor
}

func (s *cliBans) PutBan(ctx context.Context, b *tollgate.Ban) error {
	return s.a.change(ctx, tollgate.AuditBanAdd, b.IP, "until "+b.Until.UTC().Format(time.RFC3339)+" "+b.Reason, func(tx tollgate.AuditTx) error {
		return tx.Bans().PutBan(ctx, b)
	})
}

func (s *cliBans) DeleteBan(ctx context.Context, ip string) error {
	return s.a.change(ctx, tollgate.AuditBanLift, ip, "", func(tx tollgate.AuditTx) error {
		return tx.Bans().DeleteBan(ctx, ip)
	})
}

type cliLedger struct {
	ledger
	a cliAuditor
}

// budget records a budget change before it runs (refusing it when that
// record cannot be stored) and its outcome after, best-effort.
func (l *cliLedger) budget(ctx context.Context, target, detail string, fn func() error) error {
	ev := &tollgate.AuditEvent{Actor: "cli", ActorName: l.a.name, Action: tollgate.AuditAdminChange, Target: target, Detail: detail, Outcome: "requested"}
	if err := l.a.audit.AppendAudit(ctx, ev); err != nil {
		return fmt.Errorf("the audit trail cannot be written, so the budget was not changed: %w", err)
	}
	err := fn()
	done := *ev
	done.ID, done.At = "", time.Time{}
	done.Outcome, done.Reason = cmp.Or(tollgate.ErrorCode(err), tollgate.AuditOutcomeOK), tollgate.ErrorMessage(err)
	_ = l.a.audit.AppendAudit(ctx, &done) // best-effort: the change is made
	return err
}

func (l *cliLedger) SetBudget(ctx context.Context, b *tollgate.BudgetOverride) error {
	return l.budget(ctx, "budget "+string(b.Scope)+"/"+b.ID, "set "+b.Amount.String()+" per "+b.Period, func() error {
		return l.ledger.SetBudget(ctx, b)
	})
}

func (l *cliLedger) DeleteBudget(ctx context.Context, scope tollgate.BudgetScope, id string) error {
	return l.budget(ctx, "budget "+string(scope)+"/"+id, "clear", func() error {
		return l.ledger.DeleteBudget(ctx, scope, id)
	})
}
