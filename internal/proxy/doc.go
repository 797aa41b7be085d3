// Package proxy is the data plane: every configured route proxied to its
// upstreams with a verified identity.
//
// For each request, in order:
//
//  1. Every reserved header — the configured identity header names,
//     compared case-insensitively with '_' equal to '-', and any header
//     starting with X-Tollgate- — is deleted from the request, on every
//     path, before anything else looks at it. X-Request-ID is kept only
//     from a peer in server.trusted_proxies and only when it matches
//     [A-Za-z0-9._-]{1,128}; otherwise a fresh id is generated. The id is
//     sent upstream and on every response.
//  2. Draining gateways answer 503; paths with "." or ".." segments 400
//     (so "/public/../private" cannot ride a public prefix); unknown paths
//     404; methods the route does not allow 405; a GET or HEAD with a body
//     400 unless the route has allow_get_body (an upstream that ignores
//     such a body would read it as a request of its own).
//  3. Non-public routes authenticate through Options.Auth (401 with
//     WWW-Authenticate on failure), then need every route scope and one of
//     the route roles (403 insufficient_scope).
//  4. The body is read, bounded by max_body (413), only when the route needs
//     it: OpenAI completions/chat/embeddings, rules that use body, schemas.
//     Otherwise it is streamed through, still bounded.
//  5. Rules (CEL) and the schema are checked (403 with the rule's message,
//     400 naming the first schema error's location).
//  6. The pool is chosen: the caller's tenant pool (route.tenants), else the
//     model's pool (route.models; unknown model 404 model_not_found, missing
//     model 400), else the route's upstreams.
//  7. Identity headers are set from the principal; Authorization and
//     headers.strip_cookies are never forwarded; route.upstream_headers
//     (with ${VAR} read from the environment at New) are set last.
//  8. Admissions run, then the request is forwarded: on http routes to
//     plain-HTTP upstreams by the direct exchange over internal/upstream's
//     transport, otherwise by httputil.ReverseProxy; both send the request
//     outgoing builds.
//
// On routes of type gradio (gradio.go), a guard runs before step 4: it
// prefixes each session_hash with the caller's scope, refuses another
// user's sessions, events and files, and marks queue/join, call and run
// as the only metered requests; admissions run for those alone, and a
// queued call's releases are called when its process_completed passes
// on the caller's event stream (or after the route timeout), not when
// the join's answer ends.
//
// On routes of type comfyui, Options.Native (native.go) answers the
// route's own endpoints after step 3 (its prompts are jobs, metered by
// the jobs service); what it leaves is forwarded without admissions.
//
// # Admission contract
//
// Options.Admissions are called in order with the filled *tollgate.Call
// (RequestID, Start, Principal, ClientIP, Route, Method, Path; BytesIn, the
// body's length when read or its Content-Length, 0 for a streamed body of
// unknown length; Body when the body was read; on openai routes Model and
// MaxOutputTokens; Entry, what the gate in front decided before
// authentication, when the request came through ServeEntry) after every
// check above
// and immediately before forwarding; requests refused earlier never reach
// them. Each Admit either refuses with an error — rendered through
// httpx.WriteError (e.g. 429 with Retry-After), the later admissions are not
// called, the upstream is not called — or returns a release function
// (nil is allowed and ignored).
//
// Every release function returned is called exactly once, in admission
// order, from the request's goroutine, after the response ended, failed or
// the client went away — also when the stream was aborted by a panic of
// http.ErrAbortHandler. When a later admission refused, the earlier ones are
// released with Result "rejected" and the refusal's status. The context
// passed to release is the request's context without its cancellation, so a
// release may write to a store after the client left. The Outcome holds:
//
//   - Status: the status sent to the client, 499 when the client went away
//     before any response;
//   - Result, recorded where it is decided: ok (the upstream answered
//     below 400), upstream_error (502, 504, an upstream 4xx or 5xx or a
//     stream that broke), cancelled (the client went away before the
//     response ended), rejected (refused by the gateway: an admission, or
//     a streamed body over the route's limit);
//   - UpstreamStatus: the upstream's status when it answered, else 0;
//   - BytesIn: the request body's length, counted as it was read for a
//     streamed body of unknown length;
//   - BytesOut, End, UpstreamMS (time to the upstream's response headers);
//   - Units: InputTokens/OutputTokens from the OpenAI usage object of plain
//     responses and of streams, GPUMillis from route.gpu_seconds_header.
//
// # Streams
//
// OpenAI responses are flushed as they arrive (FlushInterval -1); on http
// routes event streams and bodies of unknown length are too, while bodies
// of known length are copied without a flush per write. Request bodies are
// streamed unless the route needs them read. For an OpenAI
// stream whose client did not ask for stream_options.include_usage, the
// gateway asks for it upstream and drops the usage-only chunk (empty
// choices with a usage object), so the client sees the stream it asked for;
// when the client did ask, the stream passes byte for byte. A client that
// goes away cancels the upstream request.
//
// # Lifecycle
//
// New compiles everything; Start runs active health checks, Stop ends them.
// Drain makes new requests get 503 while http.Server.Shutdown waits for the
// ones in flight. Upgraded (websocket) connections are not bounded by the
// route timeout and are not waited for by Shutdown.
package proxy
