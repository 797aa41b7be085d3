package storetest

import (
	"fmt"
	"testing"

	"github.com/tollgate/tollgate/internal/tollgate"
)

// BenchPick measures Pick with queued jobs waiting from users users on
// one capacity-1 upstream. Each picked job is finished and a new one
// queued for its user outside the timer, so the queue keeps its length.
func BenchPick(b *testing.B, s tollgate.JobStore, queued, users int) {
	ctx := b.Context()
	owner := func(i int) tollgate.Owner {
		return tollgate.Owner{TenantID: "t", UserID: fmt.Sprintf("u%04d", i%users)}
	}
	for i := range queued {
		j := NewJob(owner(i), "m/x", fmt.Sprintf("seed%06d", i))
		j.Priority = i % 3
		if _, _, err := s.Enqueue(ctx, j, tollgate.QueueLimits{}); err != nil {
			b.Fatalf("Enqueue: %v", err)
		}
	}
	r := tollgate.PickRequest{Model: "m/x", Upstreams: []string{"http://gpu-1"}, Capacity: 1}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		j, err := s.Pick(ctx, r)
		if err != nil || j == nil {
			b.Fatalf("Pick = %v, %v", j, err)
		}
		b.StopTimer()
		if _, err := s.Finish(ctx, j.ID, tollgate.JobResult{Status: tollgate.JobSucceeded}); err != nil {
			b.Fatalf("Finish: %v", err)
		}
		n := NewJob(j.Owner, "m/x", fmt.Sprintf("more%06d", i))
		n.Priority = j.Priority
		if _, _, err := s.Enqueue(ctx, n, tollgate.QueueLimits{}); err != nil {
			b.Fatalf("Enqueue: %v", err)
		}
		b.StartTimer()
	}
}
