package jobs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// checkInput validates a prediction's input against the model's
// declarations, fills defaults and lowers values to the plan's bounds. Every failing field is named in one
// EInputInvalid error, e.g. "input.size: want at most 1280; input.prompt:
// required".
func checkInput(m *config.JobModel, plan string, raw json.RawMessage, files func(string) (string, error)) (input, media map[string]any, err error) {
	input, media = map[string]any{}, map[string]any{}
	if t := bytes.TrimSpace(raw); len(t) > 0 && !bytes.Equal(t, []byte("null")) {
		if err := json.Unmarshal(t, &input); err != nil || t[0] != '{' {
			return nil, nil, tollgate.Errorf(tollgate.EInputInvalid, "input: want a JSON object")
		}
	}
	var problems []string
	for name, v := range input {
		in, ok := m.Inputs[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("input.%s: not an input of %s", name, m.Name))
			continue
		}
		if config.FileInput(in.Type) {
			if str, ok := v.(string); ok && files != nil {
				resolved, err := files(str)
				if err != nil {
					problems = append(problems, fmt.Sprintf("input.%s: %v", name, err))
					continue
				}
				v, input[name] = resolved, resolved
			}
			facts, err := checkFile(in, v)
			if err != nil {
				problems = append(problems, fmt.Sprintf("input.%s: %v", name, err))
			} else {
				media[name] = facts
			}
			continue
		}
		if err := config.CheckInputValue(in, v); err != nil {
			problems = append(problems, fmt.Sprintf("input.%s: %v", name, err))
		}
	}
	for name, in := range m.Inputs {
		if _, ok := input[name]; ok {
			continue
		}
		switch {
		case in.Default != nil:
			input[name] = jsonValue(in.Default)
		case in.Required:
			problems = append(problems, fmt.Sprintf("input.%s: required", name))
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return nil, nil, tollgate.Errorf(tollgate.EInputInvalid, "%s", strings.Join(problems, "; "))
	}
	for name, in := range m.Inputs {
		bound, ok := in.PlanMax[plan]
		if v, isNum := input[name].(float64); ok && isNum && v > bound {
			input[name] = bound // clamped to the plan's bound, not refused
		}
	}
	return input, media, nil
}

// jsonValue turns a YAML default into what JSON decoding would give, so
// rules see one kind of number.
func jsonValue(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	if json.Unmarshal(b, &out) != nil {
		return v
	}
	return out
}
