// Package policy compiles and checks per-route request rules: CEL
// expressions over the caller's claims, the request and its JSON body, and a
// JSON Schema the body must satisfy. Both compile once when the data plane
// is built; checking a request allocates only what the rules reference.
package policy
