package limit

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// BanJSON is a ban as the admin API shows it.
type BanJSON struct {
	IP        string    `json:"ip"`
	Reason    string    `json:"reason,omitempty"`
	Until     time.Time `json:"until"`
	CreatedAt time.Time `json:"created_at"`
}

func banJSON(b *tollgate.Ban) BanJSON {
	return BanJSON{IP: b.IP, Reason: b.Reason, Until: b.Until.UTC(), CreatedAt: b.CreatedAt.UTC()}
}

// BanRequest is the body of POST /admin/v1/bans. Duration is a Go duration
// such as "15m" or "24h"; empty uses protection.ban_duration.
type BanRequest struct {
	IP       string `json:"ip"`
	Duration string `json:"duration"`
	Reason   string `json:"reason"`
}

// Handlers returns the admin API for bans by ServeMux pattern, for the
// caller to mount behind its admin check:
//
//	GET    /admin/v1/bans          → {"bans":[{ip, reason, until, created_at}]}
//	POST   /admin/v1/bans          ← {"ip","duration","reason"} → 201 the ban
//	DELETE /admin/v1/bans/{ip...}  → 204, or 404 when ip is not banned
func (b *Bans) Handlers() map[string]httpx.HandlerFunc {
	return map[string]httpx.HandlerFunc{
		"GET /admin/v1/bans":            b.ListHandler,
		"POST /admin/v1/bans":           b.AddHandler,
		"DELETE /admin/v1/bans/{ip...}": b.LiftHandler,
	}
}

// ListHandler serves GET /admin/v1/bans.
func (b *Bans) ListHandler(w http.ResponseWriter, r *http.Request) error {
	bans, err := b.List(r.Context())
	if err != nil {
		return err
	}
	out := struct {
		Bans []BanJSON `json:"bans"`
	}{Bans: []BanJSON{}}
	for _, ban := range bans {
		out.Bans = append(out.Bans, banJSON(ban))
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

// AddHandler serves POST /admin/v1/bans.
func (b *Bans) AddHandler(w http.ResponseWriter, r *http.Request) error {
	ban, commit, err := b.AddChange(r, b.opts.Store)
	if err != nil {
		return err
	}
	commit(r.Context())
	httpx.WriteJSON(w, http.StatusCreated, banJSON(ban))
	return nil
}

// AddChange reads the body of POST /admin/v1/bans and stores the ban in st
// (the transaction of an audited change); the returned function applies
// it on every replica once st's transaction commits.
func (b *Bans) AddChange(r *http.Request, st tollgate.BanStore) (*tollgate.Ban, func(context.Context), error) {
	var req BanRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, nil, tollgate.Errorf(tollgate.EInvalid, "want a JSON body {\"ip\",\"duration\",\"reason\"}")
	}
	d := b.duration
	if req.Duration != "" {
		var err error
		if d, err = time.ParseDuration(req.Duration); err != nil || d <= 0 {
			return nil, nil, tollgate.Errorf(tollgate.EInvalid, "duration %q: want a positive duration such as 15m", req.Duration)
		}
	}
	return b.BanIn(r.Context(), st, strings.TrimSpace(req.IP), d, req.Reason, false)
}

// LiftHandler serves DELETE /admin/v1/bans/{ip...}.
func (b *Bans) LiftHandler(w http.ResponseWriter, r *http.Request) error {
	_, commit, err := b.LiftChange(r, b.opts.Store)
	if err != nil {
		return err
	}
	commit(r.Context())
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// LiftChange removes the ban that DELETE /admin/v1/bans/{ip...} names from
// st; the returned function lifts it on every replica once st's
// transaction commits.
func (b *Bans) LiftChange(r *http.Request, st tollgate.BanStore) (string, func(context.Context), error) {
	ip := r.PathValue("ip")
	if ip == "" {
		ip = r.URL.Query().Get("ip")
	}
	commit, err := b.LiftIn(r.Context(), st, ip)
	return ip, commit, err
}
