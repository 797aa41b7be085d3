package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// Ledger keeps usage records, budget overrides and sent budget alerts.
//
// Settled records live in the usage_records table. Open records (appended
// before a call is forwarded) live in this process's memory and in an
// append-only journal beside the database (see journal.go), so a call
// costs one SQLite insert, when it settles. Readers in other processes
// (the CLI) see settled records only. The journal file is created by the
// first Write of an open record, never by a reader.
type Ledger struct {
	db *DB
	jl *journal // no file until the first open record

	// Writes that settle (and Reconcile) hold settleMu; writes that open
	// (and Reconcile) hold openMu, taken after settleMu when both are. So
	// a call waiting for its open record never waits for a settlement's
	// transaction.
	settleMu sync.Mutex
	openMu   sync.Mutex

	prepMu  sync.Mutex
	upsert  map[int]*sql.Stmt // inserts settled records, by rows per statement
	nextSeq *sql.Stmt         // returns the seq of the next settled record
	exists  *sql.Stmt         // finds whether one of existsArgs ids has a row
	exists1 *sql.Stmt         // finds whether one id has a row

	// omu guards the map open: opening adds to it, a settlement's commit
	// removes from it. mu is held across that commit and removal, and
	// shared by Committed and Record across their reads of the table and
	// of open, so they see a record either open or settled, never both or
	// neither. Opening a record never takes mu, so a call does not wait
	// for a settlement's commit: the table gains a record before open
	// loses it, and a duplicate id is found in one or the other.
	mu   sync.RWMutex
	omu  sync.Mutex
	open map[string]*openRecord
}

// openRecord is an open record held in memory and the journal segment
// that holds it.
type openRecord struct {
	rec *tollgate.UsageRecord
	seg *segment
}

var (
	_ tollgate.Ledger      = (*Ledger)(nil)
	_ tollgate.BudgetStore = (*Ledger)(nil)
)

// Ledger returns the usage ledger, which also keeps budget overrides. There
// is one per DB, since it holds the open records of this process.
func (db *DB) Ledger() *Ledger { return db.ledger }

// Writable reports why the ledger cannot take an open record now (its
// journal backs off after failing to write, e.g. on a full disk), or nil.
// While backing off it tries again once the next attempt is due, so it
// recovers without a call to record.
func (l *Ledger) Writable(context.Context) error { return l.jl.writable() }

func newLedger(db *DB, segSize int64) *Ledger {
	return &Ledger{db: db, jl: newJournal(db.path, segSize, db.now), open: map[string]*openRecord{}}
}

const usageColumns = `request_id, started_at, ended_at, tenant_id, user_id, route, model, outcome,
	status, bytes_in, bytes_out, latency_ms, input_tokens, output_tokens, images,
	megapixel_millis, audio_millis, gpu_millis, output_audio_millis, cost, reserved, settled, seq, replica, held`

// settledValues are the placeholders of one settled row of usageColumns:
// settledArgs values, settled is 1.
const settledValues = `?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?`

const settledArgs = 24

// appendSettledArgs appends the values of r, settled and numbered, for
// settledValues. They are of the driver's own types (int64, not int), so
// database/sql passes them on without converting each.
func appendSettledArgs(args []any, r *tollgate.UsageRecord) []any {
	return append(args, r.RequestID, r.Start.UnixMicro(), toTime(r.End), r.TenantID, r.UserID, r.Route, r.Model, r.Outcome,
		int64(r.Status), r.BytesIn, r.BytesOut, r.LatencyMS, r.Units.InputTokens, r.Units.OutputTokens, r.Units.Images,
		r.Units.MegapixelMillis, r.Units.AudioMillis, r.Units.GPUMillis, r.Units.OutputAudioMillis, int64(r.Cost), int64(r.Reserved), r.Seq, r.Replica, r.Held)
}

func scanUsage(s scanner) (*tollgate.UsageRecord, error) {
	var r tollgate.UsageRecord
	var start int64
	var end, seq sql.NullInt64
	var cost, reserved int64
	err := s.Scan(&r.RequestID, &start, &end, &r.TenantID, &r.UserID, &r.Route, &r.Model, &r.Outcome,
		&r.Status, &r.BytesIn, &r.BytesOut, &r.LatencyMS, &r.Units.InputTokens, &r.Units.OutputTokens, &r.Units.Images,
		&r.Units.MegapixelMillis, &r.Units.AudioMillis, &r.Units.GPUMillis, &r.Units.OutputAudioMillis, &cost, &reserved, &r.Settled, &seq, &r.Replica, &r.Held)
	if err != nil {
		return nil, err
	}
	r.Start, r.End = time.UnixMicro(start).UTC(), fromTime(end)
	r.Cost, r.Reserved, r.Seq = tollgate.Money(cost), tollgate.Money(reserved), seq.Int64
	r.Units.Megapixels = float64(r.Units.MegapixelMillis) / 1000
	return &r, nil
}

// Committed sums settled costs and open reservations of a budget: the
// open records of this process in memory, and rows left open by a version
// that kept open records in the table.
func (l *Ledger) Committed(ctx context.Context, scope tollgate.BudgetScope, id string, since time.Time) (tollgate.Money, error) {
	col, err := scopeColumn(scope)
	if err != nil {
		return 0, err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	var sum int64
	err = l.db.read.QueryRowContext(ctx, `SELECT COALESCE(SUM(CASE WHEN settled = 1 THEN cost ELSE reserved END), 0)
		FROM usage_records WHERE `+col+` = ? AND started_at >= ?`, id, since.UnixMicro()).Scan(&sum)
	if err != nil {
		return 0, fmt.Errorf("sum budget: %w", err)
	}
	from := since.UnixMicro()
	l.omu.Lock()
	defer l.omu.Unlock()
	for _, o := range l.open {
		owner := o.rec.UserID
		if scope == tollgate.ScopeTenant {
			owner = o.rec.TenantID
		}
		if owner == id && o.rec.Start.UnixMicro() >= from {
			sum += int64(o.rec.Reserved)
		}
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
	COALESCE(SUM(gpu_millis), 0), COALESCE(SUM(output_audio_millis), 0), COALESCE(SUM(cost), 0)`

func sumDest(r *tollgate.UsageRow, cost *int64) []any {
	return []any{&r.Requests, &r.Units.InputTokens, &r.Units.OutputTokens, &r.Units.Images,
		&r.Units.MegapixelMillis, &r.Units.AudioMillis, &r.Units.GPUMillis, &r.Units.OutputAudioMillis, cost}
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

// Usage groups records: settled ones and rows left open in the table from
// usage_records, and the open records of this process from memory.
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
	where, args := `1 = 1`, []any{}
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
	l.mu.RLock() // a record is counted open or settled, never both or neither
	defer l.mu.RUnlock()
	rows, err := l.db.read.QueryContext(ctx, `SELECT `+key+`, `+reportColumns+` FROM usage_records WHERE `+where+order, args...)
	if err != nil {
		return nil, fmt.Errorf("usage report: %w", err)
	}
	defer rows.Close()
	var out []tollgate.UsageRow
	for rows.Next() {
		var r tollgate.UsageRow
		var cost, reserved int64
		if err := rows.Scan(append([]any{&r.Key}, append(sumDest(&r, &cost), &r.InFlight, &reserved)...)...); err != nil {
			return nil, fmt.Errorf("usage report: %w", err)
		}
		if q.GroupBy == "" && r.Requests == 0 && r.InFlight == 0 {
			continue
		}
		r.Cost, r.Reserved = tollgate.Money(cost), tollgate.Money(reserved)
		r.Units.Megapixels = float64(r.Units.MegapixelMillis) / 1000
		finishRow(&r, q.GroupBy)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("usage report: %w", err)
	}
	open, err := l.openRecords(ctx)
	if err != nil {
		return nil, fmt.Errorf("usage report: %w", err)
	}
	return addInFlight(out, q, open), nil
}

// openRecords returns the open records of this process (from memory) and
// those in the journal segments of other processes that have no row: the
// calls of a server running beside this one (the CLI), or left by one that
// stopped, until it is reconciled. The caller holds mu.
func (l *Ledger) openRecords(ctx context.Context) ([]*tollgate.UsageRecord, error) {
	var out []*tollgate.UsageRecord
	seen := map[string]bool{}
	l.omu.Lock()
	for id, o := range l.open {
		out, seen[id] = append(out, o.rec), true
	}
	l.omu.Unlock()
	files, err := l.jl.foreign()
	if err != nil {
		return nil, err
	}
	var others []*tollgate.UsageRecord
	for _, path := range files {
		recs, err := readSegment(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // consumed meanwhile
		}
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			if !seen[r.RequestID] {
				others, seen[r.RequestID] = append(others, r), true
			}
		}
	}
	if len(others) == 0 {
		return out, nil
	}
	ids := make([]string, len(others))
	for i, r := range others {
		ids[i] = r.RequestID
	}
	have, err := l.haveRows(ctx, ids)
	if err != nil {
		return nil, err
	}
	for _, r := range others {
		if !have[r.RequestID] {
			out = append(out, r)
		}
	}
	return out, nil
}

// reportColumns are sumColumns over settled rows, then the count and
// reservations of open ones.
const reportColumns = `COALESCE(SUM(settled), 0), COALESCE(SUM(CASE WHEN settled = 1 THEN input_tokens END), 0),
	COALESCE(SUM(CASE WHEN settled = 1 THEN output_tokens END), 0), COALESCE(SUM(CASE WHEN settled = 1 THEN images END), 0),
	COALESCE(SUM(CASE WHEN settled = 1 THEN megapixel_millis END), 0), COALESCE(SUM(CASE WHEN settled = 1 THEN audio_millis END), 0),
	COALESCE(SUM(CASE WHEN settled = 1 THEN gpu_millis END), 0), COALESCE(SUM(CASE WHEN settled = 1 THEN output_audio_millis END), 0),
	COALESCE(SUM(CASE WHEN settled = 1 THEN cost END), 0),
	COALESCE(SUM(1 - settled), 0), COALESCE(SUM(CASE WHEN settled = 0 THEN reserved END), 0)`

// addInFlight counts the open records that q selects into the rows of
// their groups, adding rows for groups that have none, in the order of the
// query.
func addInFlight(out []tollgate.UsageRow, q tollgate.UsageQuery, open []*tollgate.UsageRecord) []tollgate.UsageRow {
	type key struct{ k, user, route, model string }
	keyOf := func(r *tollgate.UsageRecord) key {
		switch q.GroupBy {
		case tollgate.GroupDay:
			return key{k: r.Start.UTC().Format(time.DateOnly)}
		case tollgate.GroupUser:
			return key{k: r.UserID}
		case tollgate.GroupTenant:
			return key{k: r.TenantID}
		case tollgate.GroupRoute:
			return key{k: r.Route}
		case tollgate.GroupModel:
			return key{k: r.Model}
		case tollgate.GroupLine:
			return key{user: r.UserID, route: r.Route, model: r.Model}
		}
		return key{}
	}
	index := make(map[key]int, len(out))
	for i, r := range out {
		index[key{r.Key, r.UserID, r.Route, r.Model}] = i
	}
	added := false
	for _, r := range open {
		if !q.From.IsZero() && r.Start.Before(q.From) || !q.To.IsZero() && !r.Start.Before(q.To) ||
			q.UserID != "" && r.UserID != q.UserID || q.TenantID != "" && r.TenantID != q.TenantID ||
			q.Route != "" && r.Route != q.Route {
			continue
		}
		k := keyOf(r)
		i, ok := index[k]
		if !ok {
			i, added = len(out), true
			index[k] = i
			out = append(out, tollgate.UsageRow{Key: k.k, UserID: k.user, Route: k.route, Model: k.model})
		}
		out[i].InFlight++
		out[i].Reserved += r.Reserved
	}
	if added {
		slices.SortStableFunc(out, func(a, b tollgate.UsageRow) int {
			return cmp.Or(strings.Compare(a.Key, b.Key), strings.Compare(a.UserID, b.UserID),
				strings.Compare(a.Route, b.Route), strings.Compare(a.Model, b.Model))
		})
	}
	return out
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
	out, err := l.queryUsage(ctx, `WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("export usage: %w", err)
	}
	return out, nil
}

// Record returns one record by request id.
func (l *Ledger) Record(ctx context.Context, requestID string) (*tollgate.UsageRecord, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	l.omu.Lock()
	o := l.open[requestID]
	l.omu.Unlock()
	if o != nil {
		r := *o.rec
		return &r, nil
	}
	r, err := scanUsage(l.db.read.QueryRowContext(ctx, `SELECT `+usageColumns+` FROM usage_records WHERE request_id = ?`, requestID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, tollgate.Errorf(tollgate.ENotFound, "usage record %q not found", requestID)
	}
	if err != nil {
		return nil, fmt.Errorf("usage record: %w", err)
	}
	return r, nil
}
