// Package comfyroute serves ComfyUI's own web UI and API (a route of type
// comfyui) to many users, each seeing only their own work. A prompt
// queued there is a job of its user (internal/jobs: the same fair queue,
// reservation, metering and limits as every job), whose id is the
// prompt_id the caller gets at once. The queue, the history, /api/jobs,
// /view, uploads, /interrupt and the websocket are answered by the
// gateway from the caller's own jobs and files; the page, its assets,
// /object_info and the other read-only endpoints pass through to
// ComfyUI with Comfy-User set to the caller; /free, /internal/* and the
// ComfyUI-Manager routes are for admins.
package comfyroute

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tollgate/tollgate/internal/comfyui"
	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/jobs"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// Options are a route's collaborators.
type Options struct {
	// Client makes the calls to ComfyUI (uploads, files, websockets).
	// Defaults to a client without a timeout.
	Client *http.Client
	// Logger. Defaults to slog.Default().
	Logger *slog.Logger
	// Clock. Defaults to time.Now.
	Clock func() time.Time
}

// Route is one comfyui route. Build it with New, give its Backend to the
// jobs service, then SetJobs; Close it when the gateway stops.
type Route struct {
	cfg     *config.Route
	model   *config.JobModel
	backend *comfyui.GraphBackend
	client  *http.Client
	log     *slog.Logger
	now     func() time.Time
	maxBody int64
	jobs    *jobs.Service

	hub    *hub
	files  *fileIndex
	hidden *hiddenHistory
	users  *comfyUsers

	ctx    context.Context // ends at Close: the route's followers
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ interface {
	Serve(http.ResponseWriter, *http.Request, *tollgate.Principal, string) (bool, error)
} = (*Route)(nil)

// New builds the route rc of cfg.
func New(cfg *config.Config, rc *config.Route, o Options) (*Route, error) {
	var model *config.JobModel
	for _, m := range cfg.RouteJobModels() {
		if m.Name == rc.Name {
			model = &m
		}
	}
	if model == nil {
		return nil, fmt.Errorf("route %s is not a comfyui route", rc.Name)
	}
	maxBody, err := config.ParseSize(rc.MaxBody)
	if err != nil {
		return nil, fmt.Errorf("max_body: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rt := &Route{cfg: rc, model: model, client: cmp.Or(o.Client, http.DefaultClient), log: cmp.Or(o.Logger, slog.Default()),
		now: o.Clock, maxBody: maxBody, hub: newHub(), files: newFileIndex(), hidden: newHiddenHistory(), users: newComfyUsers(), ctx: ctx, cancel: cancel}
	if rt.now == nil {
		rt.now = time.Now
	}
	rt.backend, err = comfyui.NewGraph(model, comfyui.GraphOptions{
		Options: comfyui.Options{Client: o.Client, Logger: rt.log},
		Nodes:   rc.Nodes,
		Plans:   func(plan string) config.NodeRules { return cfg.Plans[cfg.PlanName(plan)].Nodes },
		Tap:     rt.tap,
	})
	if err != nil {
		cancel()
		return nil, err
	}
	return rt, nil
}

// Name is the route's name, also its job model's.
func (rt *Route) Name() string { return rt.cfg.Name }

// Backend runs the route's prompts; give it to the jobs service under
// the route's name.
func (rt *Route) Backend() tollgate.Backend { return rt.backend }

// SetJobs gives the route the jobs service its prompts are queued in.
func (rt *Route) SetJobs(s *jobs.Service) { rt.jobs = s }

// Close ends the route's websockets and followers.
func (rt *Route) Close() {
	rt.cancel()
	rt.hub.closeAll()
	rt.wg.Wait()
}

// owner is whose a request is.
func owner(p *tollgate.Principal) tollgate.Owner {
	return tollgate.Owner{TenantID: p.TenantID, UserID: p.UserID}
}

func ownerKey(o tollgate.Owner) string { return o.TenantID + "\x00" + o.UserID }

// adminPrefixes are ComfyUI's routes that act on the whole server (its
// memory, logs, files, settings of the server), its assets API (which
// lists and serves every file of input and output, whoever's), and
// ComfyUI-Manager's (installing nodes, restarting): for admins only.
var adminPrefixes = []string{"/free", "/internal/", "/assets/", "/manager/", "/customnode/", "/externalmodel/", "/snapshot/",
	"/comfyui_manager/", "/v2/manager/", "/v2/customnode/", "/v2/externalmodel/", "/v2/snapshot/", "/v2/comfyui_manager/"}

func adminOnly(api string) bool {
	for _, pfx := range adminPrefixes {
		if api == strings.TrimSuffix(pfx, "/") || strings.HasSuffix(pfx, "/") && strings.HasPrefix(api, pfx) {
			return true
		}
	}
	return false
}

// Serve answers the route's own endpoints and prepares the rest for
// forwarding. rel is the path under the route.
func (rt *Route) Serve(w http.ResponseWriter, r *http.Request, p *tollgate.Principal, rel string) (bool, error) {
	if rt.jobs == nil {
		return false, tollgate.Errorf(tollgate.EUnavailable, "the route's queue is not running")
	}
	// ComfyUI serves every route also under /api, and declares some
	// (/api/jobs) with /api already: those are served as /api/api/jobs
	// too. Every /api is cut, so no form escapes the checks below.
	api := rel
	for {
		rest, ok := strings.CutPrefix(api, "/api/")
		if !ok {
			break
		}
		api = "/" + rest
	}
	get, post := r.Method == http.MethodGet || r.Method == http.MethodHead, r.Method == http.MethodPost
	// Comfy-User is the caller, never a client's own: under --multi-user
	// ComfyUI keeps each user's settings and saved workflows apart by it.
	r.Header.Del("Comfy-User")
	userdata := api == "/userdata" || strings.HasPrefix(api, "/userdata/") || api == "/v2/userdata" || strings.HasPrefix(api, "/v2/userdata/")
	if api == "/settings" || strings.HasPrefix(api, "/settings/") || userdata {
		r.Header.Set("Comfy-User", rt.comfyUser(r.Context(), owner(p)))
		// Without --multi-user ComfyUI keeps one user data folder (saved
		// workflows, templates) for everyone on the route.
		if userdata && rt.users.shared() && p.Role != "admin" {
			return false, tollgate.Errorf(tollgate.EForbidden,
				"saved workflows are shared by every user of this ComfyUI: run it with --multi-user to keep each user's apart")
		}
	} else {
		r.Header.Set("Comfy-User", comfyui.ComfyUser(owner(p)))
	}
	var err error
	switch {
	case api == "/users" && get:
		err = rt.getUsers(w, r, p)
	case api == "/ws" && get:
		return true, rt.serveWS(w, r, p)
	case api == "/prompt" && post:
		err = rt.postPrompt(w, r, p)
	case api == "/prompt" && get:
		err = rt.getPrompt(w, r, p)
	case api == "/queue" && get:
		err = rt.getQueue(w, r, p)
	case api == "/queue" && post:
		err = rt.postQueue(w, r, p)
	case api == "/history" && get, strings.HasPrefix(api, "/history/") && get:
		err = rt.getHistory(w, r, p, strings.TrimPrefix(strings.TrimPrefix(api, "/history"), "/"))
	case api == "/history" && post:
		err = rt.postHistory(w, r, p)
	case api == "/jobs" && get, strings.HasPrefix(api, "/jobs/") && get:
		err = rt.getJobs(w, r, p, strings.TrimPrefix(strings.TrimPrefix(api, "/jobs"), "/"))
	case api == "/interrupt" && post:
		err = rt.postInterrupt(w, r, p)
	case api == "/view" && get:
		err = rt.view(w, r, p)
	case (api == "/upload/image" || api == "/upload/mask") && post:
		err = rt.upload(w, r, p, api == "/upload/mask")
	case api == "/users" && !get:
		fallthrough // creating ComfyUI users is the admin's
	case adminOnly(api):
		if p.Role != "admin" {
			return false, tollgate.Errorf(tollgate.EForbidden, "%s is for admins only on this route", api)
		}
		return false, nil
	case strings.HasPrefix(api, "/history") || strings.HasPrefix(api, "/queue") ||
		strings.HasPrefix(api, "/prompt") || strings.HasPrefix(api, "/interrupt") || strings.HasPrefix(api, "/upload/") ||
		api == "/jobs" || strings.HasPrefix(api, "/jobs/") || api == "/ws":
		return false, tollgate.Errorf(tollgate.ENotFound, "%s %s is not served on this route", r.Method, rel)
	default:
		// The page, its assets, /object_info, /system_stats, /embeddings,
		// /extensions, /models, /settings, /userdata and the routes of
		// custom nodes: forwarded. A cookie session's CSRF token for the
		// page's own calls is the front layer's to add to the page; the
		// authenticator checks it on every state-changing call here.
		return false, nil
	}
	return true, err
}
