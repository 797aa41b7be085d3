package gradiotest

import (
	"encoding/json"
	"html/template"
	"net/http"
)

// parsePage parses the app's UI: not Gradio's Svelte frontend but a plain
// page that embeds window.gradio_config and window.gradio_api_info as
// Gradio's index.html does and drives the same routes the frontend uses
// (upload, queue/join, queue/data, file=) from config.root, so a browser
// can use the app through a proxy.
func parsePage() *template.Template {
	return template.Must(template.New("page").Parse(pageHTML))
}

const pageHTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>CosyVoice3</title>
<script>window.gradio_config = {{.Config}}; window.gradio_api_info = {{.Info}};</script>
</head>
<body>
<form id="form">
<label>Text to synthesize <textarea id="text"></textarea></label>
<label>Prompt audio <input type="file" id="prompt" accept="audio/*"></label>
<label>Inference mode <select id="mode">{{range .Modes}}<option>{{.}}</option>{{end}}</select></label>
<label>Speed <input type="range" id="speed" min="0.5" max="2" step="0.1" value="1"></label>
<button id="generate" type="submit">Generate audio</button>
</form>
<p id="status"></p>
<audio id="output" controls></audio>
<script type="module">
const config = window.gradio_config;
// As @gradio/client's resolve_config_root: a same-host root takes the
// browser's origin and keeps its path.
const rootURL = new URL(config.root, location.href);
if (rootURL.hostname === location.hostname) {
  rootURL.protocol = location.protocol;
  rootURL.host = location.host;
}
const api = rootURL.toString().replace(/\/$/, "") + config.api_prefix;
const session = Math.random().toString(36).substring(2);
const $ = (id) => document.getElementById(id);
$("form").onsubmit = async (e) => {
  e.preventDefault();
  $("status").textContent = "uploading";
  const body = new FormData();
  body.append("files", $("prompt").files[0]);
  const up = await fetch(api + "/upload", { method: "POST", body });
  if (!up.ok) { $("status").textContent = "upload failed: " + up.status; return; }
  const [path] = await up.json();
  const data = [$("text").value, { path, meta: { _type: "gradio.FileData" } }, $("mode").value, Number($("speed").value)];
  const join = await fetch(api + "/queue/join", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ data, event_data: null, fn_index: 0, trigger_id: 5, session_hash: session }),
  });
  if (!join.ok) { $("status").textContent = "join failed: " + join.status; return; }
  const stream = new EventSource(api + "/queue/data?session_hash=" + session);
  stream.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.msg === "process_completed") {
      if (msg.success) $("output").src = msg.output.data[0].url;
      $("status").textContent = msg.success ? "complete" : "error: " + (msg.output.error ?? "");
    } else if (msg.msg === "close_stream" || msg.msg === "unexpected_error") {
      stream.close();
    } else {
      $("status").textContent = msg.msg;
    }
  };
};
</script>
</body>
</html>
`

// handleIndex is GET /: the page with the config its root sees.
func (s *Server) handleIndex(w http.ResponseWriter, r *http.Request) {
	config := s.config(r, "/")
	config["current_page"] = ""
	config["deep_link_state"] = "none"
	c, err := json.Marshal(config)
	if err != nil {
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
		return
	}
	i, err := json.Marshal(s.info())
	if err != nil {
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	s.page.Execute(w, map[string]any{
		"Config": template.JS(c), "Info": template.JS(i), "Modes": appModes(),
	})
}
