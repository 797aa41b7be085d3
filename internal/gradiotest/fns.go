package gradiotest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// call runs the event's function and returns its output data.
func (s *Server) call(ctx context.Context, ev *event) ([]any, error) {
	if s.opts.App == AppCosyVoiceWebUI {
		return s.webuiCall(ctx, ev)
	}
	if ev.fn == 0 {
		return s.generateAudio(ctx, ev)
	}
	return s.normalizeText(ctx, ev)
}

// wait is the function's run time: until the test releases a held call,
// or Options.RunTime.
func (s *Server) wait(ctx context.Context, ev *event) error {
	if !s.opts.Hold {
		if s.opts.RunTime <= 0 {
			return nil
		}
		t := time.NewTimer(s.opts.RunTime)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r := &Running{
		EventID: ev.id, SessionHash: ev.session, FnIndex: ev.fn, APIName: s.fns[ev.fn].apiName,
		Data: ev.data, s: s, ev: ev, release: make(chan error, 1),
	}
	select {
	case s.started <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.release:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Server) sendProgress(ev *event, index, length int, desc string) {
	s.send(ev, map[string]any{"msg": "progress", "progress_data": []any{map[string]any{
		"index": index, "length": length, "unit": "steps", "progress": nil, "desc": desc,
	}}})
}

func (s *Server) sendLog(ev *event, level, message string) {
	title := map[string]string{"info": "Info", "warning": "Warning", "success": "Success"}[level]
	s.send(ev, map[string]any{
		"msg": "log", "log": message, "level": level, "duration": 10, "visible": true, "title": title,
	})
}

// generateAudio is the voice-cloning function: text, prompt_audio, mode,
// speed in; a WAV out.
func (s *Server) generateAudio(ctx context.Context, ev *event) ([]any, error) {
	if len(ev.data) != 4 {
		return nil, fmt.Errorf("expected 4 inputs, got %d", len(ev.data))
	}
	text, ok := ev.data[0].(string)
	if !ok {
		return nil, fmt.Errorf("text: expected a string, got %T", ev.data[0])
	}
	prompt, err := s.inputFile(ev.data[1])
	if err != nil {
		return nil, err
	}
	if prompt == "" {
		return nil, appError{"Please upload or record a prompt audio."}
	}
	mode, ok := ev.data[2].(string)
	if !ok || !contains(appModes(), mode) {
		return nil, appError{fmt.Sprintf("Value: %s is not in the list of choices: %s", pyRepr(ev.data[2]), pyList(appModes()))}
	}
	speed, ok := ev.data[3].(float64)
	if !ok || speed <= 0 {
		return nil, fmt.Errorf("speed: expected a positive number, got %v", ev.data[3])
	}
	if strings.TrimSpace(text) == "" {
		return nil, appError{"Please enter the text to synthesize."}
	}
	chars := utf8.RuneCountInString(text)
	s.sendLog(ev, "info", fmt.Sprintf("Synthesizing %d characters in %s mode", chars, mode))
	s.sendProgress(ev, 0, 1, "Synthesizing")
	if err := s.wait(ctx, ev); err != nil {
		return nil, err
	}
	freq := map[string]float64{"zero-shot": 440, "cross-lingual": 330, "instruct": 550}[mode]
	samples := int(math.Round(float64(chars) * s.opts.SecondsPerChar / speed * float64(s.opts.SampleRate)))
	path, err := s.store("audio.wav", SineWAV(s.opts.SampleRate, samples, freq))
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	ev.exec.Audio = path
	ev.exec.AudioSecs = float64(samples) / float64(s.opts.SampleRate)
	s.mu.Unlock()
	return []any{map[string]any{
		"path": path, "url": ev.root + apiPrefix + "/file=" + path, "size": nil, "orig_name": "audio.wav",
		"mime_type": nil, "is_stream": false, "meta": map[string]any{"_type": "gradio.FileData"},
	}}, nil
}

// normalizeText is a generator: it yields the text's words one by one.
// Once started it sends the first word, then waits (see wait), then the
// rest.
func (s *Server) normalizeText(ctx context.Context, ev *event) ([]any, error) {
	if len(ev.data) != 1 {
		return nil, fmt.Errorf("expected 1 input, got %d", len(ev.data))
	}
	text, ok := ev.data[0].(string)
	if !ok {
		return nil, fmt.Errorf("text: expected a string, got %T", ev.data[0])
	}
	words := strings.Fields(strings.ToLower(text))
	if len(words) == 0 {
		words = []string{""}
	}
	prev := ""
	begin := time.Now()
	for i := range words {
		if i == 1 {
			if err := s.wait(ctx, ev); err != nil {
				return nil, err
			}
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		cur := strings.Join(words[:i+1], " ")
		var value any = cur
		if i > 0 && !ev.simple {
			value = stringDiff(prev, cur)
		}
		prev = cur
		s.send(ev, map[string]any{
			"msg": "process_generating", "success": true, "time_limit": nil,
			"output": outputData([]any{value}, time.Since(begin).Seconds(), nil, true),
		})
	}
	if len(words) == 1 {
		if err := s.wait(ctx, ev); err != nil {
			return nil, err
		}
	}
	return []any{prev}, nil
}

// stringDiff is utils.diff for two strings.
func stringDiff(old, cur string) []any {
	switch {
	case old == cur:
		return []any{}
	case strings.HasPrefix(cur, old):
		return []any{[]any{"append", []any{}, cur[len(old):]}}
	default:
		return []any{[]any{"replace", []any{}, cur}}
	}
}

// inputFile is the preprocessing of a FileData input: the path must be a
// file uploaded to (or created by) the app. It returns "" for None.
func (s *Server) inputFile(v any) (string, error) {
	if v == nil {
		return "", nil
	}
	fd, ok := v.(map[string]any)
	if !ok {
		return "", fmt.Errorf("expected a FileData object, got %T", v)
	}
	p, ok := fd["path"].(string)
	if !ok {
		return "", errors.New("FileData has no path")
	}
	if isHTTPURL(p) {
		return "", fmt.Errorf("cannot download %s: this app does not fetch URLs", p)
	}
	abs, ok := s.allowed(p)
	if !ok {
		return "", fmt.Errorf("Cannot move %s to the gradio cache dir because it was not uploaded by a user.", abs)
	}
	return abs, nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// pyRepr renders v as Python's repr would, for error messages.
func pyRepr(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case string:
		return "'" + v + "'"
	default:
		return fmt.Sprint(v)
	}
}

func pyList(list []string) string {
	parts := make([]string, len(list))
	for i, x := range list {
		parts[i] = pyRepr(x)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
