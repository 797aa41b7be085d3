package tlsserve

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// ACMEOptions configure certificates obtained from an ACME CA.
type ACMEOptions struct {
	// Domains to manage. Required.
	Domains []string
	// Email of the ACME account.
	Email string
	// CA is the ACME directory URL. Required.
	CA string
	// CARoot is a PEM file of the root that signs the CA's own HTTPS
	// endpoint; "" uses the system roots.
	CARoot string
	// Storage keeps accounts, certificates and challenge tokens, shared by
	// every replica that uses the same one. Required (certmagic.FileStorage
	// under data_dir on one node).
	Storage certmagic.Storage
	// Listen is the HTTPS address (TLS-ALPN-01 is answered there);
	// ListenHTTP the plain HTTP one (HTTP-01), "" for none.
	Listen, ListenHTTP string
	// Log receives certmagic's warnings and errors as JSON lines.
	// Defaults to io.Discard.
	Log io.Writer
}

// ACME obtains and renews certificates through certmagic.
type ACME struct {
	cache  *certmagic.Cache
	config *certmagic.Config
	issuer *certmagic.ACMEIssuer
	opts   ACMEOptions
}

// NewACME prepares ACME; Start obtains the certificates.
func NewACME(opts ACMEOptions) (*ACME, error) {
	if len(opts.Domains) == 0 || opts.CA == "" || opts.Storage == nil {
		return nil, fmt.Errorf("acme: domains, ca and storage are required")
	}
	var roots *x509.CertPool
	if opts.CARoot != "" {
		pem, err := os.ReadFile(opts.CARoot)
		if err != nil {
			return nil, fmt.Errorf("read tls.acme.ca_root: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.acme.ca_root %s holds no PEM certificate", opts.CARoot)
		}
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(opts.Log), zap.WarnLevel))
	a := &ACME{opts: opts}
	a.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return a.config, nil },
		Logger:           log,
	})
	a.config = certmagic.New(a.cache, certmagic.Config{Storage: opts.Storage, Logger: log})
	tmpl := certmagic.ACMEIssuer{
		CA: opts.CA, Email: opts.Email, Agreed: true, TrustedRoots: roots, Logger: log,
		DisableHTTPChallenge: opts.ListenHTTP == "",
	}
	// The solvers find the ports taken by the gateway's own listeners
	// and leave the answering to them.
	if port := portOf(opts.ListenHTTP); port > 0 {
		tmpl.AltHTTPPort = port
	}
	if port := portOf(opts.Listen); port > 0 {
		tmpl.AltTLSALPNPort = port
	}
	a.issuer = certmagic.NewACMEIssuer(a.config, tmpl)
	a.config.Issuers = []certmagic.Issuer{a.issuer}
	return a, nil
}

func portOf(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

// Start obtains (or loads from storage) a certificate for every domain
// in the background and keeps renewing them; handshakes for a domain
// whose certificate is still being obtained fail until it is there.
func (a *ACME) Start(ctx context.Context) error {
	if err := a.config.ManageAsync(ctx, a.opts.Domains); err != nil {
		return fmt.Errorf("acme: %w", err)
	}
	return nil
}

// Stop ends renewals.
func (a *ACME) Stop() { a.cache.Stop() }

// GetCertificate serves the managed certificates (and TLS-ALPN-01
// challenges).
func (a *ACME) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return a.config.GetCertificate(hello)
}

// HTTPChallengeHandler answers HTTP-01 challenges and hands every other
// request to next.
func (a *ACME) HTTPChallengeHandler(next http.Handler) http.Handler {
	return a.issuer.HTTPChallengeHandler(next)
}
