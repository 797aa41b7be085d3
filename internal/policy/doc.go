// Package policy compiles and checks per-route request rules: CEL
// expressions over the caller's claims, the request and its JSON body, and a
// JSON Schema the body must satisfy. Both compile once when the data plane
// is built; checking a request builds only the variables its rules use.
//
// Rules see three variables, each a map:
//
//	claims   sub, tenant_id, role, plan, iss (strings) and scope (a list);
//	         empty on public routes
//	request  method, path, query (first value per key), headers (first
//	         value per name, names lower-cased)
//	body     the JSON object of the body; empty when the body is not an
//	         object
//
// For example `claims.plan == "pro" || body.max_tokens <= 1024`. JSON
// numbers are doubles and compare with integer literals. A rule judges the
// requests of its methods; without methods, one that reads body judges the
// methods that carry a body (not GET, HEAD, DELETE, OPTIONS) and any other
// judges every request. A request a rule cannot evaluate — typically a
// missing body field — is a 400 naming what is missing; guard optional
// fields with has(), e.g. `!has(body.width) || body.width <= 680`. Every
// rule must hold; the first that does not is reported with its message
// (403). A schema violation is a 400 naming the first failing
// location, e.g. "request body at /width: ...".
package policy
