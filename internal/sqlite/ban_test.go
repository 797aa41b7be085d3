package sqlite_test

import (
	"testing"

	"github.com/tollgate/tollgate/internal/limit/limittest"
)

func TestBanStore(t *testing.T) { limittest.BanStore(t, MustOpen(t).Bans()) }
