package main

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/demo"
)

// startDemo serves the built-in demo backends on loopback ports and adds
// their routes to cfg: demo-openai (the demo-echo model under /v1/),
// demo-colorize (/demo/colorize) and the job model demo/sketch. It returns a function that stops them.
func startDemo(cfg *config.Config) (func(), error) {
	var servers []*http.Server
	stop := func() {
		for _, s := range servers {
			s.Close()
		}
	}
	serve := func(h http.Handler) (string, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", fmt.Errorf("demo backend: %w", err)
		}
		s := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		servers = append(servers, s)
		go s.Serve(ln) //nolint:errcheck // ends with Close
		return "http://" + ln.Addr().String(), nil
	}
	echoURL, err := serve((&demo.Echo{WordDelay: 50 * time.Millisecond}).Handler())
	if err != nil {
		stop()
		return nil, err
	}
	imageURL, err := serve((&demo.Colorize{Delay: 2 * time.Second}).Handler())
	if err != nil {
		stop()
		return nil, err
	}
	sketchURL, err := serve((&demo.Sketch{Delay: time.Second}).Handler())
	if err != nil {
		stop()
		return nil, err
	}
	if err := addDemoRoutes(cfg, echoURL, imageURL, sketchURL); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

// addDemoRoutes adds the demo's routes, on the backends at echoURL and
// imageURL, and its job model, on sketchURL, to cfg and validates it.
func addDemoRoutes(cfg *config.Config, echoURL, imageURL, sketchURL string) error {
	if cfg.JobModel(demo.SketchModel) == nil {
		cfg.Jobs = append(cfg.Jobs, demoJob(sketchURL))
	}
	for _, r := range cfg.Routes {
		if r.Path == "/v1/" || r.Path == "/demo/colorize" {
			return fmt.Errorf("--demo: route %q already uses %s; run the demo without that route", r.Name, r.Path)
		}
	}
	cfg.Routes = append(cfg.Routes,
		config.Route{
			Name: "demo-openai", Path: "/v1/", Type: config.RouteOpenAI, Demo: true,
			Upstreams: []string{echoURL}, Models: map[string][]string{demo.EchoModel: {echoURL}},
			Scopes: []string{"infer:text"}, Timeout: 60 * time.Second, MaxBody: "1MiB",
			Price: config.Price{PerRequest: "0.001", Per1kInputTokens: "0.0005", Per1kOutputToken: "0.0015"},
		},
		config.Route{
			Name: "demo-colorize", Path: "/demo/colorize", Type: config.RouteHTTP, Demo: true,
			Upstreams: []string{imageURL}, Scopes: []string{"infer:image"}, Timeout: 60 * time.Second,
			MaxBody: "20MiB", Methods: []string{"POST"}, GPUSecondsHeader: "X-Demo-GPU-Seconds",
			Price: config.Price{PerRequest: "0.01", PerMegapixel: "0.02"},
		},
	)
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("demo routes: %w", err)
	}
	return nil
}

// demoJob is the demo/sketch job model: a prompt and a size in, a PNG out
// after a second of pretend GPU work.
func demoJob(upstream string) config.JobModel {
	minSize, maxSize := 16.0, 1024.0
	j := config.JobModel{
		Name: demo.SketchModel, Backend: config.BackendHTTP, Upstreams: []string{upstream}, Path: "/generate",
		Inputs: map[string]config.JobInput{
			"prompt": {Type: config.InputString, Required: true},
			"size":   {Type: config.InputInteger, Default: 256, Min: &minSize, Max: &maxSize},
		},
		Price: config.Price{PerRequest: "0.002", PerGPUSecond: "0.001"},
	}
	j.SetDefaults()
	return j
}
