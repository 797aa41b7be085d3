package gradiotest

import (
	"net/http"
)

// appModes are the choices of the mode Radio, as CosyVoice3's demo offers.
func appModes() []string { return []string{"zero-shot", "cross-lingual", "instruct"} }

// Component ids in the Blocks config.
const (
	idRoot = iota
	idText
	idPrompt
	idMode
	idSpeed
	idGenerate
	idAudio
	idNormalized
	idState
)

// endpoint is one backend function of the app (a BlockFunction).
type endpoint struct {
	apiName   string
	inputs    []int
	outputs   []int
	params    []string // parameter names of the Python function
	generator bool
	targets   [][]any
}

// appEndpoints are the app's functions by fn_index.
func appEndpoints() []endpoint {
	return []endpoint{
		{
			apiName: "generate_audio",
			inputs:  []int{idText, idPrompt, idMode, idSpeed},
			outputs: []int{idAudio},
			params:  []string{"text", "prompt_audio", "mode", "speed"},
			targets: [][]any{{idGenerate, "click"}},
		},
		{
			apiName:   "normalize_text",
			inputs:    []int{idText},
			outputs:   []int{idNormalized},
			params:    []string{"text"},
			generator: true,
			targets:   [][]any{{idText, "submit"}},
		},
	}
}

func (s *Server) endpointByName(name string) (int, bool) {
	for i, e := range s.fns {
		if e.apiName == name {
			return i, true
		}
	}
	return 0, false
}

const audioExampleURL = "https://github.com/gradio-app/gradio/raw/main/test/test_files/audio_sample.wav"

// fileDataSchema is FileData.model_json_schema(), the api_info of Audio.
func fileDataSchema() map[string]any {
	nullable := func(typ, title string) map[string]any {
		return map[string]any{"anyOf": []any{map[string]any{"type": typ}, map[string]any{"type": "null"}}, "default": nil, "title": title}
	}
	return map[string]any{
		"additionalProperties": false,
		"description":          "The FileData class is a subclass of the GradioModel class that represents a file object within a Gradio interface. It is used to store file data and metadata when a file is uploaded.",
		"properties": map[string]any{
			"path":      map[string]any{"title": "Path", "type": "string"},
			"url":       nullable("string", "Url"),
			"size":      nullable("integer", "Size"),
			"orig_name": nullable("string", "Orig Name"),
			"mime_type": nullable("string", "Mime Type"),
			"is_stream": map[string]any{"default": false, "title": "Is Stream", "type": "boolean"},
			"meta":      map[string]any{"default": map[string]any{"_type": "gradio.FileData"}, "title": "Meta", "type": "object"},
		},
		"required": []any{"path"},
		"title":    "FileData",
		"type":     "object",
	}
}

func fileDataExample() map[string]any {
	return map[string]any{"path": audioExampleURL, "meta": map[string]any{"_type": "gradio.FileData"}, "orig_name": "audio_sample.wav", "url": audioExampleURL}
}

// component is one entry of config["components"]; api holds the
// api_info, python type and example of components that are not skip_api.
type component struct {
	id       int
	typ      string
	props    map[string]any
	api      map[string]any
	pyType   string
	example  any
	hasValue bool
}

func (s *Server) components() []component {
	if s.opts.App == AppCosyVoiceWebUI {
		return webuiComponents()
	}
	modes := appModes()
	choices := make([]any, len(modes))
	enum := make([]any, len(modes))
	quoted := ""
	for i, m := range modes {
		choices[i] = []any{m, m}
		enum[i] = m
		if i > 0 {
			quoted += ", "
		}
		quoted += "'" + m + "'"
	}
	cs := []component{
		{id: idText, typ: "textbox", hasValue: true, props: map[string]any{
			"name": "textbox", "label": "Text to synthesize", "value": "", "lines": 3, "max_lines": 20,
			"placeholder": "Type the text the cloned voice will speak", "show_label": true, "container": true,
			"min_width": 160, "visible": true, "autofocus": false, "autoscroll": true, "type": "text",
			"rtl": false, "show_copy_button": false, "submit_btn": false, "stop_btn": false, "_selectable": false,
		}, api: map[string]any{"type": "string"}, pyType: "str", example: "Hello!!"},
		{id: idPrompt, typ: "audio", props: map[string]any{
			"name": "audio", "label": "Prompt audio (3–10 s of the voice to clone)", "sources": []any{"upload", "microphone"},
			"type": "filepath", "show_label": true, "container": true, "min_width": 160, "visible": true,
			"streaming": false, "autoplay": false, "show_download_button": true, "editable": true, "format": "wav",
			"interactive": true, "_selectable": false,
		}, api: fileDataSchema(), pyType: "filepath", example: fileDataExample()},
		{id: idMode, typ: "radio", hasValue: true, props: map[string]any{
			"name": "radio", "label": "Inference mode", "choices": choices, "value": modes[0], "type": "value",
			"show_label": true, "container": true, "min_width": 160, "visible": true, "rtl": false, "_selectable": false,
		}, api: map[string]any{"enum": enum, "title": "Radio", "type": "string"}, pyType: "Literal[" + quoted + "]", example: modes[0]},
		{id: idSpeed, typ: "slider", hasValue: true, props: map[string]any{
			"name": "slider", "label": "Speed", "minimum": 0.5, "maximum": 2.0, "step": 0.1, "value": 1.0,
			"show_label": true, "container": true, "min_width": 160, "visible": true, "interactive": true,
			"show_reset_button": true, "_selectable": false,
		}, api: map[string]any{"type": "number", "description": "numeric value between 0.5 and 2.0"}, pyType: "float", example: 0.5},
		{id: idGenerate, typ: "button", props: map[string]any{
			"name": "button", "value": "Generate audio", "variant": "primary", "size": "lg", "visible": true,
			"interactive": true, "scale": 0, "min_width": 160,
		}},
		{id: idAudio, typ: "audio", props: map[string]any{
			"name": "audio", "label": "Synthesized audio", "type": "numpy", "show_label": true, "container": true,
			"min_width": 160, "visible": true, "streaming": false, "autoplay": true, "show_download_button": true,
			"format": "wav", "interactive": false, "_selectable": false,
		}, api: fileDataSchema(), pyType: "filepath", example: fileDataExample()},
		{id: idNormalized, typ: "textbox", hasValue: true, props: map[string]any{
			"name": "textbox", "label": "Normalized text", "value": "", "lines": 1, "max_lines": 20,
			"show_label": true, "container": true, "min_width": 160, "visible": true, "type": "text",
			"interactive": false, "_selectable": false,
		}, api: map[string]any{"type": "string"}, pyType: "str", example: "Hello!!"},
	}
	if s.opts.ConnectHeartbeat {
		cs = append(cs, component{id: idState, typ: "state", props: map[string]any{"name": "state", "time_to_live": nil, "delete_callback": nil}})
	}
	return cs
}

func componentByID(cs []component, id int) component {
	for _, c := range cs {
		if c.id == id {
			return c
		}
	}
	panic("gradiotest: no component")
}

// handleConfig is GET /config.
func (s *Server) handleConfig(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.config(r, "/config"))
}

// config is the Blocks config with the root a request to routePath sees.
func (s *Server) config(r *http.Request, routePath string) map[string]any {
	cs := s.components()
	var comps, children []any
	var ids []any
	for _, c := range cs {
		entry := map[string]any{
			"id": c.id, "type": c.typ, "props": c.props, "skip_api": c.api == nil,
			"component_class_id": c.typ + "-component", "key": nil,
		}
		if c.api != nil {
			entry["api_info"] = c.api
			entry["api_info_as_input"] = c.api
			entry["api_info_as_output"] = c.api
			entry["example_inputs"] = c.example
		}
		comps = append(comps, entry)
		children = append(children, map[string]any{"id": c.id})
		ids = append(ids, c.id)
	}
	var deps, depIDs []any
	for i, e := range s.fns {
		deps = append(deps, map[string]any{
			"id": i, "targets": e.targets, "inputs": e.inputs, "outputs": e.outputs, "backend_fn": true,
			"js": nil, "queue": true, "api_name": e.apiName, "api_description": nil, "scroll_to_output": false,
			"show_progress": "full", "show_progress_on": nil, "batch": false, "max_batch_size": 4, "cancels": []any{},
			"types": map[string]any{"generator": e.generator, "cancel": false}, "collects_event_data": false,
			"trigger_after": nil, "trigger_only_on_success": false, "trigger_only_on_failure": false,
			"trigger_mode": "once", "api_visibility": "public", "rendered_in": nil, "render_id": nil,
			"connection": "sse", "time_limit": nil, "stream_every": 0.5, "event_specific_args": nil,
			"component_prop_inputs": []any{}, "js_implementation": nil,
		})
		depIDs = append(depIDs, i)
	}
	layout := map[string]any{"id": idRoot, "children": children}
	rootPath := s.opts.RootPath
	if rootPath == "" {
		rootPath = s.opts.MountPath
	}
	config := map[string]any{
		"version": "6.25.0", "api_prefix": apiPrefix, "mode": "blocks", "app_id": s.appID,
		"dev_mode": false, "vibe_mode": false, "analytics_enabled": false, "components": comps,
		"css": nil, "connect_heartbeat": s.opts.ConnectHeartbeat, "js": nil, "head": nil,
		"title": "CosyVoice3", "space_id": nil, "enable_queue": true, "show_error": s.opts.ShowError,
		"footer_links": []any{"api", "gradio", "settings"}, "run_history": true, "is_colab": false,
		"max_file_size": nil, "stylesheets": []any{}, "theme": "default", "protocol": "sse_v3",
		"body_css": nil, "fill_height": false, "fill_width": false, "theme_hash": nil, "pwa": false,
		"pages": []any{[]any{"", "Home"}}, "mcp_server": false, "i18n_translations": nil,
		"page":         map[string]any{"": map[string]any{"layout": layout, "components": ids, "dependencies": depIDs}},
		"layout":       layout,
		"dependencies": deps,
		"username":     nil,
		"root":         rootURL(r, routePath, rootPath),
	}
	return config
}

// handleInfo is GET /gradio_api/info: Blocks.get_api_info.
func (s *Server) handleInfo(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.info())
}

func (s *Server) info() map[string]any {
	cs := s.components()
	named := map[string]any{}
	for _, e := range s.fns {
		params, returns := []any{}, []any{}
		for i, id := range e.inputs {
			c := componentByID(cs, id)
			var def any
			if c.hasValue {
				def = c.props["value"]
			}
			params = append(params, map[string]any{
				"label": c.props["label"], "parameter_name": e.params[i],
				"parameter_has_default": c.hasValue, "parameter_default": def,
				"type": c.api, "python_type": map[string]any{"type": c.pyType, "description": ""},
				"component": capitalize(c.typ), "example_input": c.example,
			})
		}
		for _, id := range e.outputs {
			c := componentByID(cs, id)
			desc, _ := c.api["description"].(string)
			returns = append(returns, map[string]any{
				"label": c.props["label"], "type": c.api,
				"python_type": map[string]any{"type": c.pyType, "description": desc},
				"component":   capitalize(c.typ),
			})
		}
		named["/"+e.apiName] = map[string]any{
			"parameters": params, "returns": returns, "api_visibility": "public", "description": "",
		}
	}
	return map[string]any{"named_endpoints": named, "unnamed_endpoints": map[string]any{}}
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}
