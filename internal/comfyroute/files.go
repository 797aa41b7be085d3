package comfyroute

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path"
	"strings"
	"sync"

	"github.com/tollgate/tollgate/internal/comfyui"
	"github.com/tollgate/tollgate/internal/tollgate"
)

// fileIndex remembers, per user, the files their prompts produced (from
// "executed" messages and history entries) and the ComfyUI each is on:
// temp files (previews) are not under the user's subfolder, so only this
// index makes them theirs. It lives in this process, up to
// maxFilesPerUser per user, the oldest forgotten first.
type fileIndex struct {
	mu    sync.Mutex
	users map[string]*userFiles
}

const maxFilesPerUser = 4096

type userFiles struct {
	where map[string]string // type/subfolder/filename → upstream
	order []string
}

func newFileIndex() *fileIndex { return &fileIndex{users: map[string]*userFiles{}} }

func fileKey(typ, subfolder, name string) string { return typ + "\x00" + subfolder + "\x00" + name }

// addOutputs records the files of one node's ui output ({images: [{filename,
// subfolder, type}], …}).
func (fi *fileIndex) addOutputs(o tollgate.Owner, upstream string, out map[string]any) {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	own := comfyui.UserFolder(o)
	u := fi.users[ownerKey(o)]
	if u == nil {
		u = &userFiles{where: map[string]string{}}
		fi.users[ownerKey(o)] = u
	}
	for _, items := range out {
		list, _ := items.([]any)
		for _, it := range list {
			f, _ := it.(map[string]any)
			name, _ := f["filename"].(string)
			if name == "" {
				continue
			}
			sub, _ := f["subfolder"].(string)
			typ, _ := f["type"].(string)
			sub = strings.Trim(path.Clean("/"+strings.ReplaceAll(sub, `\`, "/")), "/")
			if !claimable(own, typ, sub, name) {
				continue
			}
			k := fileKey(typ, sub, name)
			if _, ok := u.where[k]; !ok {
				u.order = append(u.order, k)
			}
			u.where[k] = upstream
			if len(u.order) > maxFilesPerUser {
				delete(u.where, u.order[0])
				u.order = u.order[1:]
			}
		}
	}
}

// claimable reports whether a file a prompt's output names may become
// its owner's: what a node reports is only what the node says (a custom
// node may echo any name), so never a file in another user's folder,
// nor a name with a path in it.
func claimable(own, typ, sub, name string) bool {
	if typ != "output" && typ != "input" && typ != "temp" || strings.ContainsAny(name, "/\\") || strings.Contains(name, "..") {
		return false
	}
	root := strings.Split(own, "/")[0]
	lower := strings.ToLower(sub)
	return inFolder(own, sub) || lower != root && !strings.HasPrefix(lower, root+"/")
}

// lookup returns the upstream holding a file the user's prompts made.
func (fi *fileIndex) lookup(o tollgate.Owner, typ, subfolder, name string) (string, bool) {
	fi.mu.Lock()
	defer fi.mu.Unlock()
	u := fi.users[ownerKey(o)]
	if u == nil {
		return "", false
	}
	up, ok := u.where[fileKey(typ, subfolder, name)]
	return up, ok
}

// inFolder reports whether subfolder is the user's folder or under it.
func inFolder(folder, subfolder string) bool {
	return subfolder == folder || strings.HasPrefix(subfolder, folder+"/")
}

// ownSubfolder puts an upload's subfolder under the user's folder.
func ownSubfolder(folder, sub string) string {
	clean := strings.TrimPrefix(path.Clean("/"+strings.ReplaceAll(sub, `\`, "/")), "/")
	if clean == "" || clean == folder {
		return folder
	}
	if strings.HasPrefix(clean, folder+"/") {
		return clean
	}
	return folder + "/" + clean
}

// plainFileName reports whether a form part's file name, as the form
// gives it (Go's FileName keeps only its base), names no path.
func plainFileName(part *multipart.Part) bool {
	_, params, err := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
	name := params["filename"]
	return err == nil && name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\\:\x00")
}

// fileRef is a file as /view and /upload/mask name it.
type fileRef struct {
	name, subfolder, typ string
}

// checkFile returns the file a request names when it is the caller's:
// under their subfolder (uploads and outputs), or a file one of their
// prompts produced (previews in temp). Anything else is not found.
func (rt *Route) checkFile(o tollgate.Owner, name, subfolder, typ string) (fileRef, string, error) {
	if n, t := comfyui.SplitAnnotation(name); t != "" {
		typ, name = t, n // "x.png [output]", as folder_paths.annotated_filepath
	}
	if name == "" || name[0] == '/' || strings.Contains(name, "..") || strings.Contains(subfolder, "..") {
		return fileRef{}, "", tollgate.Errorf(tollgate.EInvalid, "a file name without .. or a leading /")
	}
	typ = cmpOr(typ, "output")
	if typ != "output" && typ != "input" && typ != "temp" {
		return fileRef{}, "", tollgate.Errorf(tollgate.EInvalid, "type: want output, input or temp")
	}
	f := fileRef{name: path.Base(name), subfolder: strings.Trim(path.Clean("/"+subfolder), "/"), typ: typ}
	up, made := rt.files.lookup(o, f.typ, f.subfolder, f.name)
	if !made && !inFolder(comfyui.UserFolder(o), f.subfolder) {
		return fileRef{}, "", tollgate.Errorf(tollgate.ENotFound, "no such file of yours")
	}
	return f, cmpOr(up, rt.model.Upstreams[0]), nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// view serves GET /view for the caller's own files, from the ComfyUI
// that holds them.
func (rt *Route) view(w http.ResponseWriter, r *http.Request, p *tollgate.Principal) error {
	q := r.URL.Query()
	f, upstream, err := rt.checkFile(owner(p), q.Get("filename"), q.Get("subfolder"), q.Get("type"))
	if err != nil {
		return err
	}
	target, err := url.Parse(upstream)
	if err != nil {
		return fmt.Errorf("upstream url: %w", err)
	}
	out := url.Values{"filename": {f.name}, "subfolder": {f.subfolder}, "type": {f.typ}}
	for _, k := range []string{"preview", "channel"} {
		if v := q.Get(k); v != "" {
			out.Set(k, v)
		}
	}
	user := r.Header.Get("Comfy-User")
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.URL.Path = strings.TrimSuffix(target.Path, "/") + "/view"
			pr.Out.URL.RawPath = ""
			pr.Out.URL.RawQuery = out.Encode()
			pr.Out.Header = http.Header{"Comfy-User": {user}}
			for _, k := range []string{"Range", "If-Range", "If-None-Match", "If-Modified-Since", "Accept"} {
				if v := r.Header.Get(k); v != "" {
					pr.Out.Header.Set(k, v)
				}
			}
		},
		Transport: rt.client.Transport,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) {
			comfyError(w, http.StatusBadGateway, "upstream_error", "ComfyUI did not answer", nil)
		},
	}
	rp.ServeHTTP(w, r)
	return nil
}

// upload serves POST /upload/image and /upload/mask: the file goes into
// the caller's subfolder on every upstream of the route (any of them may
// run the prompt that loads it); a mask's original_ref must be the
// caller's own file.
func (rt *Route) upload(w http.ResponseWriter, r *http.Request, p *tollgate.Principal, mask bool) error {
	o := owner(p)
	folder := comfyui.UserFolder(o)
	r.Body = http.MaxBytesReader(nil, r.Body, rt.maxBody)
	mr, err := r.MultipartReader()
	if err != nil {
		return tollgate.Errorf(tollgate.EInvalid, "want a multipart/form-data body")
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	sawSub := false
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return tollgate.Errorf(tollgate.EInvalid, "the multipart body is malformed or larger than the route's max_body")
		}
		name := part.FormName()
		if part.FileName() != "" {
			// ComfyUI joins the form's file name to the subfolder and only
			// checks that the result stays in input (or output, temp):
			// "../u<other>/x.png" would land in another user's folder.
			if !plainFileName(part) {
				return tollgate.Errorf(tollgate.EInvalid, "the uploaded file's name must be a plain name, without a path")
			}
			fw, err := mw.CreatePart(part.Header)
			if err != nil {
				return fmt.Errorf("upload form: %w", err)
			}
			if _, err := io.Copy(fw, part); err != nil {
				return tollgate.Errorf(tollgate.EInvalid, "the upload broke off or is larger than the route's max_body")
			}
			continue
		}
		v, err := io.ReadAll(io.LimitReader(part, 1<<20))
		if err != nil {
			return tollgate.Errorf(tollgate.EInvalid, "the multipart body is malformed")
		}
		val := string(v)
		switch name {
		case "subfolder":
			val, sawSub = ownSubfolder(folder, val), true
		case "original_ref":
			var ref struct {
				Filename  string `json:"filename"`
				Subfolder string `json:"subfolder"`
				Type      string `json:"type"`
			}
			if json.Unmarshal(v, &ref) != nil {
				return tollgate.Errorf(tollgate.EInvalid, "original_ref: want JSON")
			}
			f, _, err := rt.checkFile(o, ref.Filename, ref.Subfolder, cmpOr(ref.Type, "input"))
			if err != nil {
				return err
			}
			b, _ := json.Marshal(map[string]string{"filename": f.name, "subfolder": f.subfolder, "type": f.typ})
			val = string(b)
		}
		if err := mw.WriteField(name, val); err != nil {
			return fmt.Errorf("upload form: %w", err)
		}
	}
	if !sawSub {
		_ = mw.WriteField("subfolder", folder)
	}
	if err := mw.Close(); err != nil {
		return fmt.Errorf("upload form: %w", err)
	}
	pathName := "/upload/image"
	if mask {
		pathName = "/upload/mask"
	}
	var first *http.Response
	var firstBody []byte
	for i, up := range rt.model.Upstreams {
		req, err := http.NewRequestWithContext(r.Context(), http.MethodPost, strings.TrimSuffix(up, "/")+pathName, bytes.NewReader(body.Bytes()))
		if err != nil {
			return fmt.Errorf("upload request: %w", err)
		}
		req.Header.Set("Content-Type", mw.FormDataContentType())
		req.Header.Set("Comfy-User", r.Header.Get("Comfy-User"))
		resp, err := rt.client.Do(req)
		if err != nil {
			return tollgate.Errorf(tollgate.EUpstream, "ComfyUI did not take the upload")
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if i == 0 {
			first, firstBody = resp, b
		} else if resp.StatusCode != first.StatusCode || !bytes.Equal(b, firstBody) {
			rt.log.Warn("comfyui route: upstreams answered an upload differently", "route", rt.cfg.Name, "upstream", up, "status", resp.StatusCode)
		}
	}
	w.Header().Set("Content-Type", cmpOr(first.Header.Get("Content-Type"), "application/json"))
	w.WriteHeader(first.StatusCode)
	_, _ = w.Write(firstBody)
	return nil
}
