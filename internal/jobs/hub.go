package jobs

import (
	"sync"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// event is one message of a prediction's stream.
type event struct {
	progress float64 // share done, 0..1; negative when unknown
	log      string
	done     *tollgate.Job // set on the last event: the ended job
}

// hub fans a running job's events out to its watchers in this process.
// A watcher that falls behind loses progress events, never the last one.
type hub struct {
	mu    sync.Mutex
	watch map[string]map[chan event]struct{}
}

func newHub() *hub { return &hub{watch: map[string]map[chan event]struct{}{}} }

// subscribe returns a channel of id's events and a function that ends the
// subscription.
func (h *hub) subscribe(id string) (<-chan event, func()) {
	ch := make(chan event, 16)
	h.mu.Lock()
	if h.watch[id] == nil {
		h.watch[id] = map[chan event]struct{}{}
	}
	h.watch[id][ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if subs := h.watch[id]; subs != nil {
			delete(subs, ch)
			if len(subs) == 0 {
				delete(h.watch, id)
			}
		}
	}
}

// publish sends e to id's watchers. The last event (done set) is kept for
// each watcher even when its buffer is full, by dropping its oldest.
func (h *hub) publish(id string, e event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.watch[id] {
		select {
		case ch <- e:
			continue
		default:
		}
		if e.done == nil {
			continue
		}
		select {
		case <-ch:
		default:
		}
		select {
		case ch <- e:
		default:
		}
	}
}
