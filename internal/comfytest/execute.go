package comfytest

import (
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"slices"
	"sort"
	"time"
)

// promptHeap is PromptQueue.queue: a heap ordered by (number, prompt_id).
type promptHeap []*Prompt

func (h promptHeap) Len() int { return len(h) }
func (h promptHeap) Less(i, j int) bool {
	if h[i].Number != h[j].Number {
		return h[i].Number < h[j].Number
	}
	return h[i].ID < h[j].ID
}
func (h promptHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *promptHeap) Push(x any)   { *h = append(*h, x.(*Prompt)) }
func (h *promptHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	*h = old[:len(old)-1]
	return p
}

func (h promptHeap) sorted() []*Prompt {
	out := slices.Clone(h)
	sort.Slice(out, func(i, j int) bool { return out.Less(i, j) })
	return out
}

// run is a prompt being executed.
type run struct {
	p         *Prompt
	interrupt chan struct{} // closed by /interrupt
	release   chan error    // Release/Fail
	held      bool
	lastNode  string
	stopped   bool
}

// cached is a node's cached result: its signature and outputs.
type cached struct {
	sig     string
	outputs []any
	ui      map[string]any
}

var errInterrupted = errors.New("interrupted")

// queueInfo is get_queue_info; s.mu must be held.
func (s *Server) queueInfo() map[string]any {
	return map[string]any{"exec_info": map[string]any{"queue_remaining": s.queue.Len() + len(s.running)}}
}

// queueUpdated is PromptServer.queue_updated; s.mu must be held.
func (s *Server) queueUpdated() {
	s.hub.send("status", map[string]any{"status": s.queueInfo()}, "")
	s.notify()
}

func (s *Server) worker() {
	defer s.workers.Done()
	for {
		r := s.next()
		if r == nil {
			return
		}
		s.execute(r)
	}
}

// next pops the first prompt of the queue, waiting for one.
func (s *Server) next() *run {
	for {
		s.mu.Lock()
		// As in ComfyUI, where the event loop writes the POST /prompt
		// response before it sends the worker's first message, a prompt
		// starts once its response is written.
		if s.queue.Len() > 0 && s.queue[0].answered {
			p := heap.Pop(&s.queue).(*Prompt)
			r := &run{p: p, interrupt: make(chan struct{}), release: make(chan error, 1)}
			s.running[p.ID] = r
			s.executions = append(s.executions, Execution{PromptID: p.ID, ClientID: p.ClientID, Number: p.Number, Start: time.Now(), Status: "running"})
			s.queueUpdated()
			s.mu.Unlock()
			return r
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-s.ctx.Done():
			return nil
		case <-ch:
		}
	}
}

// execution is the state of one prompt's run, PromptExecutor's.
type execution struct {
	s        *Server
	r        *run
	client   string
	messages []any
	executed []string
	outputs  map[string][]any
	ui       map[string]map[string]any
	waited   bool
	states   map[string]map[string]any // progress_state of every node started
}

func nowMillis() int64 { return time.Now().UnixMilli() }

// add is PromptExecutor.add_message; it returns the message's time.
func (e *execution) add(event string, data map[string]any, broadcast bool) time.Time {
	now := e.record(event, data)
	e.deliver(event, data, broadcast)
	return now
}

// record adds a status message to the history's list without sending it.
func (e *execution) record(event string, data map[string]any) time.Time {
	now := time.UnixMilli(nowMillis())
	data["timestamp"] = now.UnixMilli()
	e.messages = append(e.messages, []any{event, data})
	return now
}

func (e *execution) deliver(event string, data map[string]any, broadcast bool) {
	if e.client != "" || broadcast {
		e.s.hub.send(event, data, e.client)
	}
}

// toClient sends what the real server sends only when the prompt has a
// client_id.
func (e *execution) toClient(event string, data map[string]any) {
	if e.client != "" {
		e.s.hub.send(event, data, e.client)
	}
}

func (s *Server) execute(r *run) {
	p := r.p
	e := &execution{s: s, r: r, client: p.ClientID, outputs: map[string][]any{}, ui: map[string]map[string]any{}, states: map[string]map[string]any{}}
	started := e.add("execution_start", map[string]any{"prompt_id": p.ID}, false)
	s.mu.Lock()
	if i := s.execIndex(p.ID); i >= 0 {
		s.executions[i].Start = started
	}
	s.mu.Unlock()
	order := executionOrder(s, p.nodes, p.Outputs)
	sigs := map[string]string{}
	cachedNodes := []string{}
	s.mu.Lock()
	for _, id := range order {
		sigs[id] = signature(s, p.nodes, id, sigs)
		if c, ok := s.cache[id]; ok && c.sig == sigs[id] && !s.opts.NoCache {
			cachedNodes = append(cachedNodes, id)
		}
	}
	s.mu.Unlock()
	e.add("execution_cached", map[string]any{"nodes": cachedNodes, "prompt_id": p.ID}, false)
	var failed error
	var failedNode string
	for _, id := range order {
		if slices.Contains(cachedNodes, id) {
			s.mu.Lock()
			c := s.cache[id]
			s.mu.Unlock()
			e.outputs[id] = c.outputs
			if c.ui != nil {
				e.ui[id] = c.ui
				e.toClient("executed", map[string]any{"node": id, "display_node": id, "output": c.ui, "prompt_id": p.ID})
			}
			continue
		}
		if err := e.runNode(id, id == order[len(order)-1]); err != nil {
			failed, failedNode = err, id
			break
		}
		e.executed = append(e.executed, id)
		s.mu.Lock()
		s.cache[id] = cached{sig: sigs[id], outputs: e.outputs[id], ui: e.ui[id]}
		s.mu.Unlock()
	}
	if failed == nil && !e.waited {
		// Nothing ran (every node was cached): the wait happens here.
		e.waited = true
		if err := e.hold(); err != nil {
			failed, failedNode = err, order[len(order)-1]
		}
	}
	status := "success"
	var terminal map[string]any
	var event string
	broadcast := false
	switch {
	case errors.Is(failed, errInterrupted):
		status = "interrupted"
		terminal = map[string]any{"prompt_id": p.ID, "node_id": failedNode,
			"node_type": p.nodes[failedNode].ClassType, "executed": nonNil(e.executed)}
		event, broadcast = "execution_interrupted", true
	case failed != nil:
		status = "error"
		terminal, event = map[string]any{"prompt_id": p.ID, "node_id": failedNode,
			"node_type": p.nodes[failedNode].ClassType, "executed": nonNil(e.executed),
			"exception_message": failed.Error(), "exception_type": "RuntimeError",
			"traceback": []any{}, "current_inputs": map[string]any{}, "current_outputs": []any{}}, "execution_error"
	default:
		terminal, event = map[string]any{"prompt_id": p.ID}, "execution_success"
	}
	// As in ComfyUI, whose worker writes the history (task_done) while
	// the event loop is still to send the last message, the history is
	// complete before the client hears of the end.
	ended := e.record(event, terminal)
	s.finish(e, status, ended, func() { e.deliver(event, terminal, broadcast) })
	e.toClient("executing", map[string]any{"node": nil, "prompt_id": p.ID})
}

// finish is PromptQueue.task_done: the history entry and a status.
func (s *Server) finish(e *execution, status string, ended time.Time, deliver func()) {
	p := e.r.p
	outputs, meta := map[string]any{}, map[string]any{}
	for id, ui := range e.ui {
		outputs[id] = ui
		meta[id] = map[string]any{"node_id": id, "display_node": id, "parent_node": nil, "real_node_id": id}
	}
	statusStr := "success"
	if status != "success" {
		statusStr = "error"
	}
	entry := map[string]any{
		"prompt":  queueTuple(p),
		"outputs": outputs,
		"meta":    meta,
		"status":  map[string]any{"status_str": statusStr, "completed": status == "success", "messages": e.messages},
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	keep := map[string]cached{}
	for id := range p.nodes {
		if c, ok := s.cache[id]; ok {
			keep[id] = c
		}
	}
	s.cache = keep
	delete(s.running, p.ID)
	s.historyMap[p.ID] = entry
	s.history = append(slices.DeleteFunc(s.history, func(id string) bool { return id == p.ID }), p.ID)
	if i := s.execIndex(p.ID); i >= 0 {
		s.executions[i].End, s.executions[i].Status = ended, status
	}
	delete(s.released, p.ID)
	deliver()
	s.queueUpdated()
}

// queueTuple is a queue item as /queue and /history show it:
// [number, prompt_id, prompt, extra_data, outputs_to_execute].
func queueTuple(p *Prompt) []any {
	return []any{p.Number, p.ID, p.Graph, p.Extra, p.Outputs}
}

// runNode executes one node: executing, progress with previews, the
// hold point, executed.
func (e *execution) runNode(id string, last bool) error {
	s, p := e.s, e.r.p
	n := p.nodes[id]
	class := s.classes[n.ClassType]
	s.mu.Lock()
	e.r.lastNode = id
	s.mu.Unlock()
	e.toClient("executing", map[string]any{"node": id, "display_node": id, "prompt_id": p.ID})
	inputs, types := map[string]any{}, map[string]string{}
	for _, in := range class.inputs() { // validated: links are well formed
		v, ok := n.Inputs[in.Name]
		if !ok {
			continue
		}
		if link, ok := v.([]any); ok {
			from, _ := link[0].(string)
			slot := int(link[1].(float64))
			if outs := e.outputs[from]; slot < len(outs) {
				inputs[in.Name] = outs[slot]
			}
			types[in.Name] = s.classes[p.nodes[from].ClassType].Outputs[slot]
			continue
		}
		inputs[in.Name] = v
	}
	e.progressState(id, "running", 0, 1)
	steps := class.Steps
	if !e.waited && (steps > 0 || last) {
		steps = max(steps, 1)
	}
	for step := 1; step <= steps; step++ {
		if err := e.interrupted(); err != nil {
			return err
		}
		e.progress(id, step, steps, inputs)
		if !e.waited {
			e.waited = true
			if err := e.hold(); err != nil {
				return err
			}
		}
	}
	var outs []any
	var ui map[string]any
	var err error
	if class.Run != nil {
		run := &NodeRun{PromptID: p.ID, NodeID: id, Inputs: inputs, s: s}
		if _, ok := class.Hidden["prompt"]; ok {
			run.Prompt = p.Graph
		}
		if _, ok := class.Hidden["extra_pnginfo"]; ok {
			run.PNGInfo, _ = p.Extra["extra_pnginfo"].(map[string]any)
		}
		outs, ui, err = safeRun(s, class, run)
		if err != nil {
			return err
		}
	} else {
		outs = passthrough(class, inputs, types)
	}
	e.outputs[id] = outs
	e.progressState(id, "finished", steps, max(steps, 1))
	if len(ui) > 0 {
		e.ui[id] = ui
		e.toClient("executed", map[string]any{"node": id, "display_node": id, "output": ui, "prompt_id": p.ID})
	}
	return nil
}

// progress is the progress hook: a "progress" message, the progress
// state, and a preview frame when the node has an image at hand.
func (e *execution) progress(id string, value, maxValue int, inputs map[string]any) {
	p := e.r.p
	e.s.hub.send("progress", map[string]any{"value": value, "max": maxValue, "prompt_id": p.ID, "node": id}, e.client)
	e.progressState(id, "running", value, maxValue)
	if img := firstImage(inputs); img != nil {
		e.s.hub.preview(previewJPEG(img), e.client, map[string]any{"node_id": id, "prompt_id": p.ID,
			"display_node_id": id, "parent_node_id": nil, "real_node_id": id})
	}
}

// progressState is WebUIProgressHandler's progress_state: every node
// that is not pending, with its value, max and state.
func (e *execution) progressState(id, state string, value, maxValue int) {
	p := e.r.p
	e.states[id] = map[string]any{"value": value, "max": maxValue, "state": state, "node_id": id, "prompt_id": p.ID,
		"display_node_id": id, "parent_node_id": nil, "real_node_id": id}
	nodes := map[string]any{}
	for k, v := range e.states {
		nodes[k] = v
	}
	e.s.hub.send("progress_state", map[string]any{"prompt_id": p.ID, "nodes": nodes}, e.client)
}

func firstImage(inputs map[string]any) image.Image {
	keys := make([]string, 0, len(inputs))
	for k := range inputs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch v := inputs[k].(type) {
		case Images:
			if len(v) > 0 {
				return v[0]
			}
		case SonicData:
			return v.Image
		}
	}
	return nil
}

func (e *execution) interrupted() error {
	select {
	case <-e.r.interrupt:
		return errInterrupted
	default:
		return nil
	}
}

// hold waits for Duration and, under Hold, for Release or Fail.
func (e *execution) hold() error {
	s, p := e.s, e.r.p
	var timer <-chan time.Time
	if s.opts.Duration != nil {
		if d := s.opts.Duration(*p); d > 0 {
			t := time.NewTimer(d)
			defer t.Stop()
			timer = t.C
		}
	}
	s.mu.Lock()
	err, released := s.released[p.ID]
	needRelease := s.opts.Hold && !released
	if timer != nil || needRelease {
		e.r.held = true
		s.notify()
	}
	s.mu.Unlock()
	if timer != nil {
		select {
		case <-timer:
		case <-e.r.interrupt:
			return errInterrupted
		case <-s.ctx.Done():
			return errInterrupted
		}
	}
	if needRelease {
		select {
		case err = <-e.r.release:
		case <-e.r.interrupt:
			return errInterrupted
		case <-s.ctx.Done():
			return errInterrupted
		}
	}
	s.mu.Lock()
	e.r.held = false
	s.mu.Unlock()
	return err
}

// executionOrder lists the nodes the outputs need, dependencies first.
func executionOrder(s *Server, nodes map[string]node, outputs []string) []string {
	var order []string
	seen := map[string]bool{}
	var visit func(id string)
	visit = func(id string) {
		if seen[id] {
			return
		}
		seen[id] = true
		n := nodes[id]
		for _, in := range s.classes[n.ClassType].inputs() {
			if link, ok := n.Inputs[in.Name].([]any); ok && len(link) == 2 {
				if from, ok := link[0].(string); ok {
					visit(from)
				}
			}
		}
		order = append(order, id)
	}
	for _, o := range outputs {
		visit(o)
	}
	return order
}

// signature is a node's cache key: its class, constant inputs, the keys
// of the nodes it links to and, for file inputs, the file's state.
func signature(s *Server, nodes map[string]node, id string, sigs map[string]string) string {
	n := nodes[id]
	parts := map[string]any{"class": n.ClassType}
	for name, v := range n.Inputs {
		if link, ok := v.([]any); ok && len(link) == 2 {
			from, _ := link[0].(string)
			parts[name] = []any{sigs[from], link[1]}
			continue
		}
		parts[name] = v
		if in, _, ok := s.classes[n.ClassType].input(name); ok && in.Files != "" {
			parts[name+"#file"] = fileState(s, fmt.Sprint(v))
		}
	}
	b, _ := json.Marshal(parts)
	return string(b)
}

// interrupt is nodes.interrupt_processing for the running prompts
// (all of them, or the one with promptID). It reports whether any was
// running.
func (s *Server) interrupt(promptID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	hit := false
	for id, r := range s.running {
		if (promptID == "" || id == promptID) && !r.stopped {
			r.stopped = true
			close(r.interrupt)
			hit = true
		}
	}
	return hit
}

// Interrupt interrupts the running prompts, as POST /interrupt does.
func (s *Server) Interrupt() { s.interrupt("") }

// safeRun runs a node class, turning a panic into the node's error as
// ComfyUI turns an exception into execution_error.
func safeRun(s *Server, class NodeClass, run *NodeRun) (outs []any, ui map[string]any, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%s: %v", class.Name, v)
		}
	}()
	return class.Run(s.ctx, run)
}
