package server

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/conqhq/conq/queue"
)

// Shards of a queue (Decision 6: new endpoints in their own file).

// apiShards: GET /api/v1/queues/{queue}/shards — the queue's shards, each
// with its slot, node, paused flag and counts; an unsharded queue has
// count 1 and no detail.
func (s *Server) apiShards(w http.ResponseWriter, r *http.Request) {
	q, err := s.insp.Queue(r.Context(), r.PathValue("queue"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeShards(w, q)
}

// apiSetShards: PUT /api/v1/queues/{queue}/shards {"shards": N} — spread
// the queue over N shards (the count only grows); 200 with the shards.
func (s *Server) apiSetShards(w http.ResponseWriter, r *http.Request) {
	body, err := s.readJSONBody(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var req struct {
		Shards *int `json:"shards"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		s.fail(w, r, badRequest("body: %v (want {\"shards\": N})", err))
		return
	}
	if req.Shards == nil {
		s.fail(w, r, badRequest("body: shards is required (want {\"shards\": N})"))
		return
	}
	name := r.PathValue("queue")
	if err := s.insp.SetShards(r.Context(), name, *req.Shards); err != nil {
		s.fail(w, r, err)
		return
	}
	q, err := s.insp.Queue(r.Context(), name)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeShards(w, q)
}

func writeShards(w http.ResponseWriter, q queue.QueueInfo) {
	shards := q.Shards
	if shards == nil {
		shards = []queue.ShardInfo{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"queue": q.Name, "count": max(1, len(q.Shards)), "shards": shards})
}
