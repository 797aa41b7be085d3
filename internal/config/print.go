package config

import (
	"bytes"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Masked is how a secret is printed.
const Masked = "***"

// envRef matches ${VAR} references, which are printed as they are.
var envRef = regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*\}`)

// EffectiveYAML renders the config with every default filled, as YAML,
// secrets masked: the password of store, results, redis, webhook and JWKS URLs, and
// the literal parts of upstream header values and client secrets (${VAR}
// references stay).
func (c *Config) EffectiveYAML() ([]byte, error) {
	var doc yaml.Node
	if err := doc.Encode(c); err != nil {
		return nil, fmt.Errorf("render config: %w", err)
	}
	maskNode(&doc, "")
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, fmt.Errorf("render config: %w", err)
	}
	return b.Bytes(), nil
}

func maskNode(n *yaml.Node, key string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i].Value, n.Content[i+1]
			switch {
			case key == "upstream_headers" && v.Kind == yaml.ScalarNode:
				v.Value = maskLiteral(v.Value)
				v.Style = yaml.DoubleQuotedStyle
			case k == "client_secret" && v.Kind == yaml.ScalarNode && v.Value != "":
				v.Value = maskLiteral(v.Value)
				v.Style = yaml.DoubleQuotedStyle
			case (k == "store" || k == "redis" || k == "results" || k == "url" || k == "jwks_url") && v.Kind == yaml.ScalarNode:
				v.Value = maskURL(v.Value)
			default:
				maskNode(v, k)
			}
		}
	default:
		for _, c := range n.Content {
			maskNode(c, key)
		}
	}
}

// maskLiteral keeps ${VAR} references and masks the rest of a header
// value but for a leading scheme word such as "Bearer".
func maskLiteral(v string) string {
	if v == "" {
		return v
	}
	scheme, rest, ok := strings.Cut(v, " ")
	if !ok {
		scheme, rest = "", v
	} else {
		scheme += " "
	}
	refs := envRef.FindAllString(rest, -1)
	if envRef.ReplaceAllString(rest, "") == "" {
		return v
	}
	return scheme + Masked + strings.Join(refs, "")
}

// maskURL masks the password and any query values of a URL.
func maskURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), Masked)
	}
	q := u.Query()
	for k := range q {
		if k != "sslmode" && k != "search_path" {
			q.Set(k, Masked)
		}
	}
	u.RawQuery = q.Encode()
	return strings.Replace(u.String(), url.QueryEscape(Masked), Masked, -1)
}
