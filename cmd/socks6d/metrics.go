package main

import (
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/socks6/socks6/server"
)

// metrics are socks6d's Prometheus metrics, served by [metrics] at
// /metrics. Labels carry commands, reply codes and upstream names (an
// upstream without a name is named by its configured host:port) only,
// never users or clients' or destinations' addresses: their number stays
// small whatever the traffic.
type metrics struct {
	reg      *prometheus.Registry
	sessions *prometheus.CounterVec   // command, reply
	upstream *prometheus.CounterVec   // upstream, reply
	bytes    *prometheus.CounterVec   // direction
	duration *prometheus.HistogramVec // command
}

func newMetrics(srv *server.Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.sessions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "socks6d_sessions_total",
		Help: "Sessions that ended, by command (\"handshake\" for those that failed before their request) and by the reply the client was sent.",
	}, []string{"command", "reply"})
	m.upstream = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "socks6d_upstream_sessions_total",
		Help: "Sessions served through an upstream gateway ([[upstream]]), by upstream and reply.",
	}, []string{"upstream", "reply"})
	m.bytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "socks6d_relayed_bytes_total",
		Help: "Bytes relayed by sessions that ended: up is from clients to destinations, down the other way.",
	}, []string{"direction"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "socks6d_session_duration_seconds",
		Help:    "How long sessions lasted, from accept to close, by command.",
		Buckets: []float64{0.001, 0.01, 0.1, 1, 10, 60, 600, 3600},
	}, []string{"command"})
	m.reg.MustRegister(m.sessions, m.upstream, m.bytes, m.duration,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "socks6d_sessions_active",
			Help: "Sessions that hold a place in the session limits now: past their request, not yet ended (those still in their handshake are not counted).",
		}, func() float64 { return float64(srv.Sessions()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "socks6d_build_info",
			Help:        "Always 1; the version is a label.",
			ConstLabels: prometheus.Labels{"version": strings.TrimPrefix(versionString(), "socks6d ")},
		}, func() float64 { return 1 }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// record is server.Server.OnSession.
func (m *metrics) record(r server.SessionRecord) {
	reply := r.Reply.String()
	m.sessions.WithLabelValues(r.Command, reply).Inc()
	if r.Upstream != "" {
		m.upstream.WithLabelValues(r.Upstream, reply).Inc()
	}
	if r.BytesUp > 0 {
		m.bytes.WithLabelValues("up").Add(float64(r.BytesUp))
	}
	if r.BytesDown > 0 {
		m.bytes.WithLabelValues("down").Add(float64(r.BytesDown))
	}
	m.duration.WithLabelValues(r.Command).Observe(r.Duration.Seconds())
}

// server returns the admin HTTP server: /metrics only, with timeouts.
func (m *metrics) server() *http.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	return &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 8 << 10}
}
