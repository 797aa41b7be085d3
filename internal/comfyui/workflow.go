package comfyui

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/tollgate/tollgate/internal/config"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// Workflow is an API-format ComfyUI workflow: node id → {class_type,
// inputs}.
type Workflow map[string]any

// LoadWorkflow reads an API-format workflow file and checks that every
// input of m is bound to a field of a node it has.
func LoadWorkflow(m *config.JobModel) (Workflow, error) {
	b, err := os.ReadFile(m.Workflow)
	if err != nil {
		return nil, fmt.Errorf("read workflow: %w", err)
	}
	var w Workflow
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("workflow %s is not API-format JSON (export it with \"Save (API)\"): %w", m.Workflow, err)
	}
	for id := range w {
		if _, ok := w.node(id); !ok {
			return nil, fmt.Errorf("workflow %s: node %q has no class_type and inputs (is it the API format?)", m.Workflow, id)
		}
	}
	names := make([]string, 0, len(m.Inputs))
	for name := range m.Inputs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		in := m.Inputs[name]
		if _, ok := w.node(in.Node); !ok {
			return nil, fmt.Errorf("inputs.%s: the workflow has no node %q", name, in.Node)
		}
	}
	return w, nil
}

// node returns a node's inputs object and whether the node is well formed.
func (w Workflow) node(id string) (map[string]any, bool) {
	n, ok := w[id].(map[string]any)
	if !ok {
		return nil, false
	}
	if _, ok := n["class_type"].(string); !ok {
		return nil, false
	}
	inputs, ok := n["inputs"].(map[string]any)
	if !ok {
		inputs = map[string]any{}
		n["inputs"] = inputs
	}
	return inputs, true
}

// ClassOf returns a node's class_type, "" when there is none.
func (w Workflow) ClassOf(id string) string {
	n, _ := w[id].(map[string]any)
	c, _ := n["class_type"].(string)
	return c
}

// clone copies the workflow deeply, so a job's bindings never touch the
// model's copy.
func (w Workflow) clone() Workflow {
	b, _ := json.Marshal(w)
	var out Workflow
	_ = json.Unmarshal(b, &out)
	return out
}

// UserFolder is the subfolder, under ComfyUI's input and output
// directories, that holds one user's files: a hash of tenant and user, so
// no id can name a path or another user's folder.
func UserFolder(o tollgate.Owner) string {
	sum := sha256.Sum256([]byte(o.TenantID + "\x00" + o.UserID))
	return "tollgate/u" + hex.EncodeToString(sum[:10])
}

// PrefixOutputs puts every save node's filename_prefix under folder, so a
// user's outputs land in their own subfolder.
func (w Workflow) PrefixOutputs(folder string) {
	for id := range w {
		inputs, ok := w.node(id)
		if !ok {
			continue
		}
		if p, ok := inputs["filename_prefix"].(string); ok {
			base := path.Base(strings.ReplaceAll(p, `\`, "/"))
			if base == "." || base == "/" || base == ".." || base == "" {
				base = "ComfyUI"
			}
			inputs["filename_prefix"] = folder + "/" + base
		}
	}
}

// decodeDataURI returns a data: URI's bytes and sniffed content type.
func decodeDataURI(s string) ([]byte, string, error) {
	rest, ok := strings.CutPrefix(s, "data:")
	if !ok {
		return nil, "", fmt.Errorf("want a data: URI")
	}
	meta, payload, ok := strings.Cut(rest, ",")
	if !ok || !strings.HasSuffix(meta, ";base64") {
		return nil, "", fmt.Errorf("want a base64 data: URI")
	}
	data, err := base64.StdEncoding.DecodeString(payload)
	if err != nil {
		return nil, "", fmt.Errorf("the data: URI is not valid base64")
	}
	return data, http.DetectContentType(data), nil
}

// extension is a file name extension ComfyUI's loaders accept for a
// content type.
func extension(contentType string) string {
	switch strings.SplitN(contentType, ";", 2)[0] {
	case "image/png":
		return ".png"
	case "image/jpeg":
		return ".jpg"
	case "image/gif":
		return ".gif"
	case "image/webp":
		return ".webp"
	case "audio/wave", "audio/wav", "audio/x-wav":
		return ".wav"
	case "audio/mpeg":
		return ".mp3"
	case "application/ogg", "audio/ogg":
		return ".ogg"
	case "audio/aiff":
		return ".aiff"
	case "video/mp4":
		return ".mp4"
	case "video/webm":
		return ".webm"
	}
	return ".bin"
}
