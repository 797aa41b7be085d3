package admin

import (
	"context"
	"net/http"
	"time"

	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// Bans makes ban changes through a given store, so that they join the
// audit transaction (limit.Bans).
type Bans interface {
	// AddChange reads the body of POST /bans and stores the ban in st.
	AddChange(r *http.Request, st tollgate.BanStore) (*tollgate.Ban, func(context.Context), error)
	// LiftChange removes the ban DELETE /bans/{ip...} names from st.
	LiftChange(r *http.Request, st tollgate.BanStore) (string, func(context.Context), error)
}

// banView is a ban as the admin API shows it.
type banView struct {
	IP        string    `json:"ip"`
	Reason    string    `json:"reason,omitempty"`
	Until     time.Time `json:"until"`
	CreatedAt time.Time `json:"created_at"`
}

// addBan answers POST /admin/v1/bans {"ip","duration","reason"}.
func (a *API) addBan(w http.ResponseWriter, r *http.Request) error {
	ev := &tollgate.AuditEvent{Action: tollgate.AuditBanAdd}
	var ban *tollgate.Ban
	err := a.change(r, ev, func(tx tollgate.AuditTx) (commitFunc, error) {
		b, commit, err := a.opts.Bans.AddChange(r, tx.Bans())
		if err != nil {
			return nil, err
		}
		ban = b
		ev.Target, ev.Reason, ev.Detail = b.IP, b.Reason, "until "+b.Until.UTC().Format(time.RFC3339)
		return commit, nil
	})
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusCreated, banView{IP: ban.IP, Reason: ban.Reason, Until: ban.Until.UTC(), CreatedAt: ban.CreatedAt.UTC()})
	return nil
}

// liftBan answers DELETE /admin/v1/bans/{ip...}: 204, or 404 when the IP
// is not banned.
func (a *API) liftBan(w http.ResponseWriter, r *http.Request) error {
	ev := &tollgate.AuditEvent{Action: tollgate.AuditBanLift, Target: r.PathValue("ip")}
	err := a.change(r, ev, func(tx tollgate.AuditTx) (commitFunc, error) {
		ip, commit, err := a.opts.Bans.LiftChange(r, tx.Bans())
		ev.Target = ip
		return commit, err
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
