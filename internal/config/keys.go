package config

import (
	"cmp"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Keys returns every key of the configuration file that holds a value, as
// a dotted path: "routes[].price.per_request", "plans.NAME.budget.amount".
// A map's key is written NAME. Keys that only group others ("tokens",
// "routes[].price") are not listed; "routes[].price.models", which takes a
// price again per model, is.
func Keys() []string {
	var out []string
	walkKeys(reflect.TypeFor[Config](), "", map[reflect.Type]bool{}, &out)
	return out
}

func walkKeys(t reflect.Type, prefix string, seen map[reflect.Type]bool, out *[]string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if t == reflect.TypeFor[time.Duration]() || seen[t] {
			return
		}
		seen[t] = true
		defer delete(seen, t)
		for i := range t.NumField() {
			name := yamlName(t.Field(i))
			if name == "" {
				continue
			}
			key := join(prefix, name)
			if st := structOf(t.Field(i).Type); st == nil || seen[st] {
				*out = append(*out, key)
			}
			walkKeys(t.Field(i).Type, key, seen, out)
		}
	case reflect.Slice:
		walkKeys(t.Elem(), prefix+"[]", seen, out)
	case reflect.Map:
		if isStruct(t.Elem()) {
			walkKeys(t.Elem(), prefix+".NAME", seen, out)
		}
	}
}

// structOf is the struct a field holds, directly or as the elements of a
// slice or map; nil when it holds plain values.
func structOf(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == reflect.TypeFor[time.Duration]() {
		return nil
	}
	return t
}

func isStruct(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind() == reflect.Struct
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// yamlName is a field's key in the file, "" when it has none.
func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" || name == "" {
		return ""
	}
	return name
}

// checkNodes walks the YAML document against the Config type and reports,
// with their lines, the keys it does not know (with a suggestion) and the
// values of the wrong kind, before anything is decoded.
func checkNodes(doc *yaml.Node) []error {
	w := nodeWalker{}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		doc = doc.Content[0]
	}
	w.walk(doc, reflect.TypeFor[Config](), "")
	return w.problems
}

type nodeWalker struct {
	problems []error
}

func (w *nodeWalker) add(n *yaml.Node, key, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if key != "" {
		msg = key + ": " + msg
	}
	w.problems = append(w.problems, fmt.Errorf("line %d: %s", n.Line, msg))
}

func (w *nodeWalker) walk(n *yaml.Node, t reflect.Type, key string) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an empty value leaves the default
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t.Kind() == reflect.Struct && t != reflect.TypeFor[time.Duration]():
		if n.Kind != yaml.MappingNode {
			w.add(n, key, "want a mapping of keys (%s), got %s", strings.Join(fieldNames(t), ", "), describeNode(n))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Tag == "!!merge" {
				// "<<: *anchor" merges the keys of another mapping.
				merged := []*yaml.Node{v}
				if v.Kind == yaml.SequenceNode {
					merged = v.Content
				}
				for _, m := range merged {
					w.walk(m, t, key)
				}
				continue
			}
			f, ok := fieldByName(t, k.Value)
			if !ok {
				w.add(k, join(key, k.Value), "unknown key%s", suggest(k.Value, t))
				continue
			}
			w.walk(v, f.Type, join(key, k.Value))
		}
	case t.Kind() == reflect.Map:
		if n.Kind != yaml.MappingNode {
			w.add(n, key, "want a mapping, got %s", describeNode(n))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			w.walk(n.Content[i+1], t.Elem(), join(key, n.Content[i].Value))
		}
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.add(n, key, "want a list, got %s", describeNode(n))
			return
		}
		for i, item := range n.Content {
			w.walk(item, t.Elem(), fmt.Sprintf("%s[%d]", key, i))
		}
	default:
		if n.Kind != yaml.ScalarNode {
			w.add(n, key, "want %s, got %s", describeType(t), describeNode(n))
			return
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			w.add(n, key, "want %s, got %q", describeType(t), n.Value)
		}
	}
}

func fieldByName(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		if yamlName(t.Field(i)) == name {
			return t.Field(i), true
		}
	}
	return reflect.StructField{}, false
}

func fieldNames(t reflect.Type) []string {
	var names []string
	for i := range t.NumField() {
		if n := yamlName(t.Field(i)); n != "" {
			names = append(names, n)
		}
	}
	return names
}

func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

func describeType(t reflect.Type) string {
	switch {
	case t == reflect.TypeFor[time.Duration]():
		return "a duration such as 30s or 5m"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		return "a whole number"
	default:
		return "a string"
	}
}

// suggest names the known key closest to an unknown one at the same level
// ("did you mean rate_limit?"), or else the places the key belongs to when
// it is known elsewhere (a mis-indented key).
func suggest(unknown string, t reflect.Type) string {
	best, dist := "", 3
	for _, name := range fieldNames(t) {
		if d := editDistance(unknown, name); d < dist {
			best, dist = name, d
		}
	}
	if best != "" {
		return fmt.Sprintf("; did you mean %s?", best)
	}
	var homes []string
	for _, k := range Keys() {
		parent, name := splitKey(k)
		if parent = cmp.Or(parent, "the top level"); name == unknown && !slices.Contains(homes, parent) {
			homes = append(homes, parent)
		}
	}
	if len(homes) > 0 {
		return fmt.Sprintf("; %s is a key of %s: check its indentation", unknown, strings.Join(homes, " and "))
	}
	return fmt.Sprintf("; known keys here: %s", strings.Join(fieldNames(t), ", "))
}

func splitKey(k string) (parent, name string) {
	i := strings.LastIndex(k, ".")
	if i < 0 {
		return "", k
	}
	return k[:i], k[i+1:]
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
