package demo

import (
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"time"
)

// SketchModel is the job model name of the demo sketch endpoint.
const SketchModel = "demo/sketch"

// Sketch is a slow demo job endpoint standing in for a GPU generator: it
// takes {"prompt": "...", "size": N} as JSON, waits Delay as a GPU would,
// and answers a size×size PNG whose colours come from the prompt.
type Sketch struct {
	// Delay before answering. Defaults to 0.
	Delay time.Duration
}

// Handler serves POST /generate.
func (s *Sketch) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			writeError(w, http.StatusMethodNotAllowed, "POST a JSON input")
			return
		}
		var in struct {
			Prompt string `json:"prompt"`
			Size   int    `json:"size"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&in); err != nil {
			writeError(w, http.StatusBadRequest, "want a JSON object with prompt and size")
			return
		}
		if in.Size < 16 || in.Size > 2048 {
			writeError(w, http.StatusBadRequest, "size must be 16 to 2048")
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(s.Delay):
		}
		var seed uint32 = 2166136261
		for _, c := range []byte(in.Prompt) {
			seed = (seed ^ uint32(c)) * 16777619
		}
		img := image.NewRGBA(image.Rect(0, 0, in.Size, in.Size))
		for y := range in.Size {
			for x := range in.Size {
				img.Set(x, y, color.RGBA{R: uint8(seed) + uint8(x*255/in.Size), G: uint8(seed >> 8), B: uint8(seed>>16) + uint8(y*255/in.Size), A: 255})
			}
		}
		w.Header().Set("Content-Type", "image/png")
		_ = png.Encode(w, img)
	})
}
