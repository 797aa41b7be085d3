package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/internal/media"
)

// gradioAudioFiles bounds the output files of one call that are measured,
// gradioAudioTimeout how long measuring them may take, and gradioAudioRead
// how much of a file sent without ranges is read through to its end.
const (
	gradioAudioFiles   = 16
	gradioAudioTimeout = 30 * time.Second
	gradioAudioRead    = 64 << 20
)

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
	// One bound for all the files: the message that names them waits.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(x.clientCt), gradioAudioTimeout)
	defer cancel()
	var total int64
	for _, p := range paths {
		d, err := ga.fileDuration(ctx, x, p)
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
func (ga *gradioAudio) fileDuration(ctx context.Context, x *exchange, path string) (time.Duration, error) {
	head, tail, total, err := ga.fetch(ctx, x, path, fmt.Sprintf("bytes=0-%d", media.HeadSize-1))
	if err != nil {
		return 0, err
	}
	switch {
	case tail != nil: // the app sent the whole file
	case int64(len(head)) >= total:
		tail = head // the whole file
	case strings.HasPrefix(string(head), "OggS"):
		if tail, _, _, err = ga.fetch(ctx, x, path, fmt.Sprintf("bytes=-%d", media.TailSize)); err != nil {
			return 0, err
		}
	}
	d, _ := media.AudioDuration(head, tail, total)
	return d, nil
}

// gradioFileURL is the URL of the app's file route for path, exactly as a
// client builds it: {root}/gradio_api/file={path}, not cleaned. A path
// with a "." or ".." segment, a query or a fragment could name another
// of the app's routes, so it is refused.
func gradioFileURL(root *url.URL, path string) (*url.URL, error) {
	if path == "" || hasDotSegment("/"+path) || strings.ContainsAny(path, "?#\\") {
		return nil, fmt.Errorf("output file path %q is not a plain file path", path)
	}
	u := *root
	u.Path = strings.TrimSuffix(u.Path, "/") + "/gradio_api/file=" + path
	u.RawPath, u.RawQuery, u.Fragment = "", "", ""
	return &u, nil
}

// fetch GETs a byte range of an output file from the upstream that served
// x, with the caller's identity headers, and returns the file's first
// bytes, its last ones when the app ignored the range and sent it whole
// (nil otherwise), and its full length.
func (ga *gradioAudio) fetch(ctx context.Context, x *exchange, path, byteRange string) (head, tail []byte, total int64, err error) {
	root := x.up.url
	if !ga.rt.stripPrefix { // the app is served under the route's path
		r := *root
		r.Path = strings.TrimSuffix(r.Path, "/") + strings.TrimSuffix(ga.rt.path, "/")
		root = &r
	}
	u, err := gradioFileURL(root, path)
	if err != nil {
		return nil, nil, 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("output file request: %w", err)
	}
	h := req.Header
	ga.p.hdr.set(h, x.call.Principal, x.call.RequestID)
	for _, hv := range ga.rt.upHeaders {
		h[hv.name] = hv.value
	}
	if x.internalToken != "" { // the app may check it as it does on the call
		h[ga.p.hdr.internalToken] = []string{x.internalToken}
	}
	h.Set("Range", byteRange)
	res, err := ga.p.transport.RoundTrip(req)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("fetch output file: %w", err)
	}
	defer res.Body.Close()
	limit := int64(max(media.HeadSize, media.TailSize))
	switch res.StatusCode {
	case http.StatusPartialContent:
		_, size, _ := strings.Cut(res.Header.Get("Content-Range"), "/")
		total, _ := strconv.ParseInt(size, 10, 64)
		b, err := io.ReadAll(io.LimitReader(res.Body, limit))
		return b, nil, max(total, 0), err
	case http.StatusOK: // no ranges: the whole file
		return headTail(res.Body, res.ContentLength)
	}
	return nil, nil, 0, fmt.Errorf("the app answered %d for an output file", res.StatusCode)
}

// headTail reads a whole file sent without ranges in bounded memory: its
// first HeadSize bytes, and its size, from length when the app sent one.
// An Ogg stream, or a file of unknown length, is read through (up to
// gradioAudioRead bytes), keeping its last TailSize bytes.
func headTail(r io.Reader, length int64) (head, tail []byte, total int64, err error) {
	head = make([]byte, media.HeadSize)
	n, err := io.ReadFull(r, head)
	head = head[:n]
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return head, head, int64(n), nil
	} else if err != nil {
		return nil, nil, 0, err
	}
	if length > 0 && !strings.HasPrefix(string(head), "OggS") {
		return head, nil, length, nil
	}
	// Read through to the end, keeping the last bytes.
	tail = append(make([]byte, 0, 2*media.TailSize+len(head)), head...)
	buf := make([]byte, 32<<10)
	seen := int64(n)
	rest := io.LimitReader(r, gradioAudioRead-seen)
	for {
		m, err := rest.Read(buf)
		seen += int64(m)
		if tail = append(tail, buf[:m]...); len(tail) > 2*media.TailSize {
			tail = append(tail[:0], tail[len(tail)-media.TailSize:]...)
		}
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, nil, 0, err
		}
	}
	tail = tail[max(0, len(tail)-media.TailSize):]
	return head, tail, max(length, seen), nil
}
