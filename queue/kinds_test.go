package queue_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/conqhq/conq/queue"
)

// kindsHandler is a default handler that can say what it serves.
type kindsHandler struct{ kinds []string }

func (kindsHandler) ProcessTask(context.Context, *queue.TaskInfo) ([]byte, error) { return nil, nil }
func (h kindsHandler) Kinds() []string                                            { return h.kinds }

func TestWorkerInfoKinds(t *testing.T) {
	w := registrar(t)
	if got := w.Info().Kinds; got != nil {
		t.Fatalf("no handlers: Kinds = %v", got)
	}
	w.HandleFunc("mul", noop)
	w.HandleFunc("add", noop)
	if got := w.Info().Kinds; !slices.Equal(got, []string{"add", "mul"}) {
		t.Fatalf("Kinds = %v, want [add mul]", got)
	}
	// A default handler may serve any kind: unknown, unless it lists them.
	w.HandleDefault(queue.HandlerFunc(noop))
	if got := w.Info().Kinds; got != nil {
		t.Fatalf("with a default handler: Kinds = %v, want nil", got)
	}
	w2 := registrar(t)
	w2.HandleFunc("add", noop)
	w2.HandleDefault(kindsHandler{[]string{"tsum", "add"}})
	if got := w2.Info().Kinds; !slices.Equal(got, []string{"add", "tsum"}) {
		t.Fatalf("with a listing default handler: Kinds = %v", got)
	}
	w3 := registrar(t)
	w3.HandleDefault(kindsHandler{})
	if got := w3.Info().Kinds; got != nil {
		t.Fatalf("a default handler that lists nothing: Kinds = %v", got)
	}
}

// The heartbeat record carries the kinds to the broker.
func TestWorkerHeartbeatKinds(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.HeartbeatInterval = 20 * time.Millisecond
	e.worker(cfg, func(w *queue.Worker) {
		w.HandleFunc("b", noop)
		w.HandleFunc("a", noop)
	})
	insp := queue.NewInspector(e.b)
	var ws []queue.WorkerInfo
	if !waitFor(func() bool {
		var err error
		ws, err = insp.Workers(e.ctx)
		return err == nil && len(ws) == 1
	}) {
		t.Fatalf("Workers = %+v", ws)
	}
	if !slices.Equal(ws[0].Kinds, []string{"a", "b"}) {
		t.Fatalf("Kinds = %v", ws[0].Kinds)
	}
}
