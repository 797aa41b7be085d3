package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"

	"github.com/caddyserver/certmagic"

	"github.com/tollgate/tollgate/internal/limit"
	"github.com/tollgate/tollgate/internal/tlsserve"
)

// httpsServer is the gateway on TLS: net/http's server (HTTP/2 by ALPN)
// and, with listen_http, the plain listener that redirects to it and
// answers ACME HTTP-01 challenges.
type httpsServer struct {
	main, plain *http.Server
	acme        *tlsserve.ACME
}

// serveTLS starts serving ln over TLS; serve errors go to errc.
func (g *gateway) serveTLS(ctx context.Context, ln net.Listener, errc chan<- error) (*httpsServer, error) {
	cfg := g.cfg
	h := &httpsServer{}
	var getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	redirect := tlsserve.Redirect(cfg.PublicURL, ln.Addr().String())
	if cfg.TLS.CertFile != "" {
		files, err := tlsserve.NewCertFiles(cfg.TLS.CertFile, cfg.TLS.KeyFile, g.log)
		if err != nil {
			return nil, err
		}
		getCert = files.GetCertificate
	} else {
		a := cfg.TLS.ACME
		var storage certmagic.Storage = &certmagic.FileStorage{Path: filepath.Join(cfg.DataDir, "certificates")}
		if g.store.Certs != nil {
			storage = tlsserve.NewStoreStorage(g.store.Certs, nil)
		}
		listenHTTP := cfg.ListenHTTP
		if g.opts.HTTPListener != nil {
			listenHTTP = g.opts.HTTPListener.Addr().String()
		}
		acme, err := tlsserve.NewACME(tlsserve.ACMEOptions{
			Domains: a.Domains, Email: a.Email, CA: a.CA, CARoot: a.CARoot,
			Storage: storage,
			Listen:  ln.Addr().String(), ListenHTTP: listenHTTP, Log: g.opts.Env.Stderr,
		})
		if err != nil {
			return nil, err
		}
		h.acme = acme
		getCert = acme.GetCertificate
		redirect = acme.HTTPChallengeHandler(redirect)
	}
	errorLog := slog.NewLogLogger(g.log.Handler(), slog.LevelWarn)
	s := cfg.Server
	h.main = &http.Server{
		Handler:   tlsserve.HSTS(g.handler, cfg.TLS.HSTSMaxAge),
		TLSConfig: tlsserve.TLSConfig(getCert), ReadHeaderTimeout: s.ReadHeaderTimeout,
		IdleTimeout: s.IdleTimeout, MaxHeaderBytes: s.MaxHeaderBytes, ErrorLog: errorLog,
	}
	if cfg.ListenHTTP != "" || g.opts.HTTPListener != nil {
		pln := g.opts.HTTPListener
		if pln == nil {
			var err error
			if pln, err = net.Listen("tcp", cfg.ListenHTTP); err != nil {
				return nil, fmt.Errorf("listen_http: %w", err)
			}
		}
		pln = limit.Listener(pln, s.MaxConnections)
		h.plain = &http.Server{Handler: redirect, ReadHeaderTimeout: s.ReadHeaderTimeout, IdleTimeout: s.IdleTimeout,
			MaxHeaderBytes: s.MaxHeaderBytes, ErrorLog: errorLog}
		go func() {
			if err := h.plain.Serve(pln); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("listen_http: %w", err)
			}
		}()
		g.log.Info("redirecting to HTTPS", "addr", pln.Addr().String())
	}
	go func() {
		if err := h.main.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	if h.acme != nil {
		if err := h.acme.Start(ctx); err != nil {
			h.stop()
			return nil, err
		}
	}
	return h, nil
}

// Shutdown drains both servers.
func (h *httpsServer) Shutdown(ctx context.Context) error {
	if h.plain != nil {
		_ = h.plain.Shutdown(ctx)
	}
	return h.main.Shutdown(ctx)
}

// Close closes both servers and the connections they still hold.
func (h *httpsServer) Close() error {
	if h.plain != nil {
		_ = h.plain.Close()
	}
	return h.main.Close()
}

// stop closes what is left: the servers and ACME renewals.
func (h *httpsServer) stop() {
	if h.plain != nil {
		h.plain.Close()
	}
	h.main.Close()
	if h.acme != nil {
		h.acme.Stop()
	}
}
