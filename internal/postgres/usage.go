package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// Ledger keeps usage records, budget overrides and sent budget alerts.
type Ledger struct {
	db *DB
	// seqLock is the advisory lock that serialises settling transactions,
	// so export sequence numbers increase in commit order.
	seqLock int64
}

var (
	_ tollgate.Ledger      = (*Ledger)(nil)
	_ tollgate.BudgetStore = (*Ledger)(nil)
)

// Ledger returns the usage ledger, which also keeps budget overrides.
func (db *DB) Ledger() *Ledger {
	h := fnv.New64a()
	_, _ = h.Write([]byte("tollgate-usage-seq:" + db.schema))
	return &Ledger{db: db, seqLock: int64(h.Sum64() >> 1)}
}

const usageColumns = `request_id, started_at, ended_at, tenant_id, user_id, route, model, outcome,
	status, bytes_in, bytes_out, latency_ms, input_tokens, output_tokens, images,
	megapixel_millis, audio_millis, gpu_millis, output_audio_millis, cost, reserved, settled, seq, replica, held`

const usageValues = `$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25`

func usageArgs(r *tollgate.UsageRecord) []any {
	var seq *int64
	if r.Seq > 0 {
		seq = &r.Seq
	}
	return []any{r.RequestID, r.Start.UTC(), toTime(r.End), r.TenantID, r.UserID, r.Route, r.Model, r.Outcome,
		r.Status, r.BytesIn, r.BytesOut, r.LatencyMS, r.Units.InputTokens, r.Units.OutputTokens, r.Units.Images,
		r.Units.MegapixelMillis, r.Units.AudioMillis, r.Units.GPUMillis, r.Units.OutputAudioMillis, int64(r.Cost), int64(r.Reserved), r.Settled, seq, r.Replica, r.Held}
}

func scanUsage(row pgx.Row) (*tollgate.UsageRecord, error) {
	var r tollgate.UsageRecord
	var end *time.Time
	var seq *int64
	var cost, reserved int64
	err := row.Scan(&r.RequestID, &r.Start, &end, &r.TenantID, &r.UserID, &r.Route, &r.Model, &r.Outcome,
		&r.Status, &r.BytesIn, &r.BytesOut, &r.LatencyMS, &r.Units.InputTokens, &r.Units.OutputTokens, &r.Units.Images,
		&r.Units.MegapixelMillis, &r.Units.AudioMillis, &r.Units.GPUMillis, &r.Units.OutputAudioMillis, &cost, &reserved, &r.Settled, &seq, &r.Replica, &r.Held)
	if err != nil {
		return nil, err
	}
	r.Start, r.End = r.Start.UTC(), fromTime(end)
	r.Cost, r.Reserved = tollgate.Money(cost), tollgate.Money(reserved)
	if seq != nil {
		r.Seq = *seq
	}
	r.Units.Megapixels = float64(r.Units.MegapixelMillis) / 1000
	return &r, nil
}

const settleSQL = `INSERT INTO usage_records (` + usageColumns + `) VALUES (` + usageValues + `)
	ON CONFLICT (request_id) DO UPDATE SET ended_at = excluded.ended_at, outcome = excluded.outcome,
		status = excluded.status, bytes_in = excluded.bytes_in, bytes_out = excluded.bytes_out,
		latency_ms = excluded.latency_ms, input_tokens = excluded.input_tokens,
		output_tokens = excluded.output_tokens, images = excluded.images,
		megapixel_millis = excluded.megapixel_millis, audio_millis = excluded.audio_millis,
		gpu_millis = excluded.gpu_millis, output_audio_millis = excluded.output_audio_millis, cost = excluded.cost, settled = true, seq = excluded.seq
	WHERE NOT usage_records.settled`

// Write appends open records and settles settled ones in one transaction,
// sent as one batch (one round trip).
func (l *Ledger) Write(ctx context.Context, open, settled []*tollgate.UsageRecord) error {
	if len(open) == 0 && len(settled) == 0 {
		return nil
	}
	return l.db.withTx(ctx, func(tx pgx.Tx) error {
		var seq int64
		if len(settled) > 0 {
			var err error
			if seq, err = l.nextSeq(ctx, tx); err != nil {
				return err
			}
		}
		b := &pgx.Batch{}
		for _, r := range open {
			o := *r
			o.Settled, o.Seq = false, 0
			b.Queue(`INSERT INTO usage_records (`+usageColumns+`) VALUES (`+usageValues+`)`, usageArgs(&o)...)
		}
		for _, r := range settled {
			s := *r
			s.Settled, s.Seq = true, seq
			b.Queue(settleSQL, usageArgs(&s)...)
			seq++
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			if isUnique(err) {
				return tollgate.Errorf(tollgate.EConflict, "a usage record of this batch exists")
			}
			return fmt.Errorf("write usage: %w", err)
		}
		return nil
	})
}

// nextSeq takes the ledger's advisory lock for the rest of tx and returns
// the next free export sequence number.
func (l *Ledger) nextSeq(ctx context.Context, tx pgx.Tx) (int64, error) {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, l.seqLock); err != nil {
		return 0, fmt.Errorf("usage sequence lock: %w", err)
	}
	var seq int64
	if err := tx.QueryRow(ctx, `SELECT COALESCE((SELECT seq FROM usage_records WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1), 0) + 1`).Scan(&seq); err != nil {
		return 0, fmt.Errorf("usage sequence: %w", err)
	}
	return seq, nil
}

// Reconcile settles open records started before startedBefore as unknown,
// held ones excepted.
func (l *Ledger) Reconcile(ctx context.Context, startedBefore, at time.Time, chargeReserved bool) ([]*tollgate.UsageRecord, error) {
	return l.reconcileWhere(ctx, at, chargeReserved, `NOT held AND replica = '' AND started_at < $1`, startedBefore.UTC())
}

// ReconcileExpired settles, as unknown, the open records of replicas that
// hold no lease valid after at, held ones excepted, and removes the
// expired leases.
func (l *Ledger) ReconcileExpired(ctx context.Context, at time.Time, chargeReserved bool) ([]*tollgate.UsageRecord, error) {
	out, err := l.reconcileWhere(ctx, at, chargeReserved, `NOT held AND replica <> '' AND replica NOT IN
		(SELECT replica FROM replica_leases WHERE expires_at > $1)`, at.UTC())
	if err != nil {
		return nil, err
	}
	if _, err := l.db.pool.Exec(ctx, `DELETE FROM replica_leases WHERE expires_at <= $1`, at.UTC()); err != nil {
		return nil, fmt.Errorf("remove expired leases: %w", err)
	}
	return out, nil
}

// RenewLease creates or extends a replica's lease.
func (l *Ledger) RenewLease(ctx context.Context, replica string, expires time.Time) error {
	if replica == "" {
		return tollgate.Errorf(tollgate.EInvalid, "a lease needs a replica id")
	}
	_, err := l.db.pool.Exec(ctx, `INSERT INTO replica_leases (replica, expires_at) VALUES ($1, $2)
		ON CONFLICT (replica) DO UPDATE SET expires_at = excluded.expires_at`, replica, expires.UTC())
	if err != nil {
		return fmt.Errorf("renew lease: %w", err)
	}
	return nil
}

// EndLease removes a replica's lease.
func (l *Ledger) EndLease(ctx context.Context, replica string) error {
	if _, err := l.db.pool.Exec(ctx, `DELETE FROM replica_leases WHERE replica = $1`, replica); err != nil {
		return fmt.Errorf("end lease: %w", err)
	}
	return nil
}

// reconcileWhere settles the open records matching cond (over arg $1) as
// unknown, in one transaction. It looks first without the sequence lock,
// so a heartbeat that finds nothing to do does not hold up settlements.
func (l *Ledger) reconcileWhere(ctx context.Context, at time.Time, chargeReserved bool, cond string, arg any) ([]*tollgate.UsageRecord, error) {
	var found bool
	if err := l.db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM usage_records WHERE NOT settled AND `+cond+`)`, arg).Scan(&found); err != nil {
		return nil, fmt.Errorf("reconcile usage: %w", err)
	}
	if !found {
		return nil, nil
	}
	var out []*tollgate.UsageRecord
	err := l.db.withTx(ctx, func(tx pgx.Tx) error {
		out = nil
		seq, err := l.nextSeq(ctx, tx)
		if err != nil {
			return err
		}
		rows, _ := tx.Query(ctx, `SELECT `+usageColumns+` FROM usage_records
			WHERE NOT settled AND `+cond+` ORDER BY started_at, request_id FOR UPDATE`, arg)
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (*tollgate.UsageRecord, error) { return scanUsage(row) })
		if err != nil {
			return fmt.Errorf("reconcile usage: %w", err)
		}
		end := at.UTC().Truncate(time.Microsecond)
		b := &pgx.Batch{}
		for _, r := range out {
			r.Settled, r.Outcome, r.End, r.Seq = true, tollgate.ResultUnknown, end, seq
			r.LatencyMS = max(0, end.Sub(r.Start).Milliseconds())
			if chargeReserved {
				r.Cost = r.Reserved
			}
			b.Queue(`UPDATE usage_records SET settled = true, outcome = $1, ended_at = $2, latency_ms = $3,
				cost = $4, seq = $5 WHERE request_id = $6`, r.Outcome, end, r.LatencyMS, int64(r.Cost), seq, r.RequestID)
			seq++
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("reconcile usage: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
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

// Committed sums settled costs and open reservations of a budget.
func (l *Ledger) Committed(ctx context.Context, scope tollgate.BudgetScope, id string, since time.Time) (tollgate.Money, error) {
	col, err := scopeColumn(scope)
	if err != nil {
		return 0, err
	}
	var sum int64
	err = l.db.pool.QueryRow(ctx, `SELECT COALESCE(SUM(CASE WHEN settled THEN cost ELSE reserved END), 0)::bigint
		FROM usage_records WHERE `+col+` = $1 AND started_at >= $2`, id, since.UTC()).Scan(&sum)
	if err != nil {
		return 0, fmt.Errorf("sum budget: %w", err)
	}
	return tollgate.Money(sum), nil
}

const sumColumns = `COUNT(*), COALESCE(SUM(input_tokens), 0)::bigint, COALESCE(SUM(output_tokens), 0)::bigint,
	COALESCE(SUM(images), 0)::bigint, COALESCE(SUM(megapixel_millis), 0)::bigint, COALESCE(SUM(audio_millis), 0)::bigint,
	COALESCE(SUM(gpu_millis), 0)::bigint, COALESCE(SUM(output_audio_millis), 0)::bigint, COALESCE(SUM(cost), 0)::bigint`

// reportColumns are sumColumns over settled records, then the count and
// reservations of open ones.
const reportColumns = `COUNT(*) FILTER (WHERE settled),
	COALESCE(SUM(input_tokens) FILTER (WHERE settled), 0)::bigint, COALESCE(SUM(output_tokens) FILTER (WHERE settled), 0)::bigint,
	COALESCE(SUM(images) FILTER (WHERE settled), 0)::bigint, COALESCE(SUM(megapixel_millis) FILTER (WHERE settled), 0)::bigint,
	COALESCE(SUM(audio_millis) FILTER (WHERE settled), 0)::bigint, COALESCE(SUM(gpu_millis) FILTER (WHERE settled), 0)::bigint,
	COALESCE(SUM(output_audio_millis) FILTER (WHERE settled), 0)::bigint,
	COALESCE(SUM(cost) FILTER (WHERE settled), 0)::bigint,
	COUNT(*) FILTER (WHERE NOT settled), COALESCE(SUM(reserved) FILTER (WHERE NOT settled), 0)::bigint`

func sumDest(r *tollgate.UsageRow, cost *int64) []any {
	return []any{&r.Requests, &r.Units.InputTokens, &r.Units.OutputTokens, &r.Units.Images,
		&r.Units.MegapixelMillis, &r.Units.AudioMillis, &r.Units.GPUMillis, &r.Units.OutputAudioMillis, cost}
}

// UnitTotals sums one user's billable usage since a time.
func (l *Ledger) UnitTotals(ctx context.Context, userID string, since time.Time) (tollgate.UsageRow, error) {
	var row tollgate.UsageRow
	var cost int64
	err := l.db.pool.QueryRow(ctx, `SELECT `+sumColumns+` FROM usage_records
		WHERE user_id = $1 AND started_at >= $2 AND settled AND outcome IN ('ok', 'cancelled')`, userID, since.UTC()).Scan(sumDest(&row, &cost)...)
	if err != nil {
		return row, fmt.Errorf("sum usage: %w", err)
	}
	row.Cost = tollgate.Money(cost)
	row.Units.Megapixels = float64(row.Units.MegapixelMillis) / 1000
	return row, nil
}

// Usage groups settled records.
func (l *Ledger) Usage(ctx context.Context, q tollgate.UsageQuery) ([]tollgate.UsageRow, error) {
	keys, group := `'', '', ''`, ``
	switch q.GroupBy {
	case "":
	case tollgate.GroupDay:
		d := `to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')`
		keys, group = d+`, '', ''`, ` GROUP BY 1 ORDER BY 1`
	case tollgate.GroupUser, tollgate.GroupTenant, tollgate.GroupRoute, tollgate.GroupModel:
		col := map[string]string{tollgate.GroupUser: "user_id", tollgate.GroupTenant: "tenant_id",
			tollgate.GroupRoute: "route", tollgate.GroupModel: "model"}[q.GroupBy]
		keys, group = col+`, '', ''`, ` GROUP BY 1 ORDER BY `+col+` COLLATE "C"`
	case tollgate.GroupLine:
		keys, group = `user_id, route, model`, ` GROUP BY 1, 2, 3 ORDER BY user_id COLLATE "C", route COLLATE "C", model COLLATE "C"`
	default:
		return nil, tollgate.Errorf(tollgate.EInvalid, "unknown grouping %q", q.GroupBy)
	}
	where, args := `true`, []any{}
	add := func(cond string, v any) {
		args = append(args, v)
		where += fmt.Sprintf(` AND %s $%d`, cond, len(args))
	}
	if !q.From.IsZero() {
		add(`started_at >=`, q.From.UTC())
	}
	if !q.To.IsZero() {
		add(`started_at <`, q.To.UTC())
	}
	if q.UserID != "" {
		add(`user_id =`, q.UserID)
	}
	if q.TenantID != "" {
		add(`tenant_id =`, q.TenantID)
	}
	if q.Route != "" {
		add(`route =`, q.Route)
	}
	rows, err := l.db.pool.Query(ctx, `SELECT `+keys+`, `+reportColumns+` FROM usage_records WHERE `+where+group, args...)
	if err != nil {
		return nil, fmt.Errorf("usage report: %w", err)
	}
	defer rows.Close()
	var out []tollgate.UsageRow
	for rows.Next() {
		var r tollgate.UsageRow
		var k1, k2, k3 string
		var cost, reserved int64
		if err := rows.Scan(append([]any{&k1, &k2, &k3}, append(sumDest(&r, &cost), &r.InFlight, &reserved)...)...); err != nil {
			return nil, fmt.Errorf("usage report: %w", err)
		}
		if q.GroupBy == "" && r.Requests == 0 && r.InFlight == 0 {
			continue
		}
		r.Reserved = tollgate.Money(reserved)
		if q.GroupBy == tollgate.GroupLine {
			r.UserID, r.Route, r.Model = k1, k2, k3
		} else {
			r.Key = k1
		}
		r.Cost = tollgate.Money(cost)
		r.Units.Megapixels = float64(r.Units.MegapixelMillis) / 1000
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("usage report: %w", err)
	}
	return out, nil
}

// Export returns settled records after a sequence number.
func (l *Ledger) Export(ctx context.Context, after int64, limit int) ([]*tollgate.UsageRecord, error) {
	rows, _ := l.db.pool.Query(ctx, `SELECT `+usageColumns+` FROM usage_records
		WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*tollgate.UsageRecord, error) { return scanUsage(row) })
	if err != nil {
		return nil, fmt.Errorf("export usage: %w", err)
	}
	return out, nil
}

// Record returns one record by request id.
func (l *Ledger) Record(ctx context.Context, requestID string) (*tollgate.UsageRecord, error) {
	r, err := scanUsage(l.db.pool.QueryRow(ctx, `SELECT `+usageColumns+` FROM usage_records WHERE request_id = $1`, requestID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, tollgate.Errorf(tollgate.ENotFound, "usage record %q not found", requestID)
	}
	if err != nil {
		return nil, fmt.Errorf("usage record: %w", err)
	}
	return r, nil
}
