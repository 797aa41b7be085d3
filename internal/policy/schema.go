package policy

import (
	"errors"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// schema is a compiled JSON Schema for request bodies.
type schema struct {
	sch *jsonschema.Schema
}

// compileSchema compiles src: inline JSON when it starts with '{', else the
// path of a file holding the schema.
func compileSchema(route, src string) (*schema, error) {
	c := jsonschema.NewCompiler()
	loc := strings.TrimSpace(src)
	if strings.HasPrefix(loc, "{") {
		doc, err := jsonschema.UnmarshalJSON(strings.NewReader(loc))
		if err != nil {
			return nil, fmt.Errorf("inline schema: %w", err)
		}
		loc = "tollgate:///routes/" + route + "/schema.json"
		if err := c.AddResource(loc, doc); err != nil {
			return nil, fmt.Errorf("inline schema: %w", err)
		}
	}
	sch, err := c.Compile(loc)
	if err != nil {
		return nil, err
	}
	return &schema{sch: sch}, nil
}

// validate returns EInvalid naming the first failing location of body.
func (s *schema) validate(body any) error {
	err := s.sch.Validate(body)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return tollgate.Errorf(tollgate.EInvalid, "request body does not match the route's schema")
	}
	for len(ve.Causes) > 0 {
		ve = ve.Causes[0]
	}
	loc := "/" + strings.Join(ve.InstanceLocation, "/")
	return tollgate.Errorf(tollgate.EInvalid, "request body at %s: %s", loc, ve.ErrorKind.LocalizedString(message.NewPrinter(language.English)))
}
