package comfytest

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// inputConfig is an input's INPUT_TYPES entry: ("IMAGE",) or
// ("INT", {...}) or ([options...], {...}).
func inputConfig(in Input, s *Server) []any {
	opts := map[string]any{}
	if in.Default != nil {
		opts["default"] = in.Default
	}
	if in.Min != nil {
		opts["min"] = *in.Min
	}
	if in.Max != nil {
		opts["max"] = *in.Max
	}
	if in.Step != 0 {
		opts["step"] = in.Step
	}
	if in.Placeholder != "" {
		opts["placeholder"] = in.Placeholder
	}
	if in.PathExtensions != nil {
		opts["vhs_path_extensions"] = in.PathExtensions
	}
	var typ any = in.Type
	switch {
	case in.Files != "":
		typ = s.inputFiles(in.Files)
		opts[in.Files+"_upload"] = true
	case in.Type == "COMBO":
		typ = in.Options
	}
	if len(opts) == 0 {
		return []any{typ}
	}
	return []any{typ, opts}
}

// extensions are the file extensions of a kind of input file.
func extensions(kind string) []string {
	switch kind {
	case "image":
		return []string{".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp"}
	case "audio":
		return []string{".wav", ".mp3", ".flac", ".ogg", ".m4a", ".mp4", ".webm"}
	}
	return nil
}

// inputFiles lists the input directory's files of a kind, sorted, as
// LoadImage's INPUT_TYPES does (top level only).
func (s *Server) inputFiles(kind string) []string {
	entries, _ := os.ReadDir(s.dir("input"))
	files := []string{}
	for _, e := range entries {
		ext := strings.ToLower(filepath.Ext(e.Name()))
		if !e.IsDir() && containsString(extensions(kind), ext) {
			files = append(files, e.Name())
		}
	}
	sort.Strings(files)
	return files
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// nodeInfo is server.py's node_info for one class.
func (s *Server) nodeInfo(c NodeClass) map[string]any {
	required, optional := map[string]any{}, map[string]any{}
	order := map[string]any{}
	var reqOrder, optOrder []string
	for _, in := range c.Required {
		required[in.Name] = inputConfig(in, s)
		reqOrder = append(reqOrder, in.Name)
	}
	input := map[string]any{"required": required}
	order["required"] = nonNil(reqOrder)
	if len(c.Optional) > 0 {
		for _, in := range c.Optional {
			optional[in.Name] = inputConfig(in, s)
			optOrder = append(optOrder, in.Name)
		}
		input["optional"] = optional
		order["optional"] = optOrder
	}
	if len(c.Hidden) > 0 {
		hidden := map[string]any{}
		var names []string
		for k, v := range c.Hidden {
			hidden[k] = v
			names = append(names, k)
		}
		sort.Strings(names)
		input["hidden"] = hidden
		order["hidden"] = names
	}
	outputs := nonNil(c.Outputs)
	names := c.OutputNames
	if names == nil {
		names = outputs
	}
	isList := make([]bool, len(outputs))
	category := c.Category
	if category == "" {
		category = "sd"
	}
	display := c.DisplayName
	if display == "" {
		display = c.Name
	}
	module := "custom_nodes." + c.Name
	if c.Name == "LoadImage" || c.Name == "SaveImage" || c.Name == "PreviewImage" {
		module = "nodes"
	} else if c.Name == "LoadAudio" {
		module = "comfy_extras.nodes_audio"
	}
	return map[string]any{
		"input": input, "input_order": order, "output": outputs, "output_is_list": isList,
		"output_name": names, "name": c.Name, "display_name": display, "description": c.Description,
		"python_module": module, "category": category, "output_node": c.OutputNode,
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
