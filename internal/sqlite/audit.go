package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

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
	return s.insert(ctx, s.db.writer(), e)
}

func (s *AuditStore) insert(ctx context.Context, c conn, e *tollgate.AuditEvent) error {
	if e.At.IsZero() {
		e.At = s.db.stamp()
	}
	var seq int64
	err := c.QueryRowContext(ctx,
		`INSERT INTO audit_events (at, actor, actor_name, action, target, outcome, reason, ip, detail)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq`,
		e.At.UnixMicro(), e.Actor, e.ActorName, e.Action, e.Target, e.Outcome, e.Reason, e.IP, e.Detail).Scan(&seq)
	if err != nil {
		return fmt.Errorf("append audit event: %w", err)
	}
	e.ID = strconv.FormatInt(seq, 10)
	e.At = e.At.UTC().Truncate(time.Microsecond)
	return nil
}

// Audited runs change and stores e in one write transaction.
func (s *AuditStore) Audited(ctx context.Context, e *tollgate.AuditEvent, change func(tollgate.AuditTx) error) error {
	if err := e.Validate(); err != nil {
		return err
	}
	if s.db.tx != nil {
		return fmt.Errorf("audited change: already in a transaction")
	}
	return s.db.withTx(ctx, func(tx *sql.Tx) error {
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
	add := func(cond string, a ...any) { where, args = append(where, cond), append(args, a...) }
	if !q.From.IsZero() {
		add("at >= ?", q.From.UnixMicro())
	}
	if !q.To.IsZero() {
		add("at < ?", q.To.UnixMicro())
	}
	if q.Actor != "" {
		add("(actor = ? OR actor_name = ?)", q.Actor, q.Actor)
	}
	if p, ok := q.ActionPrefix(); ok {
		add("substr(action, 1, ?) = ?", len(p), p)
	} else if q.Action != "" {
		add("action = ?", q.Action)
	}
	if q.Cursor != "" {
		add("seq < ?", q.Cursor)
	}
	query := `SELECT seq, at, actor, actor_name, action, target, outcome, reason, ip, detail FROM audit_events`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY seq DESC LIMIT ?"
	args = append(args, q.Limit+1)
	rows, err := s.db.reader().QueryContext(ctx, query, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list audit events: %w", err)
	}
	defer rows.Close()
	var out []*tollgate.AuditEvent
	for rows.Next() {
		var e tollgate.AuditEvent
		var seq int64
		var at sql.NullInt64
		if err := rows.Scan(&seq, &at, &e.Actor, &e.ActorName, &e.Action, &e.Target, &e.Outcome, &e.Reason, &e.IP, &e.Detail); err != nil {
			return nil, "", fmt.Errorf("list audit events: %w", err)
		}
		e.ID, e.At = strconv.FormatInt(seq, 10), fromTime(at)
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
func (db *DB) bound(tx *sql.Tx) *txStores {
	b := &DB{path: db.path, read: db.read, write: db.write, now: db.now, tx: tx}
	return &txStores{db: b}
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
