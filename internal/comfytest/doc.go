// Package comfytest is a ComfyUI emulator for tests: an HTTP and
// websocket server on 127.0.0.1 that speaks ComfyUI's protocol as its
// server.py, execution.py, main.py (prompt_worker, the progress hook),
// comfy_execution/ and app/user_manager.py define it, without a GPU.
//
//	s := comfytest.New(t, comfytest.Options{Hold: true})
//	ws := comfytest.Dial(t, s.URL+"/ws?clientId=alice", nil)
//	// POST s.URL+"/prompt" {"prompt": comfytest.DDColorPrompt(...), "client_id": "alice"}
//	s.WaitHeld(ctx, promptID) // running, its first progress sent
//	s.Release(promptID)       // or s.Fail(promptID, "CUDA out of memory")
//	frames := ws.Until(comfytest.Done(promptID))
//	e, _ := s.WaitDone(ctx, promptID) // e.Start, e.End: its GPU time
//	s.Order()                         // prompt IDs in the order they started
//
// Tests read what the emulator saw with Executions, Order, Pending,
// Requests (method, path and Comfy-User of every request) and Users,
// and its files under Dir("input"), Dir("output") and Dir("temp").
// PNG and WAV make inputs to upload; DDColorPrompt and SonicPrompt are
// workflows of the known nodes; NodeClass adds others (without Run, a
// class passes its inputs through).
//
// What it does as ComfyUI does:
//
//   - POST /prompt (and /api/prompt) reads the body as JSON whatever its
//     Content-Type; "number", "front" and "prompt_id" as server.py reads
//     them; the graph is validated against the known node classes with
//     validate_prompt's rules and error shapes (invalid_prompt,
//     prompt_no_outputs, required_input_missing, bad_linked_input,
//     return_type_mismatch, invalid_input_type, value_smaller_than_min,
//     value_bigger_than_max, value_not_in_list, LoadImage's and
//     LoadAudio's custom_validation_failed, prompt_outputs_failed_validation);
//     the answer is {prompt_id, number, node_errors} or 400 {error, node_errors}.
//   - One global queue ordered by (number, prompt_id), a heap as
//     PromptQueue's, executed by one worker; a prompt starts once its
//     POST /prompt answer is written, as ComfyUI's event loop writes the
//     answer before the worker's first message, and its history entry
//     is written before its last message is sent, as the worker's
//     task_done runs while the loop is still to send; GET /queue shows
//     [number, prompt_id, prompt, extra_data, outputs_to_execute] tuples;
//     POST /queue {clear} / {delete}; GET /history (max_items, offset),
//     /history/{id}, POST /history {clear} / {delete}; history entries
//     carry prompt, outputs, meta and status {status_str, completed,
//     messages}; extra_data's sensitive keys (the comfy.org API key and
//     token) are dropped; GET /api/jobs and /api/jobs/{id} as
//     comfy_execution/jobs.py normalizes them.
//   - POST /interrupt: with {"prompt_id"} only that prompt if it is
//     running, otherwise whatever runs; an interrupt when nothing runs is
//     lost, as the real flag is reset when the next prompt starts.
//   - The websocket: "status" {status, sid} on connect ("executing"
//     {node} too when the client's prompt is running), the feature_flags
//     reply to a first feature_flags message, then per prompt
//     execution_start, execution_cached, per node executing, progress,
//     progress_state and binary previews, executed (nodes with a ui
//     output), then execution_success / execution_error /
//     execution_interrupted, the "status" broadcast of task_done and
//     executing {node: null}. Messages of a prompt go only to the socket
//     of its client_id, and only when it has one — except progress,
//     progress_state and previews, which, as in the real progress hook,
//     go to every socket when the prompt has no client_id. "status" goes
//     to all. All messages leave through one ordered queue (publish_loop).
//     A socket reusing a clientId takes over the sid, and when the older
//     socket closes it removes the sid, cutting the newer one off, as in
//     server.py.
//   - Preview frames are type 1 (PREVIEW_IMAGE) with the 8-byte header
//     (event type, image type 1 = JPEG, big-endian) for clients that did
//     not announce supports_preview_metadata, and type 4 with metadata
//     for those that did.
//   - The classic cache: a node whose class, inputs, upstream nodes and
//     (for LoadImage and LoadAudio) file content are unchanged since it
//     last ran is reported in execution_cached and not run again; its
//     ui output is resent in "executed". /free {free_memory} empties it.
//   - SaveImage writes real PNGs into output/, with the prompt and
//     extra_pnginfo (the workflow) as tEXt chunks, filename_prefix's
//     directory as subfolder and ComfyUI's counter (prefix_00001_.png);
//     PreviewImage into temp/ (ComfyUI_temp_xxxxx_00001_.png).
//     POST /upload/image (image, subfolder, type, overwrite; " (1)"
//     renaming, duplicate detection) and GET /view (filename, subfolder,
//     type, "[output]" annotations, 400 for "..", 403 for a subfolder
//     outside its directory) as server.py.
//   - Routes are served bare and under /api; /internal/* only bare.
//     /object_info and /object_info/{class} in node_info's shape ({} for
//     an unknown class, which the SDK relies on).
//   - --multi-user (Options.MultiUser): Comfy-User picks the user for
//     /settings and /userdata; an unknown user gets 401 on /settings and
//     500 on /userdata; GET/POST /users as the user manager.
//
// Known deviations:
//
//   - No model runs. DDColor_Colorize sepia-tints its input; SONIC_Inference
//     makes at most 8 tinted frames of the face; VHS_VideoCombine writes
//     an animated GIF even when the format is video/h264-mp4 (the file is
//     then named .mp4). The Sonic node classes keep only the inputs
//     tollgate binds (image, audio, duration, min_resolution,
//     expand_ratio; inference_steps, dynamic_scale, motion_scale, fps,
//     seed) with limits of the emulator's choosing; the real nodes also
//     take model, clip_vision and vae links.
//   - Execution order is a depth-first walk from each output node in ID
//     order, not ExecutionList's staging; there are no subgraphs, lazy
//     inputs or async nodes. Errors raised by nodes have exception_type
//     RuntimeError and an empty traceback.
//   - A link to a missing node or slot is reported as
//     exception_during_inner_validation without a Python traceback.
//   - Bodies that are not JSON get 400 with a text message (the real
//     server answers 500), except /interrupt which treats them as {}.
//   - GET /view ignores preview= and channel=.
//   - Options.Concurrency > 1 and Options.MaxQueue are test conveniences
//     ComfyUI does not have. Hold, Duration, Release and Fail control how
//     long a prompt runs: the wait happens right after the first
//     progress message of the first node that reports progress (or of the
//     last node when none does; or before execution_success when every
//     node was cached, where real ComfyUI would finish at once).
//   - execution_cached lists the cached nodes among those the outputs
//     need, not among every node of the prompt.
//   - Not emulated: /upload/mask, /view_metadata, /userdata/{file}/move,
//     /v2/userdata, /workflow_templates, ComfyUI-Manager's routes (404,
//     as on a ComfyUI without the Manager).
//   - A socket that does not take a message within 5 seconds misses it
//     (the real publish loop waits as long as it takes).
//   - /system_stats, /embeddings, /extensions, /models and /internal/*
//     answer fixed, minimal content; GET / is a small HTML page standing
//     in for the frontend. No origin check, CORS or compression middleware.
package comfytest
