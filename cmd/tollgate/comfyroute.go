package main

import (
	"fmt"

	"github.com/tollgate/tollgate/internal/comfyroute"
	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/proxy"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// newComfyRoutes builds the comfyui routes of the config; their backends
// go to the jobs service, their handlers to the data plane.
func (g *gateway) newComfyRoutes() error {
	for i := range g.cfg.Routes {
		rc := &g.cfg.Routes[i]
		if rc.Type != config.RouteComfyUI {
			continue
		}
		rt, err := comfyroute.New(g.cfg, rc, comfyroute.Options{Logger: g.log})
		if err != nil {
			return fmt.Errorf("routes[%d] %q: %w", i, rc.Name, err)
		}
		g.comfy = append(g.comfy, rt)
	}
	return nil
}

// comfyBackends are the jobs backends of the comfyui routes, by name.
func (g *gateway) comfyBackends() map[string]tollgate.Backend {
	if len(g.comfy) == 0 {
		return nil
	}
	m := map[string]tollgate.Backend{}
	for _, rt := range g.comfy {
		m[rt.Name()] = rt.Backend()
	}
	return m
}

// nativeRoutes are the data plane's handlers of the comfyui routes.
func (g *gateway) nativeRoutes() map[string]proxy.Native {
	m := map[string]proxy.Native{}
	for _, rt := range g.comfy {
		m[rt.Name()] = rt
	}
	return m
}
