package meter

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// InvoiceParams select an invoice: one tenant, one calendar month (UTC).
type InvoiceParams struct {
	TenantID string
	Month    string // 2006-01
	Format   string // json (default) or csv
	Currency string // printed on the invoice; defaults to USD
}

// Invoice is a tenant's bill for a month. Lines are the ledger's settled
// records grouped by user, route and model (started in the month), so
// they can be reproduced from the ledger; Total is their sum, equal to the
// ledger's sum to the micro-unit.
type Invoice struct {
	TenantID string        `json:"tenant_id"`
	Month    string        `json:"month"`
	From     time.Time     `json:"from"`
	To       time.Time     `json:"to"`
	Currency string        `json:"currency"`
	Lines    []InvoiceLine `json:"lines"`
	Requests int64         `json:"requests"`
	Total    string        `json:"total"`
}

// InvoiceLine is one user's use of one route and model.
type InvoiceLine struct {
	UserID       string  `json:"user_id"`
	Route        string  `json:"route"`
	Model        string  `json:"model"`
	Requests     int64   `json:"requests"`
	InputTokens  int64   `json:"input_tokens"`
	OutputTokens int64   `json:"output_tokens"`
	Images       int64   `json:"images"`
	Megapixels   float64 `json:"megapixels"`
	AudioSeconds float64 `json:"audio_seconds"`
	GPUSeconds   float64 `json:"gpu_seconds"`
	// OutputAudioSeconds is the audio in the files the calls returned.
	OutputAudioSeconds float64 `json:"output_audio_seconds"`

	Amount string `json:"amount"`
}

// BuildInvoice reads a tenant's month from the ledger. EInvalid for a bad
// month or a missing tenant.
func BuildInvoice(ctx context.Context, l tollgate.Ledger, p InvoiceParams) (*Invoice, error) {
	if p.TenantID == "" {
		return nil, tollgate.Errorf(tollgate.EInvalid, "an invoice needs a tenant")
	}
	from, err := time.Parse("2006-01", p.Month)
	if err != nil {
		return nil, tollgate.Errorf(tollgate.EInvalid, "month %q: want YYYY-MM such as 2026-11", p.Month)
	}
	to := from.AddDate(0, 1, 0)
	rows, err := l.Usage(ctx, tollgate.UsageQuery{From: from, To: to, TenantID: p.TenantID, GroupBy: tollgate.GroupLine})
	if err != nil {
		return nil, fmt.Errorf("invoice: %w", err)
	}
	inv := &Invoice{TenantID: p.TenantID, Month: p.Month, From: from, To: to, Currency: p.Currency, Lines: []InvoiceLine{}}
	if inv.Currency == "" {
		inv.Currency = "USD"
	}
	var total tollgate.Money
	for _, r := range rows {
		if r.Requests == 0 {
			continue // only calls still in flight: not billed yet
		}
		inv.Lines = append(inv.Lines, InvoiceLine{UserID: r.UserID, Route: r.Route, Model: r.Model, Requests: r.Requests,
			InputTokens: r.Units.InputTokens, OutputTokens: r.Units.OutputTokens, Images: r.Units.Images,
			Megapixels: float64(r.Units.MegapixelMillis) / 1000, AudioSeconds: float64(r.Units.AudioMillis) / 1000,
			GPUSeconds: float64(r.Units.GPUMillis) / 1000, OutputAudioSeconds: float64(r.Units.OutputAudioMillis) / 1000,
			Amount: r.Cost.String()})
		inv.Requests += r.Requests
		total += r.Cost
	}
	inv.Total = total.String()
	return inv, nil
}

// WriteInvoice writes a tenant's invoice for a month as JSON or CSV (for
// `tollgate invoice --tenant T --month 2026-11`).
func WriteInvoice(ctx context.Context, l tollgate.Ledger, p InvoiceParams, w io.Writer) error {
	inv, err := BuildInvoice(ctx, l, p)
	if err != nil {
		return err
	}
	switch p.Format {
	case "", "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(inv); err != nil {
			return fmt.Errorf("write invoice: %w", err)
		}
		return nil
	case "csv":
		return writeInvoiceCSV(inv, w)
	}
	return tollgate.Errorf(tollgate.EInvalid, "format %q: want json or csv", p.Format)
}

var invoiceHeader = []string{"tenant_id", "month", "user_id", "route", "model", "requests", "input_tokens",
	"output_tokens", "images", "megapixels", "audio_seconds", "gpu_seconds", "output_audio_seconds", "amount", "currency"}

// writeInvoiceCSV writes one header row, one row per line and a TOTAL row,
// RFC 4180 quoted (CRLF line ends) and safe to open in a spreadsheet.
func writeInvoiceCSV(inv *Invoice, w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.UseCRLF = true
	rows := [][]string{invoiceHeader}
	for _, l := range inv.Lines {
		rows = append(rows, []string{inv.TenantID, inv.Month, l.UserID, l.Route, l.Model, itoa(l.Requests),
			itoa(l.InputTokens), itoa(l.OutputTokens), itoa(l.Images), ftoa(l.Megapixels), ftoa(l.AudioSeconds),
			ftoa(l.GPUSeconds), ftoa(l.OutputAudioSeconds), l.Amount, inv.Currency})
	}
	rows = append(rows, []string{inv.TenantID, inv.Month, "TOTAL", "", "", itoa(inv.Requests), "", "", "", "", "", "", "",
		inv.Total, inv.Currency})
	for _, row := range rows {
		if err := cw.Write(safeCells(row)); err != nil {
			return fmt.Errorf("write invoice: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write invoice: %w", err)
	}
	return nil
}

// safeCells defuses spreadsheet formulas: a cell starting with = + - @,
// tab or carriage return gets a leading single quote, so a user or model
// name such as "=HYPERLINK(…)" is shown as text, never run.
func safeCells(row []string) []string {
	out := make([]string, len(row))
	for i, c := range row {
		if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
			c = "'" + c
		}
		out[i] = c
	}
	return out
}

func itoa(n int64) string   { return strconv.FormatInt(n, 10) }
func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', 3, 64) }
