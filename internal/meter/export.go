package meter

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// EventType is the CloudEvents type of an exported usage record.
const EventType = "dev.tollgate.usage"

// CloudEvent is one exported usage record, CloudEvents 1.0 in JSON (one
// per line). ID is the request id, so a consumer de-duplicates replays;
// Sequence is the export cursor: pass the last one seen to resume.
type CloudEvent struct {
	SpecVersion     string    `json:"specversion"`
	ID              string    `json:"id"`
	Source          string    `json:"source"`
	Type            string    `json:"type"`
	Subject         string    `json:"subject"` // the user id
	Time            time.Time `json:"time"`
	DataContentType string    `json:"datacontenttype"`
	Sequence        string    `json:"sequence"`
	Data            EventData `json:"data"`
}

// EventData is the record carried by a CloudEvent.
type EventData struct {
	TenantID     string    `json:"tenant_id"`
	UserID       string    `json:"user_id"`
	Route        string    `json:"route"`
	Model        string    `json:"model,omitempty"`
	Outcome      string    `json:"outcome"`
	Status       int       `json:"status"`
	Start        time.Time `json:"start"`
	End          time.Time `json:"end"`
	LatencyMS    int64     `json:"latency_ms"`
	BytesIn      int64     `json:"bytes_in"`
	BytesOut     int64     `json:"bytes_out"`
	InputTokens  int64     `json:"input_tokens"`
	OutputTokens int64     `json:"output_tokens"`
	Images       int64     `json:"images"`
	Megapixels   float64   `json:"megapixels"`
	AudioSeconds float64   `json:"audio_seconds"`
	GPUSeconds   float64   `json:"gpu_seconds"`
	// OutputAudioSeconds is the audio in the files the call returned.
	OutputAudioSeconds float64 `json:"output_audio_seconds"`

	Cost     string `json:"cost"`
	Currency string `json:"currency"`
}

// ExportParams select an export.
type ExportParams struct {
	// After is the cursor: the Sequence of the last event already
	// consumed; 0 starts at the beginning.
	After int64
	// Limit caps the events written; 0 writes all.
	Limit int
	// Source is the CloudEvents source. Defaults to "tollgate".
	Source string
	// Currency of the costs. Defaults to USD.
	Currency string
}

// Export writes settled records after p.After as CloudEvents JSON lines in
// settlement order and returns the cursor to resume from.
func Export(ctx context.Context, l tollgate.Ledger, p ExportParams, w io.Writer) (int64, error) {
	src, cur := p.Source, p.Currency
	if src == "" {
		src = "tollgate"
	}
	if cur == "" {
		cur = "USD"
	}
	enc := json.NewEncoder(w)
	cursor, written := p.After, 0
	for {
		page := 500
		if p.Limit > 0 {
			page = min(page, p.Limit-written)
		}
		if page == 0 {
			return cursor, nil
		}
		recs, err := l.Export(ctx, cursor, page)
		if err != nil {
			return cursor, err
		}
		for _, r := range recs {
			if err := enc.Encode(cloudEvent(r, src, cur)); err != nil {
				return cursor, fmt.Errorf("export: %w", err)
			}
			cursor = r.Seq
			written++
		}
		if len(recs) < page {
			return cursor, nil
		}
	}
}

func cloudEvent(r *tollgate.UsageRecord, source, currency string) CloudEvent {
	return CloudEvent{SpecVersion: "1.0", ID: r.RequestID, Source: source, Type: EventType, Subject: r.UserID,
		Time: r.End, DataContentType: "application/json", Sequence: strconv.FormatInt(r.Seq, 10),
		Data: EventData{TenantID: r.TenantID, UserID: r.UserID, Route: r.Route, Model: r.Model, Outcome: r.Outcome,
			Status: r.Status, Start: r.Start, End: r.End, LatencyMS: r.LatencyMS, BytesIn: r.BytesIn, BytesOut: r.BytesOut,
			InputTokens: r.Units.InputTokens, OutputTokens: r.Units.OutputTokens, Images: r.Units.Images,
			Megapixels: float64(r.Units.MegapixelMillis) / 1000, AudioSeconds: float64(r.Units.AudioMillis) / 1000,
			GPUSeconds: float64(r.Units.GPUMillis) / 1000, OutputAudioSeconds: float64(r.Units.OutputAudioMillis) / 1000,
			Cost: r.Cost.String(), Currency: currency}}
}

// UsageParams select a usage report for `tollgate usage`.
type UsageParams struct {
	Query  tollgate.UsageQuery
	Format string // table (default), csv or json
	// Names, when set, maps the user or tenant ids of a report grouped by
	// user or tenant to names, shown in a column beside the ids in a table
	// (CSV and JSON keep their columns); an id it lacks is "(deleted)".
	Names map[string]string
}

// WriteUsage writes a usage report as an aligned table, CSV or the JSON
// of the usage endpoints.
func WriteUsage(ctx context.Context, l tollgate.Ledger, p UsageParams, w io.Writer) error {
	rep, err := Report(ctx, l, p.Query)
	if err != nil {
		return err
	}
	key := p.Query.GroupBy
	if key == "" {
		key = "group"
	}
	named := p.Names != nil && (p.Format == "" || p.Format == "table") && (key == tollgate.GroupUser || key == tollgate.GroupTenant)
	header := []string{key, "requests", "input_tokens", "output_tokens", "images", "megapixels", "audio_seconds", "gpu_seconds", "output_audio_seconds", "in_flight", "reserved", "cost"}
	if named {
		header = slices.Insert(header, 1, "name")
	}
	rows := [][]string{header}
	for _, r := range append(rep.Rows, rep.Total) {
		k := "TOTAL"
		for _, v := range []*string{r.UserID, r.TenantID, r.Route, r.Model, r.Day} {
			if v != nil {
				k = *v
			}
		}
		cells := []string{k}
		if named {
			name, ok := p.Names[k]
			if !ok && k != "TOTAL" {
				name = "(deleted)"
			}
			cells = append(cells, name)
		}
		rows = append(rows, append(cells, itoa(r.Requests), itoa(r.InputTokens), itoa(r.OutputTokens), itoa(r.Images),
			ftoa(r.Megapixels), ftoa(r.AudioSeconds), ftoa(r.GPUSeconds), ftoa(r.OutputAudioSeconds), itoa(r.InFlight), r.Reserved, r.Cost))
	}
	switch p.Format {
	case "", "table":
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		for _, row := range rows {
			for _, c := range row {
				_, _ = fmt.Fprint(tw, c, "\t")
			}
			_, _ = fmt.Fprintln(tw)
		}
		if err := tw.Flush(); err != nil {
			return fmt.Errorf("write usage: %w", err)
		}
		return nil
	case "csv":
		cw := csv.NewWriter(w)
		cw.UseCRLF = true
		for _, row := range rows {
			_ = cw.Write(safeCells(row))
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return fmt.Errorf("write usage: %w", err)
		}
		return nil
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fmt.Errorf("write usage: %w", err)
		}
		return nil
	}
	return tollgate.Errorf(tollgate.EInvalid, "format %q: want table, csv or json", p.Format)
}
