package demo

import (
	"bytes"
	"cmp"
	"image"
	"image/color"
	_ "image/gif" // decoders for uploads
	_ "image/jpeg"
	"image/png"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Colorize is a slow demo image endpoint standing in for a ComfyUI
// colorization workflow: it takes a picture (raw body or a multipart field
// "image"), waits Delay as a GPU would, and answers a sepia-tinted PNG.
type Colorize struct {
	// Delay before answering. Defaults to 0.
	Delay time.Duration
	// MaxPixels refused beyond. Defaults to 16 megapixels.
	MaxPixels int
}

// Handler serves POST /colorize.
func (c *Colorize) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			writeError(w, http.StatusMethodNotAllowed, "POST an image")
			return
		}
		data, err := readImage(r)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
		if err != nil {
			writeError(w, http.StatusBadRequest, "not a PNG, JPEG or GIF image")
			return
		}
		if maxPx := cmp.Or(c.MaxPixels, 16_000_000); cfg.Width*cfg.Height > maxPx {
			writeError(w, http.StatusRequestEntityTooLarge, "image too large")
			return
		}
		img, _, err := image.Decode(bytes.NewReader(data))
		if err != nil {
			writeError(w, http.StatusBadRequest, "cannot decode image")
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(c.Delay):
		}
		out := image.NewRGBA(img.Bounds())
		for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
			for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
				g := color.GrayModel.Convert(img.At(x, y)).(color.Gray).Y
				out.Set(x, y, color.RGBA{R: sat(float64(g) * 1.07), G: sat(float64(g) * 0.74), B: sat(float64(g) * 0.43), A: 255})
			}
		}
		w.Header().Set("Content-Type", "image/png")
		w.Header().Set("X-Demo-GPU-Seconds", strconv.FormatFloat(c.Delay.Seconds(), 'f', 3, 64))
		_ = png.Encode(w, out)
	})
}

func readImage(r *http.Request) ([]byte, error) {
	body := http.MaxBytesReader(nil, r.Body, 32<<20)
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if !strings.HasPrefix(mt, "multipart/") {
		return io.ReadAll(body)
	}
	mr := multipart.NewReader(body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if err != nil {
			return nil, errNoImage
		}
		if part.FormName() == "image" {
			return io.ReadAll(part)
		}
	}
}

type demoError string

func (e demoError) Error() string { return string(e) }

const errNoImage = demoError(`multipart body has no "image" field`)

func sat(v float64) uint8 {
	if v > 255 {
		return 255
	}
	return uint8(v)
}
