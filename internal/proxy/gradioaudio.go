package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/media"
)

// gradioAudioFiles bounds the output files of one call that are measured.
const gradioAudioFiles = 16

// gradioAudio measures the audio in the files a metered call on a gradio
// route returned, for routes priced per second of output audio: each
// output FileData's file is read from the app (its first bytes, and its
// last for Ogg) as the caller, and its length taken from its headers.
type gradioAudio struct {
	p  *Proxy
	rt *route
}

// millis is the audio, in milliseconds, of the files that the output data
// of x's call names; files that are not audio count nothing.
func (ga *gradioAudio) millis(x *exchange, data any) int64 {
	if ga == nil || x == nil || x.up == nil {
		return 0
	}
	var paths []string
	walkFileData(data, func(p string) {
		if len(paths) < gradioAudioFiles {
			paths = append(paths, p)
		}
	})
	var total int64
	for _, p := range paths {
		d, err := ga.fileDuration(x, p)
		if err != nil {
			ga.p.log.Warn("gradio: could not measure an output file's audio", "route", ga.rt.name,
				"request_id", x.call.RequestID, "err", err)
			continue
		}
		total += media.Millis(d)
	}
	return total
}

// fileDuration reads one output file's length from the app.
func (ga *gradioAudio) fileDuration(x *exchange, path string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(x.clientCt), 30*time.Second)
	defer cancel()
	head, total, err := ga.fetch(ctx, x, path, fmt.Sprintf("bytes=0-%d", media.HeadSize-1))
	if err != nil {
		return 0, err
	}
	var tail []byte
	switch {
	case int64(len(head)) >= total:
		tail = head // the whole file
	case strings.HasPrefix(string(head), "OggS"):
		if tail, _, err = ga.fetch(ctx, x, path, fmt.Sprintf("bytes=-%d", media.TailSize)); err != nil {
			return 0, err
		}
	}
	d, _ := media.AudioDuration(head, tail, total)
	return d, nil
}

// fetch GETs a byte range of an output file from the upstream that served
// x, with the caller's identity headers, and returns the bytes and the
// file's full length.
func (ga *gradioAudio) fetch(ctx context.Context, x *exchange, path, byteRange string) ([]byte, int64, error) {
	u := x.up.url.JoinPath("gradio_api", "file="+path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, 0, fmt.Errorf("output file request: %w", err)
	}
	h := req.Header
	ga.p.hdr.set(h, x.call.Principal, x.call.RequestID)
	for _, hv := range ga.rt.upHeaders {
		h[hv.name] = hv.value
	}
	h.Set("Range", byteRange)
	res, err := ga.p.transport.RoundTrip(req)
	if err != nil {
		return nil, 0, fmt.Errorf("fetch output file: %w", err)
	}
	defer res.Body.Close()
	limit := int64(max(media.HeadSize, media.TailSize))
	switch res.StatusCode {
	case http.StatusPartialContent:
		_, size, _ := strings.Cut(res.Header.Get("Content-Range"), "/")
		total, _ := strconv.ParseInt(size, 10, 64)
		b, err := io.ReadAll(io.LimitReader(res.Body, limit))
		return b, total, err
	case http.StatusOK: // no ranges: the whole file, up to what a length needs
		b, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
		return b, int64(len(b)), err
	}
	return nil, 0, fmt.Errorf("the app answered %d for an output file", res.StatusCode)
}
