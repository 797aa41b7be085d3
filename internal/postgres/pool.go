package postgres

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// pool is the connection pool as the stores use it: every error that says
// the database cannot be reached becomes EUnavailable (see storeErr), so
// callers are asked to retry instead of shown an internal error.
type pool struct{ *pgxpool.Pool }

func (p pool) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tag, err := p.Pool.Exec(ctx, sql, args...)
	return tag, storeErr(err)
}

func (p pool) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	r, err := p.Pool.Query(ctx, sql, args...)
	if r == nil {
		return nil, storeErr(err)
	}
	return rows{r}, storeErr(err)
}

func (p pool) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return row{p.Pool.QueryRow(ctx, sql, args...)}
}

func (p pool) Begin(ctx context.Context) (pgx.Tx, error) {
	tx, err := p.Pool.Begin(ctx)
	return tx, storeErr(err)
}

// rows classifies the error of a query read row by row (pgx reports a
// failed query there too).
type rows struct{ pgx.Rows }

func (r rows) Err() error { return storeErr(r.Rows.Err()) }

type row struct{ pgx.Row }

func (r row) Scan(dest ...any) error { return storeErr(r.Row.Scan(dest...)) }

// storeErr turns an error that says the database cannot be reached (no
// connection, a connection lost, the server shutting down or out of
// resources) into EUnavailable with err kept for the logs; other errors
// pass as they are.
func storeErr(err error) error {
	if err == nil || tollgate.ErrorCode(err) != tollgate.EInternal || !unreachable(err) {
		return err
	}
	return tollgate.Unavailable(err, 1, "the database cannot be reached right now; try again shortly")
}

func unreachable(err error) bool {
	var ce *pgconn.ConnectError
	var ne net.Error
	switch code := pgCode(err); {
	case errors.Is(err, context.Canceled):
		return false // the caller left
	case errors.As(err, &ce), errors.As(err, &ne), pgconn.Timeout(err), pgconn.SafeToRetry(err),
		errors.Is(err, pgconn.ErrConnClosed), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed):
		return true
	case strings.HasPrefix(code, "08"), strings.HasPrefix(code, "53"): // connection exception, insufficient resources
		return true
	case code == "57P01", code == "57P02", code == "57P03": // admin or crash shutdown, cannot connect now
		return true
	}
	return false
}
