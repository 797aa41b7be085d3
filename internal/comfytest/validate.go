package comfytest

import (
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// node is one node of an API-format prompt.
type node struct {
	ClassType string
	Inputs    map[string]any
}

func errorObj(typ, message, details string, extra map[string]any) map[string]any {
	if extra == nil {
		extra = map[string]any{}
	}
	return map[string]any{"type": typ, "message": message, "details": details, "extra_info": extra}
}

// parsePrompt reads the prompt's nodes; a node without class_type or of
// an unknown class is the whole prompt's error, as in validate_prompt.
func (s *Server) parsePrompt(raw map[string]any) (map[string]node, map[string]any) {
	ids := make([]string, 0, len(raw))
	for id := range raw {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	nodes := map[string]node{}
	for _, id := range ids {
		m, _ := raw[id].(map[string]any)
		ct, ok := m["class_type"].(string)
		if !ok {
			return nil, errorObj("invalid_prompt", "Cannot execute because a node is missing the class_type property.", fmt.Sprintf("Node ID '#%s'", id), nil)
		}
		if _, ok := s.classes[ct]; !ok {
			return nil, errorObj("invalid_prompt", fmt.Sprintf("Cannot execute because node %s does not exist.", ct), fmt.Sprintf("Node ID '#%s'", id), nil)
		}
		inputs, _ := m["inputs"].(map[string]any)
		if inputs == nil {
			inputs = map[string]any{}
		}
		nodes[id] = node{ClassType: ct, Inputs: inputs}
	}
	return nodes, nil
}

type validation struct {
	ok      bool
	reasons []map[string]any
}

// validatePrompt is execution.validate_prompt: it returns the outputs
// to execute, the node_errors and, when no output is valid, the error.
func (s *Server) validatePrompt(nodes map[string]node, partial []string) ([]string, map[string]any, map[string]any) {
	var outputs []string
	for id, n := range nodes {
		if s.classes[n.ClassType].OutputNode && (partial == nil || slices.Contains(partial, id)) {
			outputs = append(outputs, id)
		}
	}
	sort.Strings(outputs)
	if len(outputs) == 0 {
		return nil, map[string]any{}, errorObj("prompt_no_outputs", "Prompt has no outputs", "", nil)
	}
	validated := map[string]validation{}
	nodeErrors := map[string]any{}
	var good []string
	var messages []string
	for _, o := range outputs {
		v := s.validateNode(nodes, o, validated)
		if v.ok {
			good = append(good, o)
			continue
		}
		for _, r := range v.reasons {
			messages = append(messages, fmt.Sprintf("%s: %s", r["message"], r["details"]))
		}
		for id, res := range validated {
			if res.ok || len(res.reasons) == 0 {
				continue
			}
			e, ok := nodeErrors[id].(map[string]any)
			if !ok {
				ct := ""
				if n, found := nodes[id]; found {
					ct = n.ClassType
				}
				e = map[string]any{"errors": res.reasons, "dependent_outputs": []any{}, "class_type": ct}
				nodeErrors[id] = e
			}
			e["dependent_outputs"] = append(e["dependent_outputs"].([]any), o)
		}
	}
	if len(good) == 0 {
		return nil, nodeErrors, errorObj("prompt_outputs_failed_validation", "Prompt outputs failed validation", strings.Join(messages, "\n"), nil)
	}
	return good, nodeErrors, nil
}

// validateNode is execution.validate_inputs for one node and, through
// its links, the nodes it depends on. It converts constant inputs in
// place (INT, FLOAT, STRING, BOOLEAN) as the real one does.
func (s *Server) validateNode(nodes map[string]node, id string, validated map[string]validation) validation {
	if v, ok := validated[id]; ok {
		return v
	}
	validated[id] = validation{ok: true} // breaks cycles
	n, ok := nodes[id]
	if !ok {
		v := validation{reasons: []map[string]any{errorObj("exception_during_validation", "Exception when validating node", fmt.Sprintf("'%s'", id),
			map[string]any{"exception_type": "KeyError", "traceback": []any{}})}}
		validated[id] = v
		return v
	}
	class := s.classes[n.ClassType]
	var errs []map[string]any
	valid := true
	for _, in := range class.inputs() {
		_, category, _ := class.input(in.Name)
		config := inputConfig(in, s)
		val, present := n.Inputs[in.Name]
		if !present {
			if category == "required" {
				errs = append(errs, errorObj("required_input_missing", "Required input is missing", in.Name, map[string]any{"input_name": in.Name}))
			}
			continue
		}
		if link, isList := val.([]any); isList {
			if e, dep := s.validateLink(nodes, in, link, config); e != nil {
				errs = append(errs, e)
			} else if !s.validateNode(nodes, dep, validated).ok {
				valid = false
			}
			continue
		}
		if m, isMap := val.(map[string]any); isMap {
			if inner, ok := m["__value__"]; ok {
				val = inner
			}
		}
		conv, err := convert(in.Type, val)
		if err != nil {
			errs = append(errs, errorObj("invalid_input_type", fmt.Sprintf("Failed to convert an input value to a %s value", in.Type),
				fmt.Sprintf("%s, %v, %v", in.Name, val, err), map[string]any{"input_name": in.Name, "input_config": config, "received_value": val, "exception_message": err.Error()}))
			continue
		}
		n.Inputs[in.Name] = conv
		if e := s.checkValue(in, conv, config); e != nil {
			errs = append(errs, e)
		}
	}
	v := validation{ok: len(errs) == 0 && valid, reasons: errs}
	if v.reasons == nil {
		v.reasons = []map[string]any{}
	}
	validated[id] = v
	return v
}

func (s *Server) validateLink(nodes map[string]node, in Input, link []any, config any) (map[string]any, string) {
	if len(link) != 2 {
		return errorObj("bad_linked_input", "Bad linked input, must be a length-2 list of [node_id, slot_index]", in.Name,
			map[string]any{"input_name": in.Name, "input_config": config, "received_value": link}), ""
	}
	from, _ := link[0].(string)
	slot, isNum := link[1].(float64)
	src, ok := nodes[from]
	if !ok || !isNum || int(slot) < 0 || int(slot) >= len(s.classes[src.ClassType].Outputs) {
		return errorObj("exception_during_inner_validation", "Exception when validating inner node", fmt.Sprintf("'%v'", link[0]),
			map[string]any{"input_name": in.Name, "input_config": config, "exception_message": fmt.Sprintf("'%v'", link[0]), "exception_type": "KeyError", "traceback": []any{}, "linked_node": link}), ""
	}
	received := s.classes[src.ClassType].Outputs[int(slot)]
	if !typesMatch(received, in.Type) {
		return errorObj("return_type_mismatch", "Return type mismatch between linked nodes",
			fmt.Sprintf("%s, received_type(%s) mismatch input_type(%s)", in.Name, received, in.Type),
			map[string]any{"input_name": in.Name, "input_config": config, "received_type": received, "linked_node": link}), ""
	}
	return nil, from
}

// typesMatch is comfy_execution.validation.validate_node_input: equal,
// a "*" wildcard, or overlapping comma-separated type sets.
func typesMatch(received, want string) bool {
	if received == want || received == "*" || want == "*" || want == "COMBO" {
		return true
	}
	for _, r := range strings.Split(received, ",") {
		if slices.Contains(strings.Split(want, ","), strings.TrimSpace(r)) {
			return true
		}
	}
	return false
}

// convert is the int()/float()/str()/bool() of validate_inputs.
func convert(typ string, val any) (any, error) {
	switch typ {
	case "INT":
		switch v := val.(type) {
		case float64:
			return int(v), nil
		case bool:
			if v {
				return 1, nil
			}
			return 0, nil
		case string:
			i, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return nil, fmt.Errorf("invalid literal for int() with base 10: '%s'", v)
			}
			return i, nil
		}
		return nil, fmt.Errorf("int() argument must be a string or a number, not '%T'", val)
	case "FLOAT":
		switch v := val.(type) {
		case float64:
			return v, nil
		case string:
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return nil, fmt.Errorf("could not convert string to float: '%s'", v)
			}
			return f, nil
		}
		return nil, fmt.Errorf("float() argument must be a string or a real number, not '%T'", val)
	case "STRING":
		if v, ok := val.(string); ok {
			return v, nil
		}
		return fmt.Sprint(val), nil
	case "BOOLEAN":
		switch v := val.(type) {
		case bool:
			return v, nil
		case float64:
			return v != 0, nil
		case string:
			return v != "", nil
		}
		return val != nil, nil
	}
	return val, nil
}

func (s *Server) checkValue(in Input, val any, config any) map[string]any {
	extra := map[string]any{"input_name": in.Name, "input_config": config, "received_value": val}
	if f, ok := toFloat(val); ok {
		if in.Min != nil && f < *in.Min {
			return errorObj("value_smaller_than_min", fmt.Sprintf("Value %v smaller than min of %v", val, pyNum(*in.Min)), in.Name, extra)
		}
		if in.Max != nil && f > *in.Max {
			return errorObj("value_bigger_than_max", fmt.Sprintf("Value %v bigger than max of %v", val, pyNum(*in.Max)), in.Name, extra)
		}
	}
	if in.Files != "" {
		name, _ := val.(string)
		path, err := s.annotatedPath(name, "input")
		if st, statErr := os.Stat(path); err != nil || statErr != nil || st.IsDir() {
			return errorObj("custom_validation_failed", "Custom validation failed for node", fmt.Sprintf("%s - Invalid %s file: %s", in.Name, in.Files, name), map[string]any{"input_name": in.Name})
		}
		return nil
	}
	if in.Type == "COMBO" {
		if str, _ := val.(string); !slices.Contains(in.Options, str) {
			return errorObj("value_not_in_list", "Value not in list", fmt.Sprintf("%s: '%v' not in %s", in.Name, val, pyList(in.Options)),
				map[string]any{"input_name": in.Name, "input_config": config, "received_value": val})
		}
	}
	return nil
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

// pyNum prints a limit as Python prints the number it was declared as.
func pyNum(f float64) string {
	if f == math.Trunc(f) {
		return strconv.Itoa(int(f))
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

func pyList(options []string) string {
	quoted := make([]string, len(options))
	for i, o := range options {
		quoted[i] = "'" + o + "'"
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}
