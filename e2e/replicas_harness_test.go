package e2e

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"syscall"
	"testing"
)

// roundRobin is the load balancer of the replica tests: a reverse proxy
// on 127.0.0.1 that sends each request to the next replica in turn, as a
// round-robin balancer without session affinity does. A replica that
// refuses connections (killed) is taken out of the rotation, as a health
// check would; the request that found it so gets a 502 and the client
// retries.
type roundRobin struct {
	URL  string // http://host:port
	Addr string // host:port

	mu       sync.Mutex
	backends []string // host:port
	down     map[int]bool
	next     int
	hops     []hop
}

// hop is one proxied request and the replica that answered it.
type hop struct {
	Method, Path string
	Backend      int
	Status       int
}

func newRoundRobin(t testing.TB, backends ...string) *roundRobin {
	t.Helper()
	p := &roundRobin{backends: backends, down: map[int]bool{}}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			i := pr.In.Context().Value(backendKey{}).(int)
			pr.SetURL(&url.URL{Scheme: "http", Host: p.backends[i]})
			pr.Out.Host = pr.In.Host // replicas build URLs for the balancer's name
			pr.SetXForwarded()
		},
		FlushInterval: -1, // stream bodies both ways
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, syscall.ECONNREFUSED) {
				p.mu.Lock()
				p.down[r.Context().Value(backendKey{}).(int)] = true
				p.mu.Unlock()
			}
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := p.pick()
		cw := &countingWriter{ResponseWriter: w, status: http.StatusOK}
		rp.ServeHTTP(cw, r.WithContext(contextWithBackend(r, i)))
		p.mu.Lock()
		p.hops = append(p.hops, hop{Method: r.Method, Path: r.URL.Path, Backend: i, Status: cw.status})
		p.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	p.Addr = srv.Listener.Addr().String()
	return p
}

type backendKey struct{}

func contextWithBackend(r *http.Request, i int) context.Context {
	return context.WithValue(r.Context(), backendKey{}, i)
}

// pick returns the next replica in turn that is not down.
func (p *roundRobin) pick() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for range p.backends {
		i := p.next % len(p.backends)
		p.next++
		if !p.down[i] {
			return i
		}
	}
	return p.next % len(p.backends) // all down: let the request fail
}

// markDown takes replica i out of the rotation.
func (p *roundRobin) markDown(i int) {
	p.mu.Lock()
	p.down[i] = true
	p.mu.Unlock()
}

// requests returns the requests proxied so far, and clears the record.
func (p *roundRobin) requests() []hop {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.hops
	p.hops = nil
	return h
}
