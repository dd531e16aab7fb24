package server

import (
	"net/http"
	"strconv"

	"github.com/conqhq/conq/metrics"
)

// routes builds the handler: security headers, request metrics, the
// loopback Host check (without auth, unless AllowInsecure: a proxy in
// front sends its own Host), cross-origin protection, then the routes with
// their authentication.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	api := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, s.requireAPIAuth(h)) }

	api("POST /api/v1/tasks", s.apiEnqueue)
	api("GET /api/v1/tasks/{id}", s.apiGetTask)
	api("DELETE /api/v1/tasks/{id}", s.apiDeleteTask)
	api("GET /api/v1/tasks/{id}/result", s.apiResult)
	api("POST /api/v1/tasks/{id}/retry", s.apiRetryTask)
	api("POST /api/v1/tasks/{id}/cancel", s.apiCancelTask)
	api("POST /api/v1/results:wait", s.apiWaitResults)
	api("POST /api/v1/results:stream", s.apiStreamResults)
	api("POST /api/v1/tasks:cancel", s.apiCancelTasks)
	api("GET /api/v1/workers", s.apiWorkers)
	api("GET /api/v1/schedules", s.apiSchedules)
	api("GET /api/v1/queues", s.apiQueues)
	api("GET /api/v1/queues/{queue}", s.apiQueue)
	api("GET /api/v1/queues/{queue}/tasks", s.apiQueueTasks)
	api("POST /api/v1/queues/{queue}/pause", s.apiPause)
	api("POST /api/v1/queues/{queue}/resume", s.apiResume)
	api("GET /api/v1/queues/{queue}/shards", s.apiShards)
	api("PUT /api/v1/queues/{queue}/shards", s.apiSetShards)
	api("GET /api/v1/throughput", s.apiThroughput)
	api("POST /api/v1/workflows", s.apiCreateWorkflow)
	api("GET /api/v1/workflows", s.apiListWorkflows)
	api("GET /api/v1/workflows/{id}", s.apiGetWorkflow)
	api("GET /api/v1/workflows/{id}/result", s.apiWorkflowResult)
	api("POST /api/v1/workflows/{id}/cancel", s.apiCancelWorkflow)
	api("/api/", s.apiNotFound)
	// Known paths with another method: 405 in the API's JSON form.
	for path, allow := range map[string]string{
		"/api/v1/tasks":                 "POST",
		"/api/v1/tasks/{id}":            "GET, DELETE",
		"/api/v1/tasks/{id}/result":     "GET",
		"/api/v1/tasks/{id}/retry":      "POST",
		"/api/v1/tasks/{id}/cancel":     "POST",
		"/api/v1/results:wait":          "POST",
		"/api/v1/results:stream":        "POST",
		"/api/v1/tasks:cancel":          "POST",
		"/api/v1/workers":               "GET",
		"/api/v1/schedules":             "GET",
		"/api/v1/queues":                "GET",
		"/api/v1/queues/{queue}":        "GET",
		"/api/v1/queues/{queue}/tasks":  "GET",
		"/api/v1/queues/{queue}/pause":  "POST",
		"/api/v1/queues/{queue}/resume": "POST",
		"/api/v1/queues/{queue}/shards": "GET, PUT",
		"/api/v1/throughput":            "GET",
		"/api/v1/workflows":             "GET, POST",
		"/api/v1/workflows/{id}":        "GET",
		"/api/v1/workflows/{id}/result": "GET",
		"/api/v1/workflows/{id}/cancel": "POST",
	} {
		api(path, methodNotAllowed(allow))
	}
	mux.Handle("GET /metrics", s.requireAPIAuth(promHandler(s)))
	mux.HandleFunc("GET /healthz", s.healthz)
	s.routesDashboard(mux, s.requireDashboardAuth)

	var h http.Handler = mux
	h = crossOrigin(h)
	if !s.authRequired() && !s.cfg.AllowInsecure {
		h = hostCheck(h)
	}
	h = s.countRequests(h)
	return securityHeaders(h)
}

func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" "+r.URL.Path+" is not allowed; use "+allow)
	}
}

// countRequests counts requests by matched route pattern and status.
func (s *Server) countRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		s.requests.WithLabelValues(route, strconv.Itoa(sw.status)).Inc()
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func promHandler(s *Server) http.Handler { return metrics.Handler(s.cfg.Registry) }
