package token

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"regexp"
	"strings"
	"unicode/utf8"
)

// compactJWS is the only token shape accepted: three non-empty base64url
// segments. Padding, whitespace, a fourth or fifth segment (JWE) and the
// JSON serialization all fail it.
var compactJWS = regexp.MustCompile(`^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`)

// strictB64 refuses non-canonical encodings (non-zero spare bits).
var strictB64 = base64.RawURLEncoding.Strict()

// maxJSONDepth bounds the nesting of header and payload.
const maxJSONDepth = 16

// header is a JOSE header reduced to the only fields accepted.
type header struct {
	alg, typ, kid string
	// thumbprint is set when the header names a certificate thumbprint
	// (x5t, x5t#S256). It is ignored — it cannot supply a key — and
	// tolerated for external issuers only (Microsoft Entra sends x5t).
	thumbprint bool
}

// compact is a token split and decoded, not yet verified.
type compact struct {
	header header
	claims map[string]any
}

// parseCompact splits and decodes raw strictly. It checks the shape, the
// encoding and the JSON of header and payload, never the signature.
func parseCompact(raw string, maxSize int) (*compact, error) {
	if raw == "" {
		return nil, errMissing
	}
	if len(raw) > maxSize || !compactJWS.MatchString(raw) {
		return nil, errMalformed
	}
	h, rest, _ := strings.Cut(raw, ".")
	p, s, _ := strings.Cut(rest, ".")
	hb, err := strictB64.DecodeString(h)
	if err != nil {
		return nil, errMalformed
	}
	pb, err := strictB64.DecodeString(p)
	if err != nil {
		return nil, errMalformed
	}
	if _, err := strictB64.DecodeString(s); err != nil {
		return nil, errMalformed
	}
	hdr, err := parseHeader(hb)
	if err != nil {
		return nil, err
	}
	claims, err := decodeObject(pb)
	if err != nil {
		return nil, errClaims
	}
	return &compact{header: hdr, claims: claims}, nil
}

// parseHeader accepts exactly the fields alg, typ and kid (plus the
// thumbprints x5t and x5t#S256, see header), each a string, alg and kid
// required. Any other field — crit, jku, x5u, jwk, x5c, cty,
// b64, zip, enc, p2c, or a case variant — refuses the token, so keys never
// come from the token and no extension is silently ignored.
func parseHeader(b []byte) (header, error) {
	obj, err := decodeObject(b)
	if err != nil {
		return header{}, errHeader
	}
	var h header
	for k, v := range obj {
		s, ok := v.(string)
		if !ok {
			return header{}, errHeader
		}
		switch k {
		case "alg":
			h.alg = s
		case "typ":
			h.typ = s
		case "kid":
			h.kid = s
		case "x5t", "x5t#S256":
			h.thumbprint = true
		default:
			return header{}, errHeader
		}
	}
	if h.alg == "" {
		return header{}, errAlgorithm
	}
	if !validKID(h.kid) {
		return header{}, errUnknownKey
	}
	return h, nil
}

var errDuplicateMember = errors.New("duplicate or case-variant member")

// decodeObject decodes a JSON object, refusing invalid UTF-8, trailing
// data, excessive nesting and members that repeat a name exactly or up to
// case (encoding/json would keep the last one, or map "SUB" to sub).
// Numbers stay json.Number.
func decodeObject(b []byte) (map[string]any, error) {
	if !utf8.Valid(b) {
		return nil, errors.New("invalid utf-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('{') {
		return nil, errors.New("not a json object")
	}
	obj, err := readObject(dec, 1)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after json object")
	}
	return obj, nil
}

func readObject(dec *json.Decoder, depth int) (map[string]any, error) {
	obj := map[string]any{}
	folded := map[string]struct{}{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, errors.New("object key is not a string")
		}
		f := strings.ToLower(strings.ToUpper(key))
		if _, dup := folded[f]; dup {
			return nil, errDuplicateMember
		}
		folded[f] = struct{}{}
		if obj[key], err = readValue(dec, depth); err != nil {
			return nil, err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, err
	}
	return obj, nil
}

func readValue(dec *json.Decoder, depth int) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return tok, nil // string, json.Number, bool or nil
	}
	if depth >= maxJSONDepth {
		return nil, errors.New("json nested too deeply")
	}
	switch d {
	case '{':
		return readObject(dec, depth+1)
	case '[':
		arr := []any{}
		for dec.More() {
			v, err := readValue(dec, depth+1)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		if _, err := dec.Token(); err != nil { // the closing ']'
			return nil, err
		}
		return arr, nil
	}
	return nil, errors.New("unexpected json delimiter")
}
