package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// AuditStore keeps the audit trail (migration 00040).
type AuditStore struct{ db *DB }

var _ tollgate.AuditStore = (*AuditStore)(nil)

// Audit returns the audit store.
func (db *DB) Audit() *AuditStore { return &AuditStore{db: db} }

// AppendAudit stores e.
func (s *AuditStore) AppendAudit(ctx context.Context, e *tollgate.AuditEvent) error {
	if err := e.Validate(); err != nil {
		return err
	}
	return s.insert(ctx, s.db.conn(), e)
}

func (s *AuditStore) insert(ctx context.Context, c conn, e *tollgate.AuditEvent) error {
	if e.At.IsZero() {
		e.At = s.db.stamp()
	}
	e.At = e.At.UTC().Truncate(time.Microsecond)
	var seq int64
	err := c.QueryRow(ctx,
		`INSERT INTO audit_events (at, actor, actor_name, action, target, outcome, reason, ip, detail)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING seq`,
		e.At, e.Actor, e.ActorName, e.Action, e.Target, e.Outcome, e.Reason, e.IP, e.Detail).Scan(&seq)
	if err != nil {
		return fmt.Errorf("append audit event: %w", err)
	}
	e.ID = strconv.FormatInt(seq, 10)
	return nil
}

// Audited runs change and stores e in one transaction.
func (s *AuditStore) Audited(ctx context.Context, e *tollgate.AuditEvent, change func(tollgate.AuditTx) error) error {
	if err := e.Validate(); err != nil {
		return err
	}
	if s.db.tx != nil {
		return fmt.Errorf("audited change: already in a transaction")
	}
	return s.db.withTx(ctx, func(tx pgx.Tx) error {
		if err := change(s.db.bound(tx)); err != nil {
			return err
		}
		return s.insert(ctx, tx, e)
	})
}

// AuditEvents returns the events q selects, newest first.
func (s *AuditStore) AuditEvents(ctx context.Context, q tollgate.AuditQuery) ([]*tollgate.AuditEvent, string, error) {
	if err := q.Validate(); err != nil {
		return nil, "", err
	}
	var where []string
	var args []any
	add := func(cond string, a any) {
		args = append(args, a)
		where = append(where, strings.ReplaceAll(cond, "$?", "$"+strconv.Itoa(len(args))))
	}
	if !q.From.IsZero() {
		add("at >= $?", q.From.UTC())
	}
	if !q.To.IsZero() {
		add("at < $?", q.To.UTC())
	}
	if q.Actor != "" {
		add("(actor = $? OR actor_name = $?)", q.Actor)
	}
	if p, ok := q.ActionPrefix(); ok {
		add("left(action, length($?::text)) = $?::text", p)
	} else if q.Action != "" {
		add("action = $?", q.Action)
	}
	if q.Cursor != "" {
		seq, _ := strconv.ParseInt(q.Cursor, 10, 64)
		add("seq < $?", seq)
	}
	query := `SELECT seq, at, actor, actor_name, action, target, outcome, reason, ip, detail FROM audit_events`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, q.Limit+1)
	query += " ORDER BY seq DESC LIMIT $" + strconv.Itoa(len(args))
	rows, err := s.db.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list audit events: %w", err)
	}
	defer rows.Close()
	var out []*tollgate.AuditEvent
	for rows.Next() {
		var e tollgate.AuditEvent
		var seq int64
		if err := rows.Scan(&seq, &e.At, &e.Actor, &e.ActorName, &e.Action, &e.Target, &e.Outcome, &e.Reason, &e.IP, &e.Detail); err != nil {
			return nil, "", fmt.Errorf("list audit events: %w", err)
		}
		e.ID, e.At = strconv.FormatInt(seq, 10), e.At.UTC()
		out = append(out, &e)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list audit events: %w", err)
	}
	next := ""
	if len(out) > q.Limit {
		out = out[:q.Limit]
		next = out[len(out)-1].ID
	}
	return out, next, nil
}

// bound returns the stores of db with every statement in tx.
func (db *DB) bound(tx pgx.Tx) *txStores {
	return &txStores{db: &DB{pool: db.pool, schema: db.schema, now: db.now, tx: tx}}
}

// txStores are the stores of one audited transaction.
type txStores struct{ db *DB }

var _ tollgate.AuditTx = (*txStores)(nil)

func (t *txStores) Tenants() tollgate.TenantStore             { return &TenantStore{db: t.db} }
func (t *txStores) Users() tollgate.UserStore                 { return &UserStore{db: t.db} }
func (t *txStores) APIKeys() tollgate.APIKeyStore             { return &APIKeyStore{db: t.db} }
func (t *txStores) RefreshTokens() tollgate.RefreshTokenStore { return &RefreshTokenStore{db: t.db} }
func (t *txStores) Revocations() tollgate.RevocationStore     { return &RevocationStore{db: t.db} }
func (t *txStores) Bans() tollgate.BanStore                   { return &BanStore{db: t.db} }
