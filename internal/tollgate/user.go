package tollgate

import (
	"context"
	"time"
)

// Tenant is an organisation that users belong to; budgets and routing may
// apply per tenant.
type Tenant struct {
	ID   string
	Name string
	// Disabled tenants' users cannot authenticate: no login, token, API
	// key or session of theirs is accepted until the tenant is enabled.
	Disabled  bool
	CreatedAt time.Time
	UpdatedAt time.Time
}

// TenantUpdate names the fields of a tenant to change; nil fields stay.
type TenantUpdate struct {
	Name     *string
	Disabled *bool
}

// ApplyUpdate sets the fields upd names.
func (t *Tenant) ApplyUpdate(upd TenantUpdate) {
	if upd.Name != nil {
		t.Name = *upd.Name
	}
	if upd.Disabled != nil {
		t.Disabled = *upd.Disabled
	}
}

// User is an account of the gateway's own identity provider.
type User struct {
	ID           string
	Name         string // unique login name
	TenantID     string
	Role         string
	Plan         string // empty: the configured default plan
	PasswordHash string // argon2id PHC string; empty: cannot log in with a password
	Disabled     bool
	// TokensValidAfter: tokens issued before this instant are invalid
	// ("revoke all of a user's tokens"). Zero when never set.
	TokensValidAfter time.Time
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// UserUpdate names the fields of a user to change; nil fields stay.
type UserUpdate struct {
	Role             *string
	Plan             *string
	PasswordHash     *string
	Disabled         *bool
	TokensValidAfter *time.Time
}

// TenantStore keeps tenants.
type TenantStore interface {
	// CreateTenant stores t; ID and CreatedAt are set when empty.
	// EConflict if the ID or name exists, EInvalid if the name is empty.
	CreateTenant(ctx context.Context, t *Tenant) error
	// Tenant returns a tenant by ID or by name. ENotFound if absent.
	Tenant(ctx context.Context, idOrName string) (*Tenant, error)
	// Tenants lists all tenants ordered by name.
	Tenants(ctx context.Context) ([]*Tenant, error)
	// UpdateTenant applies upd to the tenant with this ID, sets UpdatedAt
	// and returns the new tenant. ENotFound if absent, EInvalid for an
	// empty name, EConflict if another tenant has the name.
	UpdateTenant(ctx context.Context, id string, upd TenantUpdate) (*Tenant, error)
}

// UserStore keeps users.
type UserStore interface {
	// CreateUser stores u; ID, CreatedAt and UpdatedAt are set when empty.
	// EConflict if the name exists, ENotFound if the tenant does not,
	// EInvalid if the name is empty.
	CreateUser(ctx context.Context, u *User) error
	// User returns a user by ID. ENotFound if absent.
	User(ctx context.Context, id string) (*User, error)
	// UserByName returns a user by login name. ENotFound if absent.
	UserByName(ctx context.Context, name string) (*User, error)
	// Users lists users ordered by name; tenantID "" lists all tenants.
	Users(ctx context.Context, tenantID string) ([]*User, error)
	// UpdateUser applies upd and returns the new user. ENotFound if absent.
	UpdateUser(ctx context.Context, id string, upd UserUpdate) (*User, error)
	// DeleteUser removes a user with its API keys and refresh tokens; its
	// usage records stay. ENotFound if absent.
	DeleteUser(ctx context.Context, id string) error
}
