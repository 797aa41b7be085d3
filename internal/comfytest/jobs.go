package comfytest

import (
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// getJobs is GET /api/jobs (comfy_execution/jobs.py): running, pending
// and finished prompts as jobs, filtered by status and paginated.
func (s *Server) getJobs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	statuses := []string{"pending", "in_progress", "completed", "failed"}
	if v := q.Get("status"); v != "" {
		statuses = strings.Split(v, ",")
	}
	limit, offset := -1, 0
	for name, dst := range map[string]*int{"limit": &limit, "offset": &offset} {
		if v := q.Get(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				writeJSONResponse(w, 400, map[string]any{"error": name + " must be a non-negative integer"})
				return
			}
			*dst = n
		}
	}
	jobs := s.jobs(statuses)
	sort.SliceStable(jobs, func(i, j int) bool {
		a, b := jobs[i]["create_time"].(int64), jobs[j]["create_time"].(int64)
		if q.Get("sort_order") == "asc" {
			return a < b
		}
		return a > b
	})
	total := len(jobs)
	jobs = jobs[min(offset, total):]
	if limit >= 0 {
		jobs = jobs[:min(limit, len(jobs))]
	}
	pagination := map[string]any{"offset": offset, "limit": nil, "total": total, "has_more": offset+len(jobs) < total}
	if limit >= 0 {
		pagination["limit"] = limit
	}
	writeJSONResponse(w, 200, map[string]any{"jobs": jobs, "pagination": pagination})
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	for _, j := range s.jobs([]string{"pending", "in_progress", "completed", "failed"}) {
		if j["id"] == id {
			writeJSONResponse(w, 200, j)
			return
		}
	}
	writeJSONResponse(w, 404, map[string]any{"error": "Job not found"})
}

func (s *Server) jobs(statuses []string) []map[string]any {
	want := map[string]bool{}
	for _, st := range statuses {
		want[strings.TrimSpace(st)] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var jobs []map[string]any
	job := func(p *Prompt, status string) map[string]any {
		ct, _ := p.Extra["create_time"].(int64)
		return map[string]any{"id": p.ID, "status": status, "priority": p.Number, "create_time": ct, "outputs_count": 0}
	}
	for _, r := range s.running {
		if want["in_progress"] {
			jobs = append(jobs, job(r.p, "in_progress"))
		}
	}
	for _, p := range s.queue {
		if want["pending"] {
			jobs = append(jobs, job(p, "pending"))
		}
	}
	for _, id := range s.history {
		h := s.historyMap[id]
		st := h["status"].(map[string]any)
		status := "completed"
		if st["status_str"] == "error" {
			status = "failed"
		}
		if !want[status] {
			continue
		}
		tuple := h["prompt"].([]any)
		ct, _ := tuple[3].(map[string]any)["create_time"].(int64)
		j := map[string]any{"id": id, "status": status, "priority": tuple[0], "create_time": ct}
		count := 0
		for _, out := range h["outputs"].(map[string]any) {
			for _, items := range out.(map[string]any) {
				if l, ok := items.([]any); ok {
					count += len(l)
				}
			}
		}
		j["outputs_count"] = count
		for _, m := range st["messages"].([]any) {
			ev := m.([]any)
			data := ev[1].(map[string]any)
			switch ev[0] {
			case "execution_start":
				j["execution_start_time"] = data["timestamp"]
			case "execution_success", "execution_interrupted":
				j["execution_end_time"] = data["timestamp"]
			case "execution_error":
				j["execution_end_time"], j["execution_error"] = data["timestamp"], data
			}
		}
		jobs = append(jobs, j)
	}
	return jobs
}
