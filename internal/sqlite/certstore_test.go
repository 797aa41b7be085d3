package sqlite_test

import (
	"testing"

	"github.com/tollgate/tollgate/internal/storetest"
)

func TestCertStore(t *testing.T) { storetest.RunCertStore(t, MustOpen(t).Certs()) }
