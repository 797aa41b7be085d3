package tollgate_test

import (
	"testing"

	"github.com/tollgate/tollgate/internal/tollgate"
)

func TestParseMoney(t *testing.T) {
	tests := []struct {
		in   string
		want tollgate.Money
		ok   bool
	}{
		{"5", 5_000_000, true},
		{"5.00", 5_000_000, true},
		{"0.0015", 1_500, true},
		{"0.000001", 1, true},
		{"-1.25", -1_250_000, true},
		{"0.0000001", 0, false},
		{"1e-3", 0, false},
		{"", 0, false},
		{".5", 0, false},
		{"5.", 0, false},
		{"1,5", 0, false},
		{"99999999999999", 0, false},
	}
	for _, tt := range tests {
		got, err := tollgate.ParseMoney(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseMoney(%q) = %d, %v; want %d ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if !tt.ok && tollgate.ErrorCode(err) != tollgate.EInvalid {
			t.Errorf("ParseMoney(%q) error code %q, want %q", tt.in, tollgate.ErrorCode(err), tollgate.EInvalid)
		}
	}
}

func TestMoneyString(t *testing.T) {
	for m, want := range map[tollgate.Money]string{0: "0.000000", 50_000: "0.050000", 5_000_000: "5.000000", -1: "-0.000001"} {
		if got := m.String(); got != want {
			t.Errorf("Money(%d).String() = %q, want %q", int64(m), got, want)
		}
	}
}
