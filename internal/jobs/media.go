package jobs

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"image"
	_ "image/gif" // registers GIF headers for image.DecodeConfig
	_ "image/jpeg"
	_ "image/png"
	"net/http"
	"strings"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/media"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// checkFile checks a file input, given as a data: URI, and returns its
// media facts for rules: content_type and bytes, width and height for
// images and seconds for audio (WAV, MP3, FLAC and Ogg Opus or Vorbis,
// read from the headers only). URLs are refused: tollgate never fetches a
// URL a caller names.
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
	// Audio that content sniffing does not name (FLAC, MP3 without an ID3
	// tag, Ogg) is audio when its header gives a length.
	length, isAudio := media.AudioDuration(data, data, int64(len(data)))
	switch in.Type {
	case config.InputImage, config.InputAudio, config.InputVideo:
		if kind != in.Type && !(in.Type == config.InputAudio && (isAudio || sniffed == "application/ogg")) {
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
		if isAudio {
			facts["seconds"] = length.Seconds()
		}
	}
	return facts, nil
}

func an(kind string) string {
	if kind == config.InputImage || kind == config.InputAudio {
		return "an " + kind
	}
	return "a " + kind
}

// audioResults stores a job's output files through its ResultWriter and
// adds up the audio in them (per_output_audio_second).
type audioResults struct {
	tollgate.ResultWriter
	millis int64
}

// measuringAudio returns a copy of run whose Results measure the audio of
// every file saved through them.
func measuringAudio(run *tollgate.JobRun) (*tollgate.JobRun, *audioResults) {
	ar := &audioResults{ResultWriter: run.Results}
	measured := *run
	measured.Results = ar
	return &measured, ar
}

func (a *audioResults) Save(ctx context.Context, name, contentType string, body []byte) (string, error) {
	ref, err := a.ResultWriter.Save(ctx, name, contentType, body)
	if err == nil {
		if d, ok := media.AudioDuration(body, body, int64(len(body))); ok {
			a.millis += media.Millis(d)
		}
	}
	return ref, err
}
