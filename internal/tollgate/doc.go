// Package tollgate holds the domain of the gateway: the nouns (principals,
// users, tenants, keys, routes, usage records, money), the error vocabulary,
// and the interfaces that feature packages need and engine packages
// implement. It imports only the standard library.
package tollgate
