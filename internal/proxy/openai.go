package proxy

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/tollgate/tollgate/internal/httpx"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// openaiKind is the OpenAI endpoint a request on an openai route calls.
type openaiKind int

const (
	kindOther openaiKind = iota // proxied as is
	kindChat
	kindCompletions
	kindEmbeddings
	kindModels
)

// hasBody reports whether the endpoint takes a JSON body the gateway reads.
func (k openaiKind) hasBody() bool {
	return k == kindChat || k == kindCompletions || k == kindEmbeddings
}

func openaiKindOf(r *http.Request) openaiKind {
	path := r.URL.Path
	switch {
	case strings.HasSuffix(path, "/chat/completions"):
		return kindChat
	case strings.HasSuffix(path, "/completions"):
		return kindCompletions
	case strings.HasSuffix(path, "/embeddings"):
		return kindEmbeddings
	case strings.HasSuffix(path, "/models") && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		return kindModels
	}
	return kindOther
}

// openaiRequest holds the fields of an OpenAI request body the gateway
// acts on.
type openaiRequest struct {
	Model               string `json:"model"`
	Stream              bool   `json:"stream"`
	MaxTokens           *int64 `json:"max_tokens"`
	MaxCompletionTokens *int64 `json:"max_completion_tokens"`
	StreamOptions       *struct {
		IncludeUsage *bool `json:"include_usage"`
	} `json:"stream_options"`
}

func parseOpenAI(body []byte, rt *route) (*openaiRequest, error) {
	var req openaiRequest
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, tollgate.Errorf(tollgate.EInvalid, "the request body must be a JSON object")
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, tollgate.Errorf(tollgate.EInvalid, "the request body is not a valid JSON object")
	}
	if rt.models != nil {
		if req.Model == "" {
			return nil, tollgate.Errorf(tollgate.EInvalid, "you must provide a model parameter")
		}
		if _, ok := rt.models[req.Model]; !ok {
			return nil, errModelNotFound{model: req.Model}
		}
	}
	return &req, nil
}

func (o *openaiRequest) maxOutputTokens() int64 {
	switch {
	case o.MaxCompletionTokens != nil && *o.MaxCompletionTokens > 0:
		return *o.MaxCompletionTokens
	case o.MaxTokens != nil && *o.MaxTokens > 0:
		return *o.MaxTokens
	}
	return 0
}

// needsUsageInjection reports a stream whose client did not ask for usage:
// the gateway asks for it and hides the usage chunk from the client.
func (o *openaiRequest) needsUsageInjection() bool {
	return o.Stream && (o.StreamOptions == nil || o.StreamOptions.IncludeUsage == nil || !*o.StreamOptions.IncludeUsage)
}

// injectIncludeUsage sets stream_options.include_usage to true in body,
// keeping every other field.
func injectIncludeUsage(body []byte) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, tollgate.Errorf(tollgate.EInvalid, "the request body is not a valid JSON object")
	}
	opts := map[string]json.RawMessage{}
	if raw, ok := m["stream_options"]; ok && !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		if err := json.Unmarshal(raw, &opts); err != nil {
			return nil, tollgate.Errorf(tollgate.EInvalid, "stream_options must be an object")
		}
	}
	opts["include_usage"] = json.RawMessage("true")
	raw, err := json.Marshal(opts)
	if err != nil {
		return nil, err
	}
	m["stream_options"] = raw
	return json.Marshal(m)
}

// errModelNotFound is rendered as OpenAI's 404 model_not_found.
type errModelNotFound struct{ model string }

func (e errModelNotFound) Error() string { return "model not found: " + e.model }

func writeModelNotFound(w http.ResponseWriter, model string) {
	var b httpx.ErrorBody
	b.Error.Message = "The model `" + model + "` does not exist or you do not have access to it."
	b.Error.Type = "invalid_request_error"
	b.Error.Code = "model_not_found"
	httpx.WriteJSON(w, http.StatusNotFound, b)
}

// modelList is the OpenAI list shape of GET /v1/models.
type modelList struct {
	Object string        `json:"object"`
	Data   []modelObject `json:"data"`
}

type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// serveModels answers GET /v1/models with the models of every openai
// route the caller may use. It reports false, leaving the request to be
// proxied, when no route names its models.
func (p *Proxy) serveModels(x *exchange, r *http.Request, rt *route) bool {
	var names []string
	for _, o := range p.routes.all {
		if o.openai && o.models != nil && o.permits(x.call.Principal) {
			names = append(names, o.modelNames...)
		}
	}
	if len(names) == 0 {
		return false
	}
	slices.Sort(names)
	names = slices.Compact(names)
	list := modelList{Object: "list", Data: make([]modelObject, 0, len(names))}
	for _, n := range names {
		list.Data = append(list.Data, modelObject{ID: n, Object: "model", OwnedBy: "tollgate"})
	}
	httpx.WriteJSON(x, http.StatusOK, list)
	return true
}
