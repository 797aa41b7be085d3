package comfytest

import (
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// jobStatuses are comfy_execution/jobs.py's JobStatus.ALL.
func jobStatuses() []string { return []string{"pending", "in_progress", "completed", "failed"} }

// getJobs is GET /api/jobs: running, pending and finished prompts as
// jobs, with server.py's checks of status, workflow_id, sort_by,
// sort_order, limit and offset.
func (s *Server) getJobs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	filter := jobStatuses()
	if v := q.Get("status"); v != "" {
		filter = nil
		var invalid []string
		for _, st := range strings.Split(v, ",") {
			if st = strings.ToLower(strings.TrimSpace(st)); st == "" {
				continue
			} else if !slices.Contains(jobStatuses(), st) {
				invalid = append(invalid, st)
			}
			filter = append(filter, strings.ToLower(strings.TrimSpace(st)))
		}
		if len(invalid) > 0 {
			writeJSONResponse(w, 400, map[string]any{"error": fmt.Sprintf("Invalid status value(s): %s. Valid values: %s", strings.Join(invalid, ", "), strings.Join(jobStatuses(), ", "))})
			return
		}
	}
	sortBy, order := strings.ToLower(q.Get("sort_by")), strings.ToLower(q.Get("sort_order"))
	sortBy, order = cmpOr(sortBy, "created_at"), cmpOr(order, "desc")
	if sortBy != "created_at" && sortBy != "execution_duration" {
		writeJSONResponse(w, 400, map[string]any{"error": "sort_by must be 'created_at' or 'execution_duration'"})
		return
	}
	if order != "asc" && order != "desc" {
		writeJSONResponse(w, 400, map[string]any{"error": "sort_order must be 'asc' or 'desc'"})
		return
	}
	var limit any
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		switch {
		case err != nil:
			writeJSONResponse(w, 400, map[string]any{"error": "limit must be an integer"})
			return
		case n <= 0:
			writeJSONResponse(w, 400, map[string]any{"error": "limit must be a positive integer"})
			return
		}
		limit = n
	}
	offset := 0
	if q.Has("offset") {
		n, err := strconv.Atoi(q.Get("offset"))
		if err != nil {
			writeJSONResponse(w, 400, map[string]any{"error": "offset must be an integer"})
			return
		}
		offset = max(n, 0)
	}
	jobs := s.jobs(filter, false)
	if wf := q.Get("workflow_id"); wf != "" {
		jobs = slices.DeleteFunc(jobs, func(j map[string]any) bool { return j["workflow_id"] != wf })
	}
	sortJobs(jobs, sortBy, order == "desc")
	total := len(jobs)
	jobs = jobs[min(offset, total):]
	if n, ok := limit.(int); ok {
		jobs = jobs[:min(n, len(jobs))]
	}
	writeJSONResponse(w, 200, map[string]any{"jobs": jobs, "pagination": map[string]any{
		"offset": offset, "limit": limit, "total": total, "has_more": offset+len(jobs) < total}})
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// getJob is GET /api/jobs/{id}: one job with its outputs and workflow.
func (s *Server) getJob(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	for _, j := range s.jobs(jobStatuses(), true) {
		if j["id"] == id {
			writeJSONResponse(w, 200, j)
			return
		}
	}
	writeJSONResponse(w, 404, map[string]any{"error": "Job not found"})
}

func sortJobs(jobs []map[string]any, by string, desc bool) {
	key := func(j map[string]any) float64 {
		num := func(k string) float64 { f, _ := toFloat(j[k]); return f }
		if by == "execution_duration" {
			if start, end := num("execution_start_time"), num("execution_end_time"); start != 0 && end != 0 {
				return end - start
			}
			return 0
		}
		return num("create_time")
	}
	sort.SliceStable(jobs, func(a, b int) bool {
		if desc {
			return key(jobs[a]) > key(jobs[b])
		}
		return key(jobs[a]) < key(jobs[b])
	})
}

// jobMeta is _extract_job_metadata: create_time and the workflow's id.
func jobMeta(job map[string]any, extra map[string]any) {
	if ct, ok := extra["create_time"]; ok {
		job["create_time"] = ct
	}
	info, _ := extra["extra_pnginfo"].(map[string]any)
	wf, _ := info["workflow"].(map[string]any)
	if id, ok := wf["id"]; ok && id != nil {
		job["workflow_id"] = id
	}
}

// jobs lists the jobs of the given statuses: running, then pending, then
// the history, as get_all_jobs collects them.
func (s *Server) jobs(statuses []string, withOutputs bool) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var jobs []map[string]any
	queued := func(p *Prompt, status string) {
		j := map[string]any{"id": p.ID, "status": status, "priority": p.Number, "outputs_count": 0}
		jobMeta(j, p.Extra)
		jobs = append(jobs, j)
	}
	if slices.Contains(statuses, "in_progress") {
		for _, e := range s.executions {
			if r := s.running[e.PromptID]; r != nil && e.End.IsZero() {
				queued(r.p, "in_progress")
			}
		}
	}
	if slices.Contains(statuses, "pending") {
		for _, p := range s.queue {
			queued(p, "pending")
		}
	}
	for _, id := range s.history {
		if j := historyJob(id, s.historyMap[id], withOutputs); slices.Contains(statuses, j["status"].(string)) {
			jobs = append(jobs, j)
		}
	}
	return jobs
}

// historyJob is normalize_history_item.
func historyJob(id string, h map[string]any, withOutputs bool) map[string]any {
	tuple := h["prompt"].([]any)
	extra, _ := tuple[3].(map[string]any)
	st, _ := h["status"].(map[string]any)
	status := "completed"
	if st["status_str"] == "error" {
		status = "failed"
	}
	outputs, _ := h["outputs"].(map[string]any)
	count, preview := outputsSummary(outputs)
	j := map[string]any{"id": id, "status": status, "priority": tuple[0], "outputs_count": count}
	if preview != nil {
		j["preview_output"] = preview
	}
	jobMeta(j, extra)
	messages, _ := st["messages"].([]any)
	for _, m := range messages {
		ev, _ := m.([]any)
		if len(ev) < 2 {
			continue
		}
		data, _ := ev[1].(map[string]any)
		switch ev[0] {
		case "execution_start":
			j["execution_start_time"] = data["timestamp"]
		case "execution_success", "execution_interrupted":
			j["execution_end_time"] = data["timestamp"]
		case "execution_error":
			j["execution_end_time"], j["execution_error"] = data["timestamp"], data
		}
	}
	if withOutputs {
		j["outputs"], j["execution_status"] = outputs, st
		j["workflow"] = map[string]any{"prompt": tuple[2], "extra_data": extra}
	}
	return j
}

// outputsSummary is get_outputs_summary: the number of output items and
// the first previewable one, preferring type "output".
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
	return slices.Contains([]string{".obj", ".fbx", ".gltf", ".glb"}, strings.ToLower(filepath.Ext(name)))
}
