// Package tlsserve serves the gateway over HTTPS: certificates from files
// (reloaded when they change) or from an ACME CA through certmagic, HTTP/2
// by ALPN, HSTS, and the plain-HTTP listener that redirects to HTTPS and
// answers ACME HTTP-01 challenges.
package tlsserve

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// CertFiles serves the certificate of a PEM certificate and key file pair
// and loads it again when either file changes (its modification time or
// size), at the next handshake after the change. A pair that does not
// load (say, the certificate written but not yet its key) leaves the
// previous certificate in use until it does.
type CertFiles struct {
	certFile, keyFile string
	log               *slog.Logger

	mu    sync.Mutex
	cert  *tls.Certificate
	stamp [2]fileStamp
	bad   [2]fileStamp // the stamp of files that failed to load
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// NewCertFiles loads the pair once; an error says why it cannot be used.
func NewCertFiles(certFile, keyFile string, log *slog.Logger) (*CertFiles, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &CertFiles{certFile: certFile, keyFile: keyFile, log: log}
	stamp, err := c.stat()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load tls.cert_file and tls.key_file: %w", err)
	}
	c.cert, c.stamp = &cert, stamp
	return c, nil
}

func (c *CertFiles) stat() ([2]fileStamp, error) {
	var out [2]fileStamp
	for i, name := range []string{c.certFile, c.keyFile} {
		fi, err := os.Stat(name)
		if err != nil {
			return out, fmt.Errorf("tls certificate: %w", err)
		}
		out[i] = fileStamp{fi.ModTime(), fi.Size()}
	}
	return out, nil
}

// GetCertificate is a tls.Config.GetCertificate that reloads changed
// files.
func (c *CertFiles) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	stamp, err := c.stat()
	if err != nil || stamp == c.stamp || stamp == c.bad {
		return c.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		c.bad = stamp
		c.log.Warn("tls certificate changed but does not load; serving the previous one", "cert_file", c.certFile, "err", err)
		return c.cert, nil
	}
	c.log.Info("tls certificate reloaded", "cert_file", c.certFile)
	c.cert, c.stamp = &cert, stamp
	return c.cert, nil
}
