package tollgate

import "net/http"

// Entry is what the gate in front of the data plane (bans, per-client
// rate limits) decided about a request before it was authenticated. The
// gate hands it to the data plane with the request, and the data plane to
// every Admission in the Call, so that per-client limits are decided
// together with the call's own: one decision a call.
type Entry struct {
	ClientIP string
	// Header is the response's header, which receives the RateLimit-*
	// fields of the tightest limit that applied to the request.
	Header http.Header
	// HeaderSet is true once Header holds RateLimit-* fields, of a limit
	// with Remaining calls left.
	HeaderSet bool
	Remaining int
	// Deferred are per-client rate keys the gate left undecided. An
	// admission that decides them with the call's own sets Taken; when
	// none does, the gate decides them after the response.
	Deferred []RateKey
	Taken    bool
	// NoCredential is set by the data plane when it refused the request
	// for carrying no credential at all (ErrNoSession): its 401 guessed
	// nothing, so the gate does not count it toward an IP ban.
	NoCredential bool
}
