package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// Ledger keeps usage records, budget overrides and sent budget alerts.
type Ledger struct {
	db *DB

	prepMu        sync.Mutex
	insert        *sql.Stmt // appends an open record
	insertMany    *sql.Stmt // appends insertChunk open records
	insertSettled *sql.Stmt // inserts a settled record never appended
	update        *sql.Stmt // settles an open record
}

var (
	_ tollgate.Ledger      = (*Ledger)(nil)
	_ tollgate.BudgetStore = (*Ledger)(nil)
)

// Ledger returns the usage ledger, which also keeps budget overrides.
func (db *DB) Ledger() *Ledger { return &Ledger{db: db} }

const usageColumns = `request_id, started_at, ended_at, tenant_id, user_id, route, model, outcome,
	status, bytes_in, bytes_out, latency_ms, input_tokens, output_tokens, images,
	megapixel_millis, audio_millis, gpu_millis, cost, reserved, settled, seq`

const usageValues = `?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?`

func usageArgs(r *tollgate.UsageRecord) []any {
	var seq any
	if r.Seq > 0 {
		seq = r.Seq
	}
	return []any{r.RequestID, r.Start.UnixMicro(), toTime(r.End), r.TenantID, r.UserID, r.Route, r.Model, r.Outcome,
		r.Status, r.BytesIn, r.BytesOut, r.LatencyMS, r.Units.InputTokens, r.Units.OutputTokens, r.Units.Images,
		r.Units.MegapixelMillis, r.Units.AudioMillis, r.Units.GPUMillis, int64(r.Cost), int64(r.Reserved), r.Settled, seq}
}

func scanUsage(s scanner) (*tollgate.UsageRecord, error) {
	var r tollgate.UsageRecord
	var start int64
	var end, seq sql.NullInt64
	var cost, reserved int64
	err := s.Scan(&r.RequestID, &start, &end, &r.TenantID, &r.UserID, &r.Route, &r.Model, &r.Outcome,
		&r.Status, &r.BytesIn, &r.BytesOut, &r.LatencyMS, &r.Units.InputTokens, &r.Units.OutputTokens, &r.Units.Images,
		&r.Units.MegapixelMillis, &r.Units.AudioMillis, &r.Units.GPUMillis, &cost, &reserved, &r.Settled, &seq)
	if err != nil {
		return nil, err
	}
	r.Start, r.End = time.UnixMicro(start).UTC(), fromTime(end)
	r.Cost, r.Reserved, r.Seq = tollgate.Money(cost), tollgate.Money(reserved), seq.Int64
	r.Units.Megapixels = float64(r.Units.MegapixelMillis) / 1000
	return &r, nil
}

// Write appends open records and settles settled ones in one transaction.
func (l *Ledger) Write(ctx context.Context, open, settled []*tollgate.UsageRecord) error {
	if len(open) == 0 && len(settled) == 0 {
		return nil
	}
	if err := l.prepare(ctx); err != nil {
		return err
	}
	return l.db.withTx(ctx, func(tx *sql.Tx) error {
		if err := l.appendOpen(ctx, tx, open); err != nil {
			return err
		}
		if len(settled) == 0 {
			return nil
		}
		seq, err := nextSeq(ctx, tx)
		if err != nil {
			return err
		}
		up, ins := tx.StmtContext(ctx, l.update), tx.StmtContext(ctx, l.insertSettled)
		for _, r := range settled {
			res, err := up.ExecContext(ctx, settleArgs(r, seq)...)
			if err != nil {
				return fmt.Errorf("settle usage: %w", err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return fmt.Errorf("settle usage: %w", err)
			} else if n == 0 {
				// Never appended (or already settled, then nothing changes).
				s := *r
				s.Settled, s.Seq = true, seq
				if _, err := ins.ExecContext(ctx, usageArgs(&s)...); err != nil {
					return fmt.Errorf("settle usage: %w", err)
				}
			}
			seq++
		}
		return nil
	})
}

// appendOpen inserts open records, insertChunk at a time while it can.
func (l *Ledger) appendOpen(ctx context.Context, tx *sql.Tx, open []*tollgate.UsageRecord) error {
	if len(open) == 0 {
		return nil
	}
	many, one := tx.StmtContext(ctx, l.insertMany), tx.StmtContext(ctx, l.insert)
	for len(open) > 0 {
		stmt, n := one, 1
		if len(open) >= insertChunk {
			stmt, n = many, insertChunk
		}
		args := make([]any, 0, n*22)
		for _, r := range open[:n] {
			o := *r
			o.Settled, o.Seq = false, 0
			args = append(args, usageArgs(&o)...)
		}
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			if isUnique(err) {
				return tollgate.Errorf(tollgate.EConflict, "a usage record of this batch exists")
			}
			return fmt.Errorf("append usage: %w", err)
		}
		open = open[n:]
	}
	return nil
}

// insertChunk records are appended by one statement.
const insertChunk = 16

const updateSQL = `UPDATE usage_records SET ended_at = ?, outcome = ?, status = ?, bytes_in = ?, bytes_out = ?,
	latency_ms = ?, input_tokens = ?, output_tokens = ?, images = ?, megapixel_millis = ?, audio_millis = ?,
	gpu_millis = ?, cost = ?, settled = 1, seq = ? WHERE request_id = ? AND settled = 0`

func settleArgs(r *tollgate.UsageRecord, seq int64) []any {
	return []any{toTime(r.End), r.Outcome, r.Status, r.BytesIn, r.BytesOut, r.LatencyMS, r.Units.InputTokens,
		r.Units.OutputTokens, r.Units.Images, r.Units.MegapixelMillis, r.Units.AudioMillis, r.Units.GPUMillis,
		int64(r.Cost), seq, r.RequestID}
}

// prepare readies the write statements once, on the write connection, so
// a group commit does not parse SQL.
func (l *Ledger) prepare(ctx context.Context) error {
	l.prepMu.Lock()
	defer l.prepMu.Unlock()
	if l.update != nil {
		return nil
	}
	ctx = context.WithoutCancel(ctx)
	insert := `INSERT INTO usage_records (` + usageColumns + `) VALUES (` + usageValues + `)`
	tuples := strings.Repeat(`(`+usageValues+`), `, insertChunk-1) + `(` + usageValues + `)`
	var stmts [4]*sql.Stmt
	for i, q := range []string{insert, `INSERT INTO usage_records (` + usageColumns + `) VALUES ` + tuples,
		insert + ` ON CONFLICT (request_id) DO NOTHING`, updateSQL} {
		st, err := l.db.write.PrepareContext(ctx, q)
		if err != nil {
			for _, p := range stmts[:i] {
				_ = p.Close()
			}
			return fmt.Errorf("prepare usage statements: %w", err)
		}
		stmts[i] = st
	}
	l.insert, l.insertMany, l.insertSettled, l.update = stmts[0], stmts[1], stmts[2], stmts[3]
	return nil
}

// nextSeq returns the next free export sequence number. The single write
// connection serialises writers, so numbers increase in commit order.
func nextSeq(ctx context.Context, tx *sql.Tx) (int64, error) {
	var seq int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE((SELECT seq FROM usage_records WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1), 0) + 1`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("usage sequence: %w", err)
	}
	return seq, nil
}

// Reconcile settles open records started before startedBefore as unknown.
func (l *Ledger) Reconcile(ctx context.Context, startedBefore, at time.Time, chargeReserved bool) ([]*tollgate.UsageRecord, error) {
	var out []*tollgate.UsageRecord
	err := l.db.withTx(ctx, func(tx *sql.Tx) error {
		out = nil
		rows, err := tx.QueryContext(ctx, `SELECT `+usageColumns+` FROM usage_records
			WHERE settled = 0 AND started_at < ? ORDER BY started_at, request_id`, startedBefore.UnixMicro())
		if err != nil {
			return fmt.Errorf("reconcile usage: %w", err)
		}
		for rows.Next() {
			r, err := scanUsage(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("reconcile usage: %w", err)
			}
			out = append(out, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("reconcile usage: %w", err)
		}
		if len(out) == 0 {
			return nil
		}
		seq, err := nextSeq(ctx, tx)
		if err != nil {
			return err
		}
		end := at.UTC().Truncate(time.Microsecond)
		for _, r := range out {
			r.Settled, r.Outcome, r.End, r.Seq = true, tollgate.ResultUnknown, end, seq
			r.LatencyMS = max(0, end.Sub(r.Start).Milliseconds())
			if chargeReserved {
				r.Cost = r.Reserved
			}
			if _, err := tx.ExecContext(ctx, `UPDATE usage_records SET settled = 1, outcome = ?, ended_at = ?,
				latency_ms = ?, cost = ?, seq = ? WHERE request_id = ?`,
				r.Outcome, end.UnixMicro(), r.LatencyMS, int64(r.Cost), seq, r.RequestID); err != nil {
				return fmt.Errorf("reconcile usage: %w", err)
			}
			seq++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Committed sums settled costs and open reservations of a budget.
func (l *Ledger) Committed(ctx context.Context, scope tollgate.BudgetScope, id string, since time.Time) (tollgate.Money, error) {
	col, err := scopeColumn(scope)
	if err != nil {
		return 0, err
	}
	var sum int64
	err = l.db.read.QueryRowContext(ctx, `SELECT COALESCE(SUM(CASE WHEN settled = 1 THEN cost ELSE reserved END), 0)
		FROM usage_records WHERE `+col+` = ? AND started_at >= ?`, id, since.UnixMicro()).Scan(&sum)
	if err != nil {
		return 0, fmt.Errorf("sum budget: %w", err)
	}
	return tollgate.Money(sum), nil
}

func scopeColumn(scope tollgate.BudgetScope) (string, error) {
	switch scope {
	case tollgate.ScopeUser:
		return "user_id", nil
	case tollgate.ScopeTenant:
		return "tenant_id", nil
	}
	return "", tollgate.Errorf(tollgate.EInvalid, "unknown budget scope %q", scope)
}

const sumColumns = `COUNT(*), COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0),
	COALESCE(SUM(images), 0), COALESCE(SUM(megapixel_millis), 0), COALESCE(SUM(audio_millis), 0),
	COALESCE(SUM(gpu_millis), 0), COALESCE(SUM(cost), 0)`

func sumDest(r *tollgate.UsageRow, cost *int64) []any {
	return []any{&r.Requests, &r.Units.InputTokens, &r.Units.OutputTokens, &r.Units.Images,
		&r.Units.MegapixelMillis, &r.Units.AudioMillis, &r.Units.GPUMillis, cost}
}

// UnitTotals sums one user's billable usage since a time.
func (l *Ledger) UnitTotals(ctx context.Context, userID string, since time.Time) (tollgate.UsageRow, error) {
	var row tollgate.UsageRow
	var cost int64
	err := l.db.read.QueryRowContext(ctx, `SELECT `+sumColumns+` FROM usage_records
		WHERE user_id = ? AND started_at >= ? AND settled = 1 AND outcome IN ('ok', 'cancelled')`, userID, since.UnixMicro()).Scan(sumDest(&row, &cost)...)
	if err != nil {
		return row, fmt.Errorf("sum usage: %w", err)
	}
	row.Cost = tollgate.Money(cost)
	row.Units.Megapixels = float64(row.Units.MegapixelMillis) / 1000
	return row, nil
}

// Usage groups settled records.
func (l *Ledger) Usage(ctx context.Context, q tollgate.UsageQuery) ([]tollgate.UsageRow, error) {
	var key, order string
	switch q.GroupBy {
	case "":
		key, order = `''`, ``
	case tollgate.GroupDay:
		key = `CAST(started_at / 86400000000 AS TEXT)`
		order = ` GROUP BY started_at / 86400000000 ORDER BY started_at / 86400000000`
	case tollgate.GroupUser, tollgate.GroupTenant, tollgate.GroupRoute, tollgate.GroupModel:
		col := map[string]string{tollgate.GroupUser: "user_id", tollgate.GroupTenant: "tenant_id",
			tollgate.GroupRoute: "route", tollgate.GroupModel: "model"}[q.GroupBy]
		key, order = col, ` GROUP BY `+col+` ORDER BY `+col
	case tollgate.GroupLine:
		key, order = `user_id || char(0) || route || char(0) || model`, ` GROUP BY user_id, route, model ORDER BY user_id, route, model`
	default:
		return nil, tollgate.Errorf(tollgate.EInvalid, "unknown grouping %q", q.GroupBy)
	}
	where, args := `settled = 1`, []any{}
	if !q.From.IsZero() {
		where, args = where+` AND started_at >= ?`, append(args, q.From.UnixMicro())
	}
	if !q.To.IsZero() {
		where, args = where+` AND started_at < ?`, append(args, q.To.UnixMicro())
	}
	for col, v := range map[string]string{"user_id": q.UserID, "tenant_id": q.TenantID, "route": q.Route} {
		if v != "" {
			where, args = where+` AND `+col+` = ?`, append(args, v)
		}
	}
	rows, err := l.db.read.QueryContext(ctx, `SELECT `+key+`, `+sumColumns+` FROM usage_records WHERE `+where+order, args...)
	if err != nil {
		return nil, fmt.Errorf("usage report: %w", err)
	}
	defer rows.Close()
	var out []tollgate.UsageRow
	for rows.Next() {
		var r tollgate.UsageRow
		var cost int64
		if err := rows.Scan(append([]any{&r.Key}, sumDest(&r, &cost)...)...); err != nil {
			return nil, fmt.Errorf("usage report: %w", err)
		}
		if q.GroupBy == "" && r.Requests == 0 {
			continue
		}
		r.Cost = tollgate.Money(cost)
		r.Units.Megapixels = float64(r.Units.MegapixelMillis) / 1000
		finishRow(&r, q.GroupBy)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("usage report: %w", err)
	}
	return out, nil
}

// finishRow turns the raw group key into the documented one.
func finishRow(r *tollgate.UsageRow, groupBy string) {
	switch groupBy {
	case tollgate.GroupDay:
		var day int64
		_, _ = fmt.Sscan(r.Key, &day)
		r.Key = time.Unix(day*86400, 0).UTC().Format(time.DateOnly)
	case tollgate.GroupLine:
		var parts [3]string
		i := 0
		start := 0
		for j := 0; j < len(r.Key); j++ {
			if r.Key[j] == 0 && i < 2 {
				parts[i], start, i = r.Key[start:j], j+1, i+1
			}
		}
		parts[i] = r.Key[start:]
		r.Key, r.UserID, r.Route, r.Model = "", parts[0], parts[1], parts[2]
	}
}

// Export returns settled records after a sequence number.
func (l *Ledger) Export(ctx context.Context, after int64, limit int) ([]*tollgate.UsageRecord, error) {
	rows, err := l.db.read.QueryContext(ctx, `SELECT `+usageColumns+` FROM usage_records
		WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("export usage: %w", err)
	}
	defer rows.Close()
	var out []*tollgate.UsageRecord
	for rows.Next() {
		r, err := scanUsage(rows)
		if err != nil {
			return nil, fmt.Errorf("export usage: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("export usage: %w", err)
	}
	return out, nil
}

// Record returns one record by request id.
func (l *Ledger) Record(ctx context.Context, requestID string) (*tollgate.UsageRecord, error) {
	r, err := scanUsage(l.db.read.QueryRowContext(ctx, `SELECT `+usageColumns+` FROM usage_records WHERE request_id = ?`, requestID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, tollgate.Errorf(tollgate.ENotFound, "usage record %q not found", requestID)
	}
	if err != nil {
		return nil, fmt.Errorf("usage record: %w", err)
	}
	return r, nil
}
