// Package gradiotest emulates a Gradio 6 app server (the server that
// @gradio/client 2.x speaks to, protocol "sse_v3", API prefix /gradio_api)
// for tests: a CosyVoice3-like voice-cloning app with two endpoints.
//
//   - /generate_audio (fn_index 0): text (Textbox), prompt_audio (Audio,
//     FileData), mode (Radio: zero-shot, cross-lingual, instruct) and speed
//     (Slider 0.5–2.0) in; an Audio FileData out, a real 16-bit mono PCM WAV
//     of a sine tone lasting len(text runes) × SecondsPerChar / speed.
//   - /normalize_text (fn_index 1): a generator that yields the text's words
//     one by one into a Textbox, so process_generating (with sse_v3 diffs)
//     is exercised.
//
// With Options.App set to AppCosyVoiceWebUI it is shaped like CosyVoice's
// own webui.py instead (as served for Fun-CosyVoice3-0.5B): its components
// with their Chinese labels and defaults, and its functions in webui.py's
// order: /generate_seed (fn 0), /generate_audio (fn 1: tts_text,
// mode_checkbox_group, sft_dropdown, prompt_text, prompt_wav_upload,
// prompt_wav_record, instruct_text, seed, stream, speed; a generator that
// yields one WAV as process_generating, then completes with it) and
// /change_instruction (fn 2). A mode whose inputs are missing logs the
// webui's gr.Warning and returns a second of silence, as webui.py does;
// the speech is a WAV of len(tts_text runes) × SecondsPerChar / speed.
// The streaming Audio output is sent whole (no /stream/ segments), and the
// page's plain form drives the demo app only.
//
// New starts it on 127.0.0.1 with httptest and closes it with tb.Cleanup.
// The routes, message shapes and queue semantics follow Gradio's
// gradio/routes.py, route_utils.py, queueing.py, server_messages.py,
// data_classes.py and processing_utils.py:
//
//   - GET /: a page embedding window.gradio_config (root computed for
//     route "/") and window.gradio_api_info, as Gradio's index.html does.
//   - GET /config: the Blocks config (components, dependencies, layout,
//     page, protocol, api_prefix) with "root" computed as get_root_url does:
//     X-Forwarded-Host (then X-Gradio-Server, then the request URL minus the
//     route), X-Forwarded-Proto https, and the root_path (Options.RootPath,
//     else the mount path) replacing the path.
//   - GET /gradio_api/info: named_endpoints with label, parameter_name,
//     parameter_has_default, parameter_default, type (JSON schema),
//     python_type, component and example_input.
//   - POST /gradio_api/upload: multipart "files"; each file is stored as
//     <temp dir>/<sha256(seed, content)>/<clean name> and its absolute path
//     returned. Identical content from two callers lands on the same path,
//     as in Gradio.
//   - GET|HEAD /gradio_api/file={path}: serves any file under the
//     server's temp dir (uploads and outputs alike, whoever created them)
//     and answers 403 {"detail": "File not allowed: …"} otherwise — the
//     real allowed-paths logic, which checks where a file is, not who owns
//     it.
//   - POST /gradio_api/queue/join, GET /gradio_api/queue/data?session_hash=,
//     POST /gradio_api/cancel, POST /gradio_api/reset, POST
//     /gradio_api/call/{api_name}, GET /gradio_api/call/{api_name}/{event_id},
//     GET /gradio_api/heartbeat/{session_hash}, GET /gradio_api/app_id and
//     POST /gradio_api/run/{api_name} (refused with 404, as with api_open
//     false). Event streams are keyed only by session_hash: whoever knows
//     one reads its messages and can cancel its calls, as in Gradio.
//   - The queue: one FIFO per function (each function is its own
//     concurrency group), Options.Concurrency events of a group at a time
//     (Gradio's default_concurrency_limit, 1 by default); estimation on
//     join and to every waiting event when one starts, process_starts,
//     log, progress, process_generating, process_completed, heartbeat and
//     close_stream when the session has no pending event left. Cancel
//     cancels the running call of that session and fn_index, drops the
//     event from the queue and sends process_completed {output: {},
//     success: true}. A queue/data stream that disconnects removes its
//     session's waiting events and silences its running ones.
//
// Tests control and observe it without sleeping:
//   - Options.Hold: each call, once started (after process_starts and, for
//     /generate_audio, its log and first progress message; for
//     /normalize_text, its first output), waits until the test takes it
//     from Started or NextStarted and calls Finish or Fail; Progress and
//     Log send messages meanwhile. Options.RunTime instead gives every call a
//     fixed duration.
//   - WaitQueued waits until a number of calls wait in the queues.
//   - Executions is the execution log: every call started, with its
//     session, data, the headers of the request that queued it, enqueue,
//     start and end times, outcome and the seconds of audio it produced.
//   - Uploads and Requests record the uploads and every request received,
//     headers included, so a test can tell what reached the app.
//   - SineWAV makes a prompt WAV; WAVSeconds measures a returned one.
//
// Known deviations from Gradio:
//   - Only these two apps; no gr.Blocks, no custom apps, no pages besides "".
//   - The page at / is not Gradio's Svelte frontend: a plain form whose
//     script uses the same routes (upload, queue/join, queue/data, file=)
//     from config.root as @gradio/client resolves it in a browser; no
//     /assets, /theme.css, /manifest.json or /static.
//   - Component props carry the fields clients read (name, label, value,
//     choices, minimum, maximum, step, …), not every prop Gradio emits;
//     /info has no code_snippets; config has no theme CSS.
//   - Progress messages are sent when the function reports progress, not
//     coalesced on Gradio's 10 ms tick; estimations use Gradio's formula but
//     no periodic notify_clients loop (status_update_rate "auto" only).
//   - No batching, no streaming (connection "stream") functions, no session
//     state (ConnectHeartbeat only adds a gr.State to the config), no caching, no validators, no auth (/login), no upload_progress, no
//     /proxy=, no component_server, no gr.Request; the queue has no max_size
//     and sessions are not evicted (Gradio keeps an LRU of 2000).
//   - An http(s) URL given as a file input is refused instead of downloaded.
//   - POST /gradio_api/call/v2/{api_name} (named arguments) and the MCP
//     routes are not emulated.
//   - The heartbeat route only sends "data: ALIVE" (there are no unload
//     events or session state to clear when it disconnects).
//   - Byte ranges of /file= are served by net/http (multi-range works too).
//   - Errors that FastAPI would render (422 validation, 500) carry a
//     simplified detail.
//   - The /call stream's data is compact JSON; Gradio's json.dumps puts a
//     space after "," and ":" and escapes non-ASCII text. The queue/data
//     stream is compact as with Gradio's orjson.
//   - Every number in the data is a JSON number as Go decodes it (1.0 and
//     1 are alike); Gradio keeps Python's ints and floats apart.
//   - Quirks kept on purpose, because they are Gradio's: behind
//     X-Forwarded-Host only /config keeps a mount path (other routes use
//     root_path alone); a cancel names a session and fn_index, so it
//     cancels that session's running call whatever event_id it carries;
//     files are shared by everyone who knows their path.
package gradiotest
