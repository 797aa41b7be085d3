package jobs

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"image"
	_ "image/gif" // registers GIF headers for image.DecodeConfig
	_ "image/jpeg"
	_ "image/png"
	"net/http"
	"strings"

	"github.com/tollgate/tollgate/internal/config"
)

// checkFile checks a file input, given as a data: URI, and returns its
// media facts for rules: content_type and bytes, width and height for
// images and seconds for WAV audio (read from the headers only). URLs are refused: tollgate never
// fetches a URL a caller names.
func checkFile(in config.JobInput, v any) (map[string]any, error) {
	s, ok := v.(string)
	if !ok {
		return nil, fmt.Errorf("want a data: URI")
	}
	if strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") {
		return nil, fmt.Errorf("URLs are not fetched; send the file as a data: URI")
	}
	rest, ok := strings.CutPrefix(s, "data:")
	if !ok {
		return nil, fmt.Errorf("want a data: URI")
	}
	meta, payload, ok := strings.Cut(rest, ",")
	if !ok || !strings.HasSuffix(meta, ";base64") {
		return nil, fmt.Errorf("want a base64 data: URI (data:<type>;base64,<data>)")
	}
	limit, _ := config.ParseSize(in.MaxSize)
	if int64(base64.StdEncoding.DecodedLen(len(payload))) > limit+3 {
		return nil, fmt.Errorf("larger than %s", in.MaxSize)
	}
	data, err := base64.StdEncoding.DecodeString(payload)
	if err != nil {
		return nil, fmt.Errorf("the data: URI is not valid base64")
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %s", in.MaxSize)
	}
	sniffed := http.DetectContentType(data)
	kind, _, _ := strings.Cut(sniffed, "/")
	switch in.Type {
	case config.InputImage, config.InputAudio, config.InputVideo:
		if kind != in.Type && !(in.Type == config.InputAudio && sniffed == "application/ogg") {
			return nil, fmt.Errorf("the content is %s, not %s", sniffed, an(in.Type))
		}
	}
	facts := map[string]any{"content_type": sniffed, "bytes": float64(len(data))}
	if in.Type == config.InputImage {
		cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("the image header cannot be read (want PNG, JPEG or GIF)")
		}
		facts["width"], facts["height"] = float64(cfg.Width), float64(cfg.Height)
	}
	if in.Type == config.InputAudio {
		if secs, ok := wavSeconds(data); ok {
			facts["seconds"] = secs
		}
	}
	return facts, nil
}

// wavSeconds reads a WAV file's length from its fmt and data chunks
// (byte rate and data size), without decoding samples.
func wavSeconds(b []byte) (float64, bool) {
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return 0, false
	}
	var byteRate, dataSize uint32
	for off := 12; off+8 <= len(b); {
		id, size := string(b[off:off+4]), binary.LittleEndian.Uint32(b[off+4:off+8])
		body := off + 8
		switch id {
		case "fmt ":
			if body+12 > len(b) {
				return 0, false
			}
			byteRate = binary.LittleEndian.Uint32(b[body+8 : body+12])
		case "data":
			dataSize = min(size, uint32(len(b)-body))
			if byteRate == 0 {
				return 0, false
			}
			return float64(dataSize) / float64(byteRate), true
		}
		next := body + int(size) + int(size&1)
		if next <= off || size > uint32(len(b)) {
			return 0, false
		}
		off = next
	}
	return 0, false
}

func an(kind string) string {
	if kind == config.InputImage || kind == config.InputAudio {
		return "an " + kind
	}
	return "a " + kind
}
