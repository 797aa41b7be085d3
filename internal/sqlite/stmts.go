package sqlite

import (
	"context"
	"database/sql"
	"sync"
)

// stmtCache keeps one pool's prepared statements by their SQL text, so a
// statement run on every request is parsed once per connection, not on
// every call. The write pool's single connection is held by the
// transaction that first meets a statement, so that statement runs
// unprepared once and is prepared before the next transaction begins
// (prepareWanted). The zero value is ready; the statements close with
// the pool's connections.
type stmtCache struct {
	mu     sync.Mutex
	m      map[string]*sql.Stmt
	wanted map[string]bool
}

// lookup returns the statement of query, or nil after noting it wanted.
func (c *stmtCache) lookup(query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[query]; ok {
		return st
	}
	if c.wanted == nil {
		c.wanted = map[string]bool{}
	}
	c.wanted[query] = true
	return nil
}

// prepareWanted prepares the statements noted wanted on pool. A statement
// that does not prepare stays unprepared: running it reports its error.
// The lock is not held while preparing: a prepare waits for the write
// pool's one connection, which a running transaction may hold while it
// looks up its own statements here.
func (c *stmtCache) prepareWanted(ctx context.Context, pool *sql.DB) {
	c.mu.Lock()
	var queries []string
	for query := range c.wanted {
		delete(c.wanted, query)
		queries = append(queries, query)
	}
	c.mu.Unlock()
	for _, query := range queries {
		st, err := pool.PrepareContext(context.WithoutCancel(ctx), query)
		if err != nil {
			continue
		}
		c.mu.Lock()
		if c.m == nil {
			c.m = map[string]*sql.Stmt{}
		}
		if _, ok := c.m[query]; ok {
			st.Close() // prepared meanwhile by another transaction's turn
		} else {
			c.m[query] = st
		}
		c.mu.Unlock()
	}
}

// txExec runs query in tx, prepared once it has been seen.
func (db *DB) txExec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	if st := db.writeStmts.lookup(query); st != nil {
		return tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, query, args...)
}

// txQueryRow runs query in tx, prepared once it has been seen.
func (db *DB) txQueryRow(ctx context.Context, tx *sql.Tx, query string, args ...any) *sql.Row {
	if st := db.writeStmts.lookup(query); st != nil {
		return tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return tx.QueryRowContext(ctx, query, args...)
}

// withPreparedTx is withTx that first prepares the write statements
// seen since the last one.
func (db *DB) withPreparedTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if db.tx == nil {
		db.writeStmts.prepareWanted(ctx, db.write.DB)
	}
	return db.withTx(ctx, fn)
}

// readQueryRow runs query on the read pool, prepared.
func (db *DB) readQueryRow(ctx context.Context, query string, args ...any) scanner {
	st, err := db.readStmts.get(ctx, db.read, query)
	if err != nil {
		return errRow{err}
	}
	return st.QueryRowContext(ctx, args...)
}

// get returns the statement of query, preparing it on pool when new.
func (c *stmtCache) get(ctx context.Context, pool *sql.DB, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[query]; ok {
		return st, nil
	}
	st, err := pool.PrepareContext(context.WithoutCancel(ctx), query)
	if err != nil {
		return nil, err
	}
	if c.m == nil {
		c.m = map[string]*sql.Stmt{}
	}
	c.m[query] = st
	return st, nil
}

// errRow is a row whose statement could not be prepared.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }
