// Package webhook delivers the webhooks of the predictions API and keeps
// each user's signing secret.
//
// Messages are signed per Standard Webhooks: the headers webhook-id (the
// same for every attempt of a message, so receivers can drop repeats),
// webhook-timestamp (the attempt's time, in Unix seconds) and
// webhook-signature ("v1," and the base64 HMAC-SHA256 of
// "id.timestamp.body" under the owner's key, whose text form
// "whsec_<base64>" GET /v1/webhooks/default/secret shows the owner).
//
// Delivery never holds up the caller: Send stores the message (start and
// completed) and hands it to the prediction's lane in memory; a lane sends
// its messages one at a time, in order, with at most Concurrency requests in
// flight across lanes. A network error, 408, 429 or 5xx is retried after
// an exponential back-off with jitter, or after the receiver's Retry-After,
// up to MaxAttempts attempts within MaxElapsed of the message's creation;
// any other answer, a redirect or a refused address gives it up at once.
// Given-up messages are logged.
//
// Output and logs messages are throttled to one per Throttle (500 ms) per
// prediction and coalesced: each message carries the whole prediction, so
// the newest one waiting replaces an older one. For the same reason a
// message waiting for a retry is dropped when a newer one of its prediction
// is waiting, and the completed message is always the last one sent.
//
// Durability: start and completed messages are rows of the store before
// Send returns, leased to the process handling them; on Stop the leases are
// released, and a lease left by a process that died runs out after Lease,
// so another process (or the same after a restart) claims and sends them.
// Delivery is at least once. Output and logs messages live in memory only:
// after a restart, the completed message carries what they did.
//
// Addresses: a webhook URL must be http or https. Unless AllowPrivate
// (webhook_allow_private), connections to loopback, private, link-local,
// unspecified, multicast and other non-public addresses are refused in the
// dialer's Control func, on the address actually dialed, so a name that
// resolves elsewhere later (DNS rebinding) gains nothing; no proxy is used
// and redirects are not followed. CheckURL makes the same check early, for
// a clear error when a prediction is created.
package webhook
