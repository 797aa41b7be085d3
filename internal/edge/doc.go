// Package edge is tollgate's HTTP/1.1 server: it serves an http.Handler
// like net/http's Server, with less work per request on the common case.
//
// A connection is read by one goroutine. Each request head is scanned in
// the connection's read buffer; a head of the plain kind — HTTP/1.1, an
// origin-form target, CRLF line ends, valid token names and field values,
// exactly one Host, no Transfer-Encoding, Expect or Upgrade, at most one
// Content-Length, and the whole head within the 4 KiB read buffer — is
// served here: one allocation for the head's text (every name and value
// is a slice of it), one header map, no per-request goroutine, and a
// response written with one system call when it fits the write buffer.
//
// Anything else is handed, with the bytes already read, to a net/http
// Server serving the same handler, which then owns the connection for the
// rest of its life: HTTP/1.0, chunked or 100-continue uploads, websocket
// upgrades, obsolete line folding, oversized heads, and every malformed
// request, which net/http answers with its usual 4xx. So a request is
// either plain and served here the way net/http would serve it, or served
// by net/http itself.
//
// Behaviour kept from net/http: a new connection's first head is due
// within ReadHeaderTimeout of the accept, a keep-alive connection waits
// IdleTimeout for the next request's first byte and ReadHeaderTimeout
// for the rest of its head, and a head handed to net/http keeps the
// deadline it had; the request context ends when the handler
// returns or the client goes away (a client's disconnect is watched for
// once a request has run for WatchAfter, or as soon as the handler flushes
// a stream); Date is added; Content-Type is sniffed when the handler sets
// none; a body of unknown length is sent with Content-Length when the
// handler returns before writing 2 KiB, else chunked; 1xx interim answers;
// trailers announced in "Trailer" or set with http.TrailerPrefix; a body
// left unread up to 256 KiB is discarded to keep the connection, more
// closes it; panics are recovered (http.ErrAbortHandler silently) and end
// the connection; Shutdown closes idle connections and waits for the
// active ones, which finish with "Connection: close".
package edge
