package comfytest

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/color/palette"
	"image/draw"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	_ "image/gif" // uploads may be GIF
)

// within reports whether path is base or inside it.
func within(base, path string) bool {
	rel, err := filepath.Rel(base, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

func readImage(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open image: %w", err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("decode image %s: %w", filepath.Base(path), err)
	}
	return img, nil
}

// tint multiplies a grey version of img by c: a visible, deterministic
// "colorization".
func tint(img image.Image, c color.RGBA) image.Image {
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			g := color.GrayModel.Convert(img.At(x, y)).(color.Gray).Y
			out.SetRGBA(x-b.Min.X, y-b.Min.Y, color.RGBA{
				R: uint8(int(g) * int(c.R) / 255), G: uint8(int(g) * int(c.G) / 255),
				B: uint8(int(g) * int(c.B) / 255), A: 255})
		}
	}
	return out
}

func randomLetters(n int) string {
	const letters = "abcdefghijklmnopqrstupvxyz"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b)
}

// savePath is folder_paths.get_save_image_path: the prefix's directory
// part becomes the subfolder and the counter continues after the highest
// "<name>_<counter>_" file already there.
func (s *Server) savePath(kind, prefix string) (folder, name, subfolder string, counter int, err error) {
	base := s.dir(kind)
	clean := filepath.Clean(filepath.FromSlash(prefix))
	subfolder, name = filepath.Dir(clean), filepath.Base(clean)
	if subfolder == "." {
		subfolder = ""
	}
	folder = filepath.Join(base, subfolder)
	if !within(base, folder) {
		return "", "", "", 0, fmt.Errorf("Saving image outside the output folder is not allowed.")
	}
	if err := os.MkdirAll(folder, 0o755); err != nil {
		return "", "", "", 0, fmt.Errorf("make output folder: %w", err)
	}
	entries, err := os.ReadDir(folder)
	if err != nil {
		return "", "", "", 0, fmt.Errorf("read output folder: %w", err)
	}
	counter = 1
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), name+"_")
		if !ok {
			continue
		}
		digits, _, _ := strings.Cut(rest, "_")
		if n, err := strconv.Atoi(digits); err == nil && n >= counter {
			counter = n + 1
		}
	}
	return folder, name, filepath.ToSlash(subfolder), counter, nil
}

// saveImages writes each image as a real PNG, SaveImage's way, and
// returns the "images" entries of its ui output.
func (s *Server) saveImages(kind, prefix string, images Images, text map[string]any) ([]any, error) {
	folder, name, subfolder, counter, err := s.savePath(kind, prefix)
	if err != nil {
		return nil, err
	}
	results := []any{}
	for i, img := range images {
		file := fmt.Sprintf("%s_%05d_.png", strings.ReplaceAll(name, "%batch_num%", strconv.Itoa(i)), counter)
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			return nil, fmt.Errorf("encode png: %w", err)
		}
		if err := os.WriteFile(filepath.Join(folder, file), withText(buf.Bytes(), text), 0o644); err != nil {
			return nil, fmt.Errorf("save image: %w", err)
		}
		results = append(results, map[string]any{"filename": file, "subfolder": subfolder, "type": kind})
		counter++
	}
	return results, nil
}

// withText inserts a tEXt chunk per key after the PNG's IHDR chunk,
// each value as JSON, as SaveImage's PngInfo does with the prompt and
// extra_pnginfo (the workflow).
func withText(b []byte, text map[string]any) []byte {
	const ihdrEnd = 8 + 8 + 13 + 4
	if len(text) == 0 || len(b) < ihdrEnd {
		return b
	}
	keys := make([]string, 0, len(text))
	for k := range text {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := append([]byte(nil), b[:ihdrEnd]...)
	for _, k := range keys {
		v, err := json.Marshal(text[k])
		if err != nil {
			continue
		}
		data := append(append([]byte(k), 0), v...)
		chunk := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
		chunk = append(chunk, "tEXt"...)
		chunk = append(chunk, data...)
		chunk = binary.BigEndian.AppendUint32(chunk, crc32.ChecksumIEEE(chunk[4:]))
		out = append(out, chunk...)
	}
	return append(out, b[ihdrEnd:]...)
}

// saveVideo writes the frames as an animated GIF (for every format) and
// returns VideoHelperSuite's "gifs" entry.
func (s *Server) saveVideo(kind, prefix, format string, rate float64, images Images) (map[string]any, error) {
	folder, name, subfolder, counter, err := s.savePath(kind, prefix)
	if err != nil {
		return nil, err
	}
	ext := "gif"
	if format == "video/h264-mp4" {
		ext = "mp4"
	}
	file := fmt.Sprintf("%s_%05d.%s", name, counter, ext)
	anim := &gif.GIF{}
	delay := int(100 / max(rate, 1))
	for _, img := range images {
		p := image.NewPaletted(img.Bounds(), palette.Plan9)
		draw.FloydSteinberg.Draw(p, img.Bounds(), img, image.Point{})
		anim.Image = append(anim.Image, p)
		anim.Delay = append(anim.Delay, delay)
	}
	var buf bytes.Buffer
	if err := gif.EncodeAll(&buf, anim); err != nil {
		return nil, fmt.Errorf("encode video: %w", err)
	}
	full := filepath.Join(folder, file)
	if err := os.WriteFile(full, buf.Bytes(), 0o644); err != nil {
		return nil, fmt.Errorf("save video: %w", err)
	}
	return map[string]any{"filename": file, "subfolder": subfolder, "type": kind,
		"format": format, "frame_rate": rate, "workflow": "", "fullpath": full}, nil
}

// previewJPEG is a small JPEG of img, for preview frames.
func previewJPEG(img image.Image) []byte {
	b := img.Bounds()
	scale := max(1, max(b.Dx(), b.Dy())/64)
	small := image.NewRGBA(image.Rect(0, 0, max(1, b.Dx()/scale), max(1, b.Dy()/scale)))
	for y := range small.Bounds().Dy() {
		for x := range small.Bounds().Dx() {
			small.Set(x, y, img.At(b.Min.X+x*scale, b.Min.Y+y*scale))
		}
	}
	var buf bytes.Buffer
	_ = jpeg.Encode(&buf, small, &jpeg.Options{Quality: 80})
	return buf.Bytes()
}

// wavSeconds is a WAV file's length, or 0 when it is not a PCM WAV file.
func wavSeconds(path string) float64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	var hdr [12]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil || string(hdr[0:4]) != "RIFF" || string(hdr[8:12]) != "WAVE" {
		return 0
	}
	var byteRate uint32
	for {
		var chunk [8]byte
		if _, err := io.ReadFull(f, chunk[:]); err != nil {
			return 0
		}
		size := binary.LittleEndian.Uint32(chunk[4:8])
		switch string(chunk[0:4]) {
		case "fmt ":
			body := make([]byte, size)
			if _, err := io.ReadFull(f, body); err != nil || size < 12 {
				return 0
			}
			byteRate = binary.LittleEndian.Uint32(body[8:12])
		case "data":
			if byteRate == 0 {
				return 0
			}
			return float64(size) / float64(byteRate)
		default:
			if _, err := f.Seek(int64(size), io.SeekCurrent); err != nil {
				return 0
			}
		}
	}
}

// WAV returns a silent 16-bit mono PCM WAV file of the given length,
// for tests that upload audio.
func WAV(seconds float64) []byte {
	const rate = 8000
	n := int(seconds * rate)
	var b bytes.Buffer
	w := func(v any) { _ = binary.Write(&b, binary.LittleEndian, v) }
	b.WriteString("RIFF")
	w(uint32(36 + 2*n))
	b.WriteString("WAVEfmt ")
	w(uint32(16))
	w(uint16(1))
	w(uint16(1))
	w(uint32(rate))
	w(uint32(2 * rate))
	w(uint16(2))
	w(uint16(16))
	b.WriteString("data")
	w(uint32(2 * n))
	b.Write(make([]byte, 2*n))
	return b.Bytes()
}

// PNG returns a w×h greyscale gradient PNG, for tests that upload images.
func PNG(w, h int) []byte {
	img := image.NewGray(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetGray(x, y, color.Gray{Y: uint8((x*255/max(1, w-1) + y*255/max(1, h-1)) / 2)})
		}
	}
	var buf bytes.Buffer
	_ = png.Encode(&buf, img)
	return buf.Bytes()
}
