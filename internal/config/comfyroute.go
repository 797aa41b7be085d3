package config

import (
	"fmt"
	"path"
	"strings"
)

// NodeRules are the node classes a raw workflow may use: a class runs
// when it matches one of Allow (or Allow is empty) and none of Deny.
// Patterns are globs as path.Match reads them ("*", "?", "[a-z]"), matched
// against a node's whole class_type, "*" spanning any "/" in it.
type NodeRules struct {
	// Allow lists the classes allowed. Defaults to every class.
	Allow []string `yaml:"allow"`
	// Deny lists classes refused even when Allow matches. Defaults to
	// none.
	Deny []string `yaml:"deny"`
}

// Allows reports whether class may run under these rules.
func (n NodeRules) Allows(class string) bool {
	for _, pat := range n.Deny {
		if classMatch(pat, class) {
			return false
		}
	}
	if len(n.Allow) == 0 {
		return true
	}
	for _, pat := range n.Allow {
		if classMatch(pat, class) {
			return true
		}
	}
	return false
}

// classMatch matches a class name as a whole: "*" also spans a "/" in
// it (class names are not paths), so "*Shell*" refuses "Tools/Shell".
func classMatch(pat, class string) bool {
	ok, _ := path.Match(strings.ReplaceAll(pat, "/", "\x00"), strings.ReplaceAll(class, "/", "\x00"))
	return ok
}

// check adds a problem for every pattern path.Match cannot read.
func (n NodeRules) check(p *problems, key string) {
	for i, pat := range n.Allow {
		if _, err := path.Match(pat, ""); err != nil || pat == "" {
			p.add(fmt.Sprintf("%s.allow[%d]", key, i), "not a glob pattern: %q", pat)
		}
	}
	for i, pat := range n.Deny {
		if _, err := path.Match(pat, ""); err != nil || pat == "" {
			p.add(fmt.Sprintf("%s.deny[%d]", key, i), "not a glob pattern: %q", pat)
		}
	}
}

// checkComfyRoute checks the keys of a comfyui route, and that other
// routes leave its keys alone.
func (c *Config) checkComfyRoute(p *problems, key string, r Route) {
	if r.Type != RouteComfyUI {
		if r.Capacity != 0 {
			p.add(key+".capacity", "only a comfyui route takes capacity (job models have their own)")
		}
		if len(r.Nodes.Allow)+len(r.Nodes.Deny) > 0 {
			p.add(key+".nodes", "only a comfyui route runs workflows")
		}
		return
	}
	if !strings.HasSuffix(r.Path, "/") {
		p.add(key+".path", "a comfyui route serves a whole app: want a prefix ending in /, got %q", r.Path)
	}
	if r.Public {
		p.add(key+".public", "a comfyui route keeps each caller's prompts and files apart, so it needs authenticated callers")
	}
	if len(r.Models) > 0 || len(r.Tenants) > 0 {
		p.add(key+".upstreams", "a comfyui route's prompts share one queue over its upstreams: models and tenants are not taken")
	}
	if r.Capacity < 1 {
		p.add(key+".capacity", "must be at least 1")
	}
	for _, j := range c.Jobs {
		if j.Name == r.Name {
			p.add(key+".name", "%q is also a job model's name; a comfyui route's prompts are metered under the route's name", r.Name)
		}
	}
	r.Nodes.check(p, key+".nodes")
}

// checkPlanNodes checks every plan's node patterns.
func (c *Config) checkPlanNodes(p *problems) {
	for name, pl := range c.Plans {
		pl.Nodes.check(p, "plans."+name+".nodes")
	}
}

// RouteJobModels are the job models that run the prompts of comfyui
// routes: one per route, named after it, on its upstreams with its
// capacity, timeout, scopes and price, taking a raw workflow as input.
func (c *Config) RouteJobModels() []JobModel {
	var out []JobModel
	for _, r := range c.Routes {
		if r.Type != RouteComfyUI {
			continue
		}
		m := JobModel{Name: r.Name, Backend: BackendComfyUI, Upstreams: r.Upstreams, Capacity: r.Capacity,
			Scopes: r.Scopes, Timeout: r.Timeout, Price: r.Price, Graph: true}
		if m.Scopes == nil {
			m.Scopes = []string{}
		}
		m.SetDefaults()
		out = append(out, m)
	}
	return out
}

// AllJobModels are the configured job models and those of comfyui
// routes.
func (c *Config) AllJobModels() []JobModel {
	return append(append([]JobModel(nil), c.Jobs...), c.RouteJobModels()...)
}
