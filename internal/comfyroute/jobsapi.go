package comfyroute

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// jobStatuses are ComfyUI's job statuses (comfy_execution/jobs.py).
var jobStatuses = []string{"pending", "in_progress", "completed", "failed"}

// getJobs is GET /api/jobs and /api/jobs/{id} over the caller's own
// prompts, with ComfyUI's filters, sorting and pages.
func (rt *Route) getJobs(w http.ResponseWriter, r *http.Request, p *tollgate.Principal, id string) error {
	o := owner(p)
	if id != "" {
		j, err := rt.jobs.Job(r.Context(), o, id)
		if err != nil || j.Model != rt.cfg.Name || rt.hidden.hidden(o, j) {
			return writeJSON(w, http.StatusNotFound, map[string]any{"error": "Job not found"})
		}
		if job := rt.comfyJob(j, true); job != nil {
			return writeJSON(w, http.StatusOK, job)
		}
		return writeJSON(w, http.StatusNotFound, map[string]any{"error": "Job not found"})
	}
	q := r.URL.Query()
	filter := jobStatuses
	if v := q.Get("status"); v != "" {
		filter = nil
		var invalid []string
		for _, st := range strings.Split(v, ",") {
			st = strings.ToLower(strings.TrimSpace(st))
			if st != "" && !slices.Contains(jobStatuses, st) {
				invalid = append(invalid, st)
			}
			filter = append(filter, st)
		}
		if len(invalid) > 0 {
			return writeJSON(w, http.StatusBadRequest, map[string]any{"error": fmt.Sprintf("Invalid status value(s): %s. Valid values: %s",
				strings.Join(invalid, ", "), strings.Join(jobStatuses, ", "))})
		}
	}
	sortBy, order := cmpOr(strings.ToLower(q.Get("sort_by")), "created_at"), cmpOr(strings.ToLower(q.Get("sort_order")), "desc")
	if sortBy != "created_at" && sortBy != "execution_duration" {
		return writeJSON(w, http.StatusBadRequest, map[string]any{"error": "sort_by must be 'created_at' or 'execution_duration'"})
	}
	if order != "asc" && order != "desc" {
		return writeJSON(w, http.StatusBadRequest, map[string]any{"error": "sort_order must be 'asc' or 'desc'"})
	}
	var limit any
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil {
			return writeJSON(w, http.StatusBadRequest, map[string]any{"error": "limit must be an integer"})
		}
		if n <= 0 {
			return writeJSON(w, http.StatusBadRequest, map[string]any{"error": "limit must be a positive integer"})
		}
		limit = n
	}
	offset := 0
	if q.Has("offset") {
		n, err := strconv.Atoi(q.Get("offset"))
		if err != nil {
			return writeJSON(w, http.StatusBadRequest, map[string]any{"error": "offset must be an integer"})
		}
		offset = max(n, 0)
	}
	all, err := rt.jobs.OwnJobs(r.Context(), o, rt.cfg.Name, "", maxListed)
	if err != nil {
		return err
	}
	wf := q.Get("workflow_id")
	var list []map[string]any
	for _, j := range all {
		if rt.hidden.hidden(o, j) {
			continue
		}
		job := rt.comfyJob(j, false)
		if job == nil || !slices.Contains(filter, job["status"].(string)) || (wf != "" && job["workflow_id"] != wf) {
			continue
		}
		list = append(list, job)
	}
	key := func(j map[string]any) float64 {
		num := func(k string) float64 { f, _ := j[k].(float64); return f }
		if sortBy == "execution_duration" {
			if s, e := num("execution_start_time"), num("execution_end_time"); s != 0 && e != 0 {
				return e - s
			}
			return 0
		}
		return num("create_time")
	}
	sort.SliceStable(list, func(a, b int) bool {
		if order == "desc" {
			return key(list[a]) > key(list[b])
		}
		return key(list[a]) < key(list[b])
	})
	total := len(list)
	list = list[min(offset, total):]
	if n, ok := limit.(int); ok {
		list = list[:min(n, len(list))]
	}
	if list == nil {
		list = []map[string]any{}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"jobs": list,
		"pagination": map[string]any{"offset": offset, "limit": limit, "total": total, "has_more": offset+len(list) < total}})
}

// comfyJob is one prompt as ComfyUI's jobs API shows it; nil for a
// prompt deleted while it waited (ComfyUI keeps nothing of it).
func (rt *Route) comfyJob(j *tollgate.Job, withOutputs bool) map[string]any {
	item := queueItem(j)
	extra, _ := item[3].(map[string]any)
	job := map[string]any{"id": j.ID, "priority": j.Seq, "outputs_count": 0, "create_time": float64(j.CreatedAt.UnixMilli())}
	if info, _ := extra["extra_pnginfo"].(map[string]any); info != nil {
		if wf, _ := info["workflow"].(map[string]any); wf != nil && wf["id"] != nil {
			job["workflow_id"] = wf["id"]
		}
	}
	switch j.Status {
	case tollgate.JobStarting:
		job["status"] = "pending"
		return job
	case tollgate.JobProcessing:
		job["status"] = "in_progress"
		return job
	case tollgate.JobCanceled:
		if len(j.Output) == 0 {
			return nil
		}
	}
	e := rt.historyEntry(j)
	st, _ := e["status"].(map[string]any)
	job["status"] = "completed"
	if st["status_str"] == "error" {
		job["status"] = "failed"
	}
	outputs, _ := e["outputs"].(map[string]any)
	count, preview := outputsSummary(outputs)
	job["outputs_count"] = count
	if preview != nil {
		job["preview_output"] = preview
	}
	messages, _ := st["messages"].([]any)
	for _, m := range messages {
		ev, _ := m.([]any)
		if len(ev) < 2 {
			continue
		}
		data, _ := ev[1].(map[string]any)
		switch ev[0] {
		case "execution_start":
			job["execution_start_time"] = data["timestamp"]
		case "execution_success", "execution_interrupted":
			job["execution_end_time"] = data["timestamp"]
		case "execution_error":
			job["execution_end_time"], job["execution_error"] = data["timestamp"], data
		}
	}
	if withOutputs {
		tuple, _ := e["prompt"].([]any)
		var prompt any
		if len(tuple) > 3 {
			prompt, extra = tuple[2], map[string]any{}
			if x, ok := tuple[3].(map[string]any); ok {
				extra = x
			}
		}
		job["outputs"], job["execution_status"] = outputs, st
		job["workflow"] = map[string]any{"prompt": prompt, "extra_data": extra}
	}
	return job
}

// outputsSummary counts a prompt's output items and picks the first
// previewable one, preferring type output (get_outputs_summary).
func outputsSummary(outputs map[string]any) (int, map[string]any) {
	ids := make([]string, 0, len(outputs))
	for id := range outputs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	count := 0
	var preview, fallback map[string]any
	for _, id := range ids {
		node, _ := outputs[id].(map[string]any)
		kinds := make([]string, 0, len(node))
		for k := range node {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		for _, kind := range kinds {
			items, ok := node[kind].([]any)
			if kind == "animated" || !ok {
				continue
			}
			for _, it := range items {
				item, ok := it.(map[string]any)
				if !ok {
					continue
				}
				count++
				if preview != nil || !previewable(kind, item) {
					continue
				}
				enriched := map[string]any{"nodeId": id, "mediaType": kind}
				for k, v := range item {
					enriched[k] = v
				}
				if item["type"] == "output" {
					preview = enriched
				} else if fallback == nil {
					fallback = enriched
				}
			}
		}
	}
	if preview == nil {
		preview = fallback
	}
	return count, preview
}

func previewable(kind string, item map[string]any) bool {
	if kind == "images" || kind == "video" || kind == "audio" {
		return true
	}
	if f, _ := item["format"].(string); strings.HasPrefix(f, "video/") || strings.HasPrefix(f, "audio/") {
		return true
	}
	name, _ := item["filename"].(string)
	ext := strings.ToLower(name[strings.LastIndexByte(name, '.')+1:])
	return slices.Contains([]string{"obj", "fbx", "gltf", "glb"}, ext)
}
