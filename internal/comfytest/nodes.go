package comfytest

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Input is one input of a node class, as INPUT_TYPES declares it.
type Input struct {
	Name string
	// Type is the input's type: "IMAGE", "AUDIO", "INT", "FLOAT",
	// "STRING", "BOOLEAN", any custom type name, or "COMBO" with Options.
	Type    string
	Options []string // the choices of a COMBO input
	// Files makes a COMBO input list the input directory's files of this
	// kind ("image" or "audio"), as LoadImage and LoadAudio do; a value
	// naming a missing file fails validation the way their
	// VALIDATE_INPUTS does.
	Files   string
	Default any
	Min     *float64
	Max     *float64
	Step    float64
	// Placeholder and PathExtensions are a STRING input's hints, as VHS
	// declares a path it opens itself (placeholder, vhs_path_extensions).
	Placeholder    string
	PathExtensions []string
}

// NodeClass is a node class the emulator knows. Classes without Run pass
// values through: each output takes the first input value of its type.
type NodeClass struct {
	Name        string
	DisplayName string // defaults to Name
	Category    string // defaults to "sd"
	Description string
	Required    []Input
	Optional    []Input
	Hidden      map[string]string // hidden inputs, as SaveImage's prompt and extra_pnginfo
	Outputs     []string          // RETURN_TYPES
	OutputNames []string          // RETURN_NAMES; defaults to Outputs
	OutputNode  bool
	// Steps is how many progress messages the node reports while it
	// runs, with a preview frame each; 0 reports none.
	Steps int
	// Run computes the node's outputs (one per Outputs entry) and its
	// "ui" dictionary (what "executed" and the history show).
	Run func(ctx context.Context, r *NodeRun) (outputs []any, ui map[string]any, err error)
}

// NodeRun is what a node's Run sees: its resolved inputs and where it
// may write files.
type NodeRun struct {
	PromptID string
	NodeID   string
	Inputs   map[string]any
	Prompt   map[string]any // the hidden PROMPT input: the prompt as posted
	PNGInfo  map[string]any // the hidden EXTRA_PNGINFO: extra_data["extra_pnginfo"]
	s        *Server
}

// Images is the value of an IMAGE link: a batch of images.
type Images []image.Image

// Audio is the value of an AUDIO link.
type Audio struct {
	Path    string
	Seconds float64 // 0 when the file is not a WAV file it can measure
}

// SonicData is the value SONIC_PreData hands SONIC_Inference.
type SonicData struct {
	Image    image.Image
	Audio    Audio
	Duration float64
	MinRes   int
}

func num(f float64) *float64 { return &f }

func (c NodeClass) inputs() []Input { return append(slices.Clone(c.Required), c.Optional...) }

func (c NodeClass) input(name string) (Input, string, bool) {
	for _, in := range c.Required {
		if in.Name == name {
			return in, "required", true
		}
	}
	for _, in := range c.Optional {
		if in.Name == name {
			return in, "optional", true
		}
	}
	return Input{}, "", false
}

// defaultNodes are the classes every emulator knows, with the input
// names, types and limits of the real nodes.
func defaultNodes() []NodeClass {
	hidden := map[string]string{"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}
	return []NodeClass{
		{Name: "LoadImage", Category: "image", Outputs: []string{"IMAGE", "MASK"},
			Required: []Input{{Name: "image", Type: "COMBO", Files: "image"}}, Run: runLoadImage},
		{Name: "SaveImage", Category: "image", OutputNode: true, Hidden: hidden,
			Description: "Saves the input images to your ComfyUI output directory.",
			Required: []Input{{Name: "images", Type: "IMAGE"},
				{Name: "filename_prefix", Type: "STRING", Default: "ComfyUI"}},
			Run: runSaveImage("output")},
		{Name: "PreviewImage", Category: "image", OutputNode: true, Hidden: hidden,
			Required: []Input{{Name: "images", Type: "IMAGE"}}, Run: runSaveImage("temp")},
		{Name: "DDColor_Colorize", DisplayName: "DDColor Colorize", Category: "DDColor",
			Outputs: []string{"IMAGE"}, OutputNames: []string{"image"}, Steps: 4,
			Required: []Input{{Name: "image", Type: "IMAGE"},
				{Name: "model_input_size", Type: "INT", Default: 512, Min: num(32), Max: num(4096), Step: 32},
				{Name: "checkpoint", Type: "COMBO", Options: []string{"ddcolor_paper_tiny.pth", "ddcolor_paper.pth", "ddcolor_modelscope.pth", "ddcolor_artistic.pth"}}},
			Run: runDDColor},
		{Name: "LoadAudio", Category: "audio", Outputs: []string{"AUDIO"},
			Required: []Input{{Name: "audio", Type: "COMBO", Files: "audio"}}, Run: runLoadAudio},
		{Name: "SONIC_PreData", Category: "Sonic", Outputs: []string{"SONIC_PREDATA"}, OutputNames: []string{"data"},
			Required: []Input{{Name: "image", Type: "IMAGE"}, {Name: "audio", Type: "AUDIO"},
				{Name: "duration", Type: "FLOAT", Default: 10.0, Min: num(1), Max: num(3600), Step: 0.1},
				{Name: "min_resolution", Type: "INT", Default: 512, Min: num(64), Max: num(2048), Step: 64},
				{Name: "expand_ratio", Type: "FLOAT", Default: 0.5, Min: num(0), Max: num(1), Step: 0.01}},
			Run: runSonicPreData},
		{Name: "SONIC_Inference", Category: "Sonic", Outputs: []string{"IMAGE", "FLOAT"}, OutputNames: []string{"image", "fps"}, Steps: 5,
			Required: []Input{{Name: "data", Type: "SONIC_PREDATA"},
				{Name: "inference_steps", Type: "INT", Default: 25, Min: num(1), Max: num(100)},
				{Name: "dynamic_scale", Type: "FLOAT", Default: 1.0, Min: num(0.1), Max: num(5), Step: 0.1},
				{Name: "motion_scale", Type: "FLOAT", Default: 1.0, Min: num(0.1), Max: num(5), Step: 0.1},
				{Name: "fps", Type: "FLOAT", Default: 25.0, Min: num(5), Max: num(60)},
				{Name: "seed", Type: "INT", Default: 0, Min: num(0)}},
			Run: runSonicInference},
		{Name: "VHS_LoadVideoPath", DisplayName: "Load Video (Path) 🎥🅥🅗🅢", Category: "Video Helper Suite 🎥🅥🅗🅢",
			Outputs: []string{"IMAGE"}, Required: []Input{{Name: "video", Type: "STRING", Placeholder: "X://insert/path/here.mp4",
				PathExtensions: []string{"webm", "mp4", "mkv", "gif", "mov"}}}},
		{Name: "StringConcatenate", Category: "utils/string", Outputs: []string{"STRING"},
			Required: []Input{{Name: "string_a", Type: "STRING"}, {Name: "string_b", Type: "STRING"}, {Name: "delimiter", Type: "STRING", Default: ""}}},
		{Name: "VHS_VideoCombine", DisplayName: "Video Combine 🎥🅥🅗🅢", Category: "Video Helper Suite 🎥🅥🅗🅢", OutputNode: true,
			Outputs: []string{"VHS_FILENAMES"}, OutputNames: []string{"Filenames"}, Hidden: hidden,
			Required: []Input{{Name: "images", Type: "IMAGE"},
				{Name: "frame_rate", Type: "FLOAT", Default: 8.0, Min: num(1)},
				{Name: "loop_count", Type: "INT", Default: 0, Min: num(0), Max: num(100)},
				{Name: "filename_prefix", Type: "STRING", Default: "AnimateDiff"},
				{Name: "format", Type: "COMBO", Options: []string{"image/gif", "video/h264-mp4"}},
				{Name: "pingpong", Type: "BOOLEAN", Default: false},
				{Name: "save_output", Type: "BOOLEAN", Default: true}},
			Optional: []Input{{Name: "audio", Type: "AUDIO"}},
			Run:      runVideoCombine},
	}
}

func runLoadImage(_ context.Context, r *NodeRun) ([]any, map[string]any, error) {
	path, err := r.s.annotatedPath(fmt.Sprint(r.Inputs["image"]), "input")
	if err != nil {
		return nil, nil, err
	}
	img, err := readImage(path)
	if err != nil {
		return nil, nil, err
	}
	return []any{Images{img}, nil}, nil, nil
}

func runLoadAudio(_ context.Context, r *NodeRun) ([]any, map[string]any, error) {
	path, err := r.s.annotatedPath(fmt.Sprint(r.Inputs["audio"]), "input")
	if err != nil {
		return nil, nil, err
	}
	if _, err := os.Stat(path); err != nil {
		return nil, nil, fmt.Errorf("load audio: %w", err)
	}
	return []any{Audio{Path: path, Seconds: wavSeconds(path)}}, nil, nil
}

// runDDColor "colorizes" by tinting: the output is a real image derived
// from the input, at the input's size, sepia-toned.
func runDDColor(_ context.Context, r *NodeRun) ([]any, map[string]any, error) {
	in, ok := r.Inputs["image"].(Images)
	if !ok || len(in) == 0 {
		return nil, nil, fmt.Errorf("DDColor_Colorize: no image")
	}
	out := make(Images, len(in))
	for i, img := range in {
		out[i] = tint(img, color.RGBA{R: 255, G: 190, B: 120, A: 255})
	}
	return []any{out}, nil, nil
}

func runSaveImage(kind string) func(context.Context, *NodeRun) ([]any, map[string]any, error) {
	return func(_ context.Context, r *NodeRun) ([]any, map[string]any, error) {
		images, _ := r.Inputs["images"].(Images)
		prefix, _ := r.Inputs["filename_prefix"].(string)
		if kind == "temp" {
			prefix = "ComfyUI_temp_" + randomLetters(5)
		}
		text := map[string]any{}
		if r.Prompt != nil {
			text["prompt"] = r.Prompt
		}
		for k, v := range r.PNGInfo {
			text[k] = v
		}
		results, err := r.s.saveImages(kind, prefix, images, text)
		if err != nil {
			return nil, nil, err
		}
		return nil, map[string]any{"images": results}, nil
	}
}

func runSonicPreData(_ context.Context, r *NodeRun) ([]any, map[string]any, error) {
	images, _ := r.Inputs["image"].(Images)
	audio, _ := r.Inputs["audio"].(Audio)
	if len(images) == 0 {
		return nil, nil, fmt.Errorf("SONIC_PreData: no image")
	}
	d, _ := r.Inputs["duration"].(float64)
	res, _ := r.Inputs["min_resolution"].(int)
	return []any{SonicData{Image: images[0], Audio: audio, Duration: d, MinRes: res}}, nil, nil
}

// runSonicInference makes a few frames (at most 8) of the face, each
// tinted differently, standing in for the talking-head video.
func runSonicInference(_ context.Context, r *NodeRun) ([]any, map[string]any, error) {
	data, ok := r.Inputs["data"].(SonicData)
	if !ok {
		return nil, nil, fmt.Errorf("SONIC_Inference: no data")
	}
	fps, _ := r.Inputs["fps"].(float64)
	frames := min(max(int(data.Duration*fps), 1), 8)
	out := make(Images, frames)
	for i := range out {
		out[i] = tint(data.Image, color.RGBA{R: uint8(255 - 20*i), G: 200, B: uint8(100 + 20*i), A: 255})
	}
	return []any{out, fps}, nil, nil
}

func runVideoCombine(_ context.Context, r *NodeRun) ([]any, map[string]any, error) {
	images, _ := r.Inputs["images"].(Images)
	prefix, _ := r.Inputs["filename_prefix"].(string)
	format, _ := r.Inputs["format"].(string)
	rate, _ := r.Inputs["frame_rate"].(float64)
	kind := "output"
	if save, _ := r.Inputs["save_output"].(bool); !save {
		kind = "temp"
	}
	item, err := r.s.saveVideo(kind, prefix, format, rate, images)
	if err != nil {
		return nil, nil, err
	}
	files := []any{false, []any{item["fullpath"]}}
	return []any{files}, map[string]any{"gifs": []any{item}}, nil
}

// passthrough computes a Run-less node's outputs: each output takes the
// first input value (in declaration order) of its type.
func passthrough(c NodeClass, inputs map[string]any, types map[string]string) []any {
	out := make([]any, len(c.Outputs))
	for i, t := range c.Outputs {
		for _, in := range c.inputs() {
			if v, ok := inputs[in.Name]; ok && (types[in.Name] == t || in.Type == t) {
				out[i] = v
				break
			}
		}
	}
	return out
}

// annotatedFilepath is folder_paths.annotated_filepath: a name ending
// in "[output]", "[input]" or "[temp]" names a file of that directory,
// the suffix and the one character before it (the space of
// "x.png [output]") cut off.
func annotatedFilepath(name string) (string, string) {
	for _, t := range []string{"output", "input", "temp"} {
		if suffix := "[" + t + "]"; strings.HasSuffix(name, suffix) {
			return name[:max(len(name)-len(suffix)-1, 0)], t
		}
	}
	return name, ""
}

// annotatedPath resolves a LoadImage-style name ("sub/x.png",
// "x.png [output]") as folder_paths.get_annotated_filepath does: joined
// to its directory as os.path.join joins (an absolute name stands
// alone), not normalized, so the operating system resolves any ".." in
// it; LoadImage's VALIDATE_INPUTS only asks whether it exists.
func (s *Server) annotatedPath(name, defaultType string) (string, error) {
	name, kind := annotatedFilepath(name)
	if kind == "" {
		kind = defaultType
	}
	if filepath.IsAbs(name) {
		return name, nil
	}
	return s.dir(kind) + string(filepath.Separator) + filepath.FromSlash(name), nil
}
