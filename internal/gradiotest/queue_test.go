package gradiotest_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/internal/gradiotest"
)

func queueData(srv *gradiotest.Server, session string) string {
	return srv.URL + "/gradio_api/queue/data?session_hash=" + url.QueryEscape(session)
}

func TestQueueMessages(t *testing.T) {
	t.Parallel()

	t.Run("a call streams estimation, process_starts, log, progress, process_completed and close_stream", func(t *testing.T) {
		t.Parallel()
		srv := gradiotest.New(t, gradiotest.Options{})
		prompt := upload(t, srv, "prompt.wav", promptWAV())
		id := join(t, srv, "sess-a", "Twelve chars", prompt, nil)
		s := openSSE(t, queueData(srv, "sess-a"), nil)
		var seq []string
		var done map[string]any
		for {
			m := s.Msg(t)
			seq = append(seq, m["msg"].(string))
			if m["msg"] != "close_stream" && m["event_id"] != id {
				t.Errorf("message %v carries event_id %v, want %s", m["msg"], m["event_id"], id)
			}
			if m["msg"] == "process_completed" {
				done = m
			}
			if m["msg"] == "close_stream" {
				break
			}
		}
		want := []string{"estimation", "process_starts", "log", "progress", "process_completed", "close_stream"}
		if !slices.Equal(seq, want) {
			t.Fatalf("messages %v, want %v", seq, want)
		}
		s.Ended(t)
		if done["success"] != true {
			t.Fatalf("process_completed %v", done)
		}
		out := done["output"].(map[string]any)
		file := out["data"].([]any)[0].(map[string]any)
		if out["is_generating"] != false || file["orig_name"] != "audio.wav" {
			t.Errorf("output %v", out)
		}
		wantURL := srv.URL + "/gradio_api/file=" + file["path"].(string)
		if file["url"] != wantURL {
			t.Errorf("output url %v, want %s", file["url"], wantURL)
		}
		status, _, wav := get(t, wantURL)
		secs, err := gradiotest.WAVSeconds(wav)
		if status != http.StatusOK || err != nil || secs < 1.199 || secs > 1.201 {
			t.Errorf("output WAV: status %d, %.3f s, %v; want 1.2 s (12 characters)", status, secs, err)
		}
		execs := srv.Executions()
		if len(execs) != 1 || execs[0].EventID != id || execs[0].Outcome != gradiotest.Completed || execs[0].AudioSecs != secs {
			t.Errorf("execution log %+v", execs)
		}
	})

	t.Run("progress and log sent by the running call arrive in order", func(t *testing.T) {
		t.Parallel()
		srv := gradiotest.New(t, gradiotest.Options{Hold: true})
		prompt := upload(t, srv, "prompt.wav", promptWAV())
		join(t, srv, "sess-p", "text", prompt, nil)
		s := openSSE(t, queueData(srv, "sess-p"), nil)
		r := srv.NextStarted(t)
		s.Until(t, "progress")
		r.Progress(2, 5, "Vocoding")
		r.Log("warning", "Prompt is noisy")
		p := s.Msg(t)
		unit := p["progress_data"].([]any)[0].(map[string]any)
		if p["msg"] != "progress" || unit["index"] != 2.0 || unit["length"] != 5.0 || unit["desc"] != "Vocoding" || unit["unit"] != "steps" {
			t.Errorf("progress %v", p)
		}
		l := s.Msg(t)
		if l["msg"] != "log" || l["level"] != "warning" || l["log"] != "Prompt is noisy" || l["title"] != "Warning" {
			t.Errorf("log %v", l)
		}
		r.Finish()
		if m := s.Msg(t); m["msg"] != "process_completed" || m["success"] != true {
			t.Errorf("after finish %v", m)
		}
	})

	t.Run("a failure is process_completed with success false; its message only with show_error or gr.Error", func(t *testing.T) {
		t.Parallel()
		for _, show := range []bool{false, true} {
			srv := gradiotest.New(t, gradiotest.Options{ShowError: show})
			// A path the app never saw: Gradio refuses to read it.
			id := join(t, srv, "sess-e", "text", "/etc/passwd", nil)
			s := openSSE(t, queueData(srv, "sess-e"), nil)
			m := s.Until(t, "process_completed")
			out := m["output"].(map[string]any)
			if m["event_id"] != id || m["success"] != false || m["title"] != "Error" {
				t.Errorf("show_error %v: %v", show, m)
			}
			msg, _ := out["error"].(string)
			if show != strings.Contains(msg, "not uploaded by a user") {
				t.Errorf("show_error %v: error %v", show, out["error"])
			}
			if e := srv.Executions(); len(e) != 1 || e[0].Outcome != gradiotest.Failed {
				t.Errorf("execution log %+v", e)
			}
		}
		srv := gradiotest.New(t, gradiotest.Options{})
		prompt := upload(t, srv, "prompt.wav", promptWAV())
		postJSON(t, srv.URL+"/gradio_api/queue/join", map[string]any{
			"data": []any{"hi", fileData(prompt), "whisper", 1.0}, "fn_index": 0, "session_hash": "sess-g",
		}, nil)
		out := openSSE(t, queueData(srv, "sess-g"), nil).Until(t, "process_completed")["output"].(map[string]any)
		if !strings.Contains(out["error"].(string), "'whisper' is not in the list of choices") || out["visible"] != true {
			t.Errorf("gr.Error output %v", out)
		}
	})

	t.Run("a held call the test fails ends as gr.Error; RunTime makes calls last", func(t *testing.T) {
		t.Parallel()
		srv := gradiotest.New(t, gradiotest.Options{Hold: true})
		prompt := upload(t, srv, "prompt.wav", promptWAV())
		id := join(t, srv, "sess-f", "text", prompt, nil)
		s := openSSE(t, queueData(srv, "sess-f"), nil)
		srv.NextStarted(t).Fail("CUDA out of memory")
		m := s.Until(t, "process_completed")
		out := m["output"].(map[string]any)
		if m["event_id"] != id || m["success"] != false || out["error"] != "CUDA out of memory" || out["title"] != "Error" {
			t.Errorf("completion %v", m)
		}
		if e := srv.Executions(); e[0].Outcome != gradiotest.Failed || e[0].Error != "CUDA out of memory" || e[0].Audio != "" {
			t.Errorf("execution %+v", e[0])
		}

		slow := gradiotest.New(t, gradiotest.Options{RunTime: 30 * time.Millisecond})
		prompt = upload(t, slow, "prompt.wav", promptWAV())
		join(t, slow, "sess-r", "text", prompt, nil)
		openSSE(t, queueData(slow, "sess-r"), nil).Until(t, "close_stream")
		if e := slow.Executions()[0]; e.Ended.Sub(e.Started) < 30*time.Millisecond {
			t.Errorf("call ran %v, want at least RunTime", e.Ended.Sub(e.Started))
		}
	})

	t.Run("a generator sends its first output whole, then diffs, and completes with the whole value", func(t *testing.T) {
		t.Parallel()
		srv := gradiotest.New(t, gradiotest.Options{})
		postJSON(t, srv.URL+"/gradio_api/queue/join", map[string]any{"data": []any{"Alpha Beta"}, "fn_index": 1, "session_hash": "sess-n"}, nil)
		s := openSSE(t, queueData(srv, "sess-n"), nil)
		first := s.Until(t, "process_generating")["output"].(map[string]any)
		second := s.Until(t, "process_generating")["output"].(map[string]any)
		done := s.Until(t, "process_completed")["output"].(map[string]any)
		if first["data"].([]any)[0] != "alpha" || first["is_generating"] != true {
			t.Errorf("first %v", first)
		}
		diff := second["data"].([]any)[0].([]any)[0].([]any)
		if diff[0] != "append" || diff[2] != " beta" {
			t.Errorf("second %v, want an append of \" beta\"", second)
		}
		if done["data"].([]any)[0] != "alpha beta" || done["is_generating"] != false {
			t.Errorf("done %v", done)
		}
	})

	t.Run("one session's stream carries all its events and closes after the last", func(t *testing.T) {
		t.Parallel()
		srv := gradiotest.New(t, gradiotest.Options{Hold: true})
		prompt := upload(t, srv, "prompt.wav", promptWAV())
		first := join(t, srv, "ui", "first", prompt, nil)
		second := join(t, srv, "ui", "second", prompt, nil)
		s := openSSE(t, queueData(srv, "ui"), nil)
		srv.NextStarted(t).Finish()
		if m := s.Until(t, "process_completed"); m["event_id"] != first {
			t.Fatalf("first completion %v", m)
		}
		r := srv.NextStarted(t)
		r.Finish()
		var seq []string
		for {
			m := s.Msg(t)
			seq = append(seq, m["msg"].(string))
			if m["msg"] == "process_completed" && m["event_id"] != second {
				t.Errorf("completion %v, want the second's", m)
			}
			if m["msg"] == "close_stream" {
				break
			}
		}
		if seq[len(seq)-2] != "process_completed" || slices.Contains(seq[:len(seq)-2], "close_stream") {
			t.Errorf("after the first completion: %v", seq)
		}
		s.Ended(t)
	})

	t.Run("a session nobody joined gets unexpected_error session_not_found", func(t *testing.T) {
		t.Parallel()
		srv := gradiotest.New(t, gradiotest.Options{})
		s := openSSE(t, queueData(srv, "nobody"), nil)
		if m := s.Msg(t); m["msg"] != "unexpected_error" || m["session_not_found"] != true {
			t.Errorf("message %v", m)
		}
		s.Ended(t)
	})

	t.Run("bad joins are refused", func(t *testing.T) {
		t.Parallel()
		srv := gradiotest.New(t, gradiotest.Options{})
		for _, c := range []struct {
			body any
			want int
		}{
			{map[string]any{"data": []any{"x"}, "fn_index": 1}, http.StatusBadRequest},
			{map[string]any{"data": []any{"x"}, "session_hash": "s"}, http.StatusBadRequest},
			{map[string]any{"fn_index": 1, "session_hash": "s"}, http.StatusUnprocessableEntity},
			{map[string]any{"data": []any{"x"}, "fn_index": 7, "session_hash": "s"}, http.StatusInternalServerError},
		} {
			if status, out := postJSON(t, srv.URL+"/gradio_api/queue/join", c.body, nil); status != c.want {
				t.Errorf("join %v: %d %v, want %d", c.body, status, out, c.want)
			}
		}
		if e := srv.Executions(); len(e) != 0 {
			t.Errorf("refused joins ran: %+v", e)
		}
	})

	t.Run("the stream is keyed only by session_hash: anyone with it reads the messages", func(t *testing.T) {
		t.Parallel()
		srv := gradiotest.New(t, gradiotest.Options{})
		prompt := upload(t, srv, "prompt.wav", promptWAV())
		id := join(t, srv, "victim", "secret words", prompt, http.Header{"X-User-Id": {"alice"}})
		// Another caller, with other headers, opens the same session.
		s := openSSE(t, queueData(srv, "victim"), http.Header{"X-User-Id": {"mallory"}})
		if m := s.Until(t, "process_completed"); m["event_id"] != id {
			t.Errorf("got %v", m)
		}
		if h := srv.Executions()[0].Header.Get("X-User-Id"); h != "alice" {
			t.Errorf("the app saw X-User-Id %q, want the joining request's", h)
		}
		var readers []string
		for _, r := range srv.Requests() {
			if r.Path == "/gradio_api/queue/data" {
				readers = append(readers, r.Header.Get("X-User-Id"))
			}
		}
		if !slices.Equal(readers, []string{"mallory"}) {
			t.Errorf("queue/data requests from %v, want mallory's", readers)
		}
	})

	t.Run("heartbeats keep a waiting stream alive", func(t *testing.T) {
		t.Parallel()
		srv := gradiotest.New(t, gradiotest.Options{Hold: true, HeartbeatInterval: 5 * time.Millisecond})
		prompt := upload(t, srv, "prompt.wav", promptWAV())
		join(t, srv, "sess-h", "text", prompt, nil)
		s := openSSE(t, queueData(srv, "sess-h"), nil)
		r := srv.NextStarted(t)
		if m := s.Until(t, "heartbeat"); m["event_id"] != nil {
			t.Errorf("heartbeat %v", m)
		}
		r.Finish()
		s.Until(t, "close_stream")
		hb := openSSE(t, srv.URL+"/gradio_api/heartbeat/sess-h", nil)
		if ev := hb.Next(t); ev.Data != "ALIVE" {
			t.Errorf("heartbeat route sent %+v", ev)
		}
	})
}

func TestQueueOrder(t *testing.T) {
	t.Parallel()

	t.Run("with concurrency 1 calls run one at a time in the order they joined", func(t *testing.T) {
		t.Parallel()
		srv := gradiotest.New(t, gradiotest.Options{Hold: true})
		prompt := upload(t, srv, "prompt.wav", promptWAV())
		var ids []string
		var streams []*sseStream
		for _, s := range []string{"s1", "s2", "s3"} {
			ids = append(ids, join(t, srv, s, "call "+s, prompt, nil))
			streams = append(streams, openSSE(t, queueData(srv, s), nil))
		}
		// The first started at once; the third is second in line behind it.
		if m := streams[2].Msg(t); m["msg"] != "estimation" || m["rank"] != 1.0 || m["queue_size"] != 2.0 {
			t.Errorf("third's estimation %v", m)
		}
		for i := range ids {
			r := srv.NextStarted(t)
			if r.EventID != ids[i] {
				t.Fatalf("call %d started %s, want %s", i, r.EventID, ids[i])
			}
			if i == 1 {
				// When the second starts, the third learns it is next, with
				// an eta from the first call's time.
				if m := streams[2].Until(t, "estimation"); m["rank"] != 0.0 || m["queue_size"] != 1.0 || m["rank_eta"] == nil {
					t.Errorf("third's estimation after the second started: %v", m)
				}
			}
			select {
			case other := <-srv.Started():
				t.Fatalf("%s started while %s runs", other.EventID, r.EventID)
			default:
			}
			r.Finish()
			streams[i].Until(t, "close_stream")
		}
		execs := srv.Executions()
		for i, e := range execs {
			if e.EventID != ids[i] || e.Outcome != gradiotest.Completed {
				t.Errorf("execution %d: %+v", i, e)
			}
			if i > 0 && e.Started.Before(execs[i-1].Ended) {
				t.Errorf("execution %d started before %d ended", i, i-1)
			}
		}
	})

	t.Run("Concurrency runs that many calls of a function at once; each function has its own queue", func(t *testing.T) {
		t.Parallel()
		srv := gradiotest.New(t, gradiotest.Options{Hold: true, Concurrency: 2})
		prompt := upload(t, srv, "prompt.wav", promptWAV())
		for _, s := range []string{"c1", "c2", "c3"} {
			join(t, srv, s, "text", prompt, nil)
		}
		postJSON(t, srv.URL+"/gradio_api/queue/join", map[string]any{"data": []any{"a b"}, "fn_index": 1, "session_hash": "c4"}, nil)
		running := map[string]*gradiotest.Running{}
		for range 3 {
			r := srv.NextStarted(t)
			running[r.SessionHash] = r
		}
		if running["c1"] == nil || running["c2"] == nil || running["c4"] == nil {
			t.Fatalf("running %v, want c1 and c2 of /generate_audio and c4 of /normalize_text", running)
		}
		running["c1"].Finish()
		if r := srv.NextStarted(t); r.SessionHash != "c3" {
			t.Errorf("next started %s, want c3", r.SessionHash)
		}
	})
}

func TestCancel(t *testing.T) {
	t.Parallel()

	t.Run("cancelling a running call ends it with an empty process_completed", func(t *testing.T) {
		t.Parallel()
		srv := gradiotest.New(t, gradiotest.Options{Hold: true})
		prompt := upload(t, srv, "prompt.wav", promptWAV())
		id := join(t, srv, "sess-c", "text", prompt, nil)
		s := openSSE(t, queueData(srv, "sess-c"), nil)
		srv.NextStarted(t)
		status, out := postJSON(t, srv.URL+"/gradio_api/cancel", map[string]any{"session_hash": "sess-c", "fn_index": 0, "event_id": id}, nil)
		if status != http.StatusOK || out.(map[string]any)["success"] != true {
			t.Fatalf("cancel: %d %v", status, out)
		}
		m := s.Until(t, "process_completed")
		if m["event_id"] != id || m["success"] != true || len(m["output"].(map[string]any)) != 0 {
			t.Errorf("completion %v", m)
		}
		s.Until(t, "close_stream")
		e := srv.Executions()
		if len(e) != 1 || e[0].Outcome != gradiotest.Cancelled || e[0].Ended.IsZero() || e[0].Audio != "" {
			t.Errorf("execution log %+v", e)
		}
	})

	t.Run("cancelling a waiting call takes it out of the queue", func(t *testing.T) {
		t.Parallel()
		srv := gradiotest.New(t, gradiotest.Options{Hold: true})
		prompt := upload(t, srv, "prompt.wav", promptWAV())
		join(t, srv, "first", "text", prompt, nil)
		id := join(t, srv, "second", "text", prompt, nil)
		third := join(t, srv, "third", "text", prompt, nil)
		r := srv.NextStarted(t)
		postJSON(t, srv.URL+"/gradio_api/cancel", map[string]any{"session_hash": "second", "fn_index": 0, "event_id": id}, nil)
		if m := openSSE(t, queueData(srv, "second"), nil).Until(t, "process_completed"); m["event_id"] != id {
			t.Errorf("completion %v", m)
		}
		r.Finish()
		if next := srv.NextStarted(t); next.EventID != third {
			t.Errorf("after the first, %s started; want the third, %s", next.SessionHash, third)
		}
	})

	t.Run("cancel is keyed by session_hash and fn_index, as in Gradio: any event id cancels the running call", func(t *testing.T) {
		t.Parallel()
		srv := gradiotest.New(t, gradiotest.Options{Hold: true})
		prompt := upload(t, srv, "prompt.wav", promptWAV())
		id := join(t, srv, "victim", "text", prompt, nil)
		next := join(t, srv, "bystander", "text", prompt, nil)
		srv.NextStarted(t)
		// Someone else names the session and function with a made-up event id.
		postJSON(t, srv.URL+"/gradio_api/cancel", map[string]any{"session_hash": "victim", "fn_index": 0, "event_id": "made-up"}, nil)
		if r := srv.NextStarted(t); r.EventID != next {
			t.Fatalf("%s started, want the bystander", r.SessionHash)
		}
		if e := srv.Executions(); e[0].EventID != id || e[0].Outcome != gradiotest.Cancelled {
			t.Errorf("victim's execution %+v", e[0])
		}
	})

	t.Run("a disconnected stream takes its session's waiting calls out of the queue", func(t *testing.T) {
		t.Parallel()
		srv := gradiotest.New(t, gradiotest.Options{Hold: true})
		prompt := upload(t, srv, "prompt.wav", promptWAV())
		join(t, srv, "busy", "text", prompt, nil)
		join(t, srv, "leaver", "text", prompt, nil)
		stay := join(t, srv, "stayer", "text", prompt, nil)
		r := srv.NextStarted(t)
		s := openSSE(t, queueData(srv, "leaver"), nil)
		s.Msg(t)
		s.Close()
		// Once the server sees the disconnect, the stayer is next in line.
		other := openSSE(t, queueData(srv, "stayer"), nil)
		other.Until(t, "estimation")
		srv.WaitQueued(t, 1)
		r.Finish()
		if next := srv.NextStarted(t); next.EventID != stay {
			t.Errorf("%s started, want the stayer", next.SessionHash)
		}
	})
}
