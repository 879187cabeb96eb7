package explore

import (
	"bytes"
	"strings"
	"sync"
	"time"
)

// progress tells Config.Progress how far a run is: after each history,
// and every second while one runs, with the step it is at, so that a
// history that waits long (a verifier retried on the listener's own
// backoff, a clock jump's resends) says what it waits for. It is the
// histories' log: it keeps the last step finished.
type progress struct {
	report func(Progress)

	mu      sync.Mutex
	p       Progress
	running bool
	began   time.Time
	step    string
	partial []byte
}

// begin notes that history n (counts so far) starts.
func (g *progress) begin(n, events, violations int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.p = Progress{Histories: n - 1, Events: events, Violations: violations}
	g.running, g.began, g.step = true, time.Now(), ""
}

// end reports the counts after a history.
func (g *progress) end(histories, events, violations int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.running = false
	g.p = Progress{Histories: histories, Events: events, Violations: violations}
	if g.report != nil {
		g.report(g.p)
	}
}

// lastStep is the last step the running history finished.
func (g *progress) lastStep() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.step
}

// Write takes a history's log: a step's line starts "  line N: ".
func (g *progress) Write(b []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.partial = append(g.partial, b...)
	for {
		i := bytes.IndexByte(g.partial, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimSpace(string(g.partial[:i]))
		g.partial = g.partial[i+1:]
		if strings.HasPrefix(line, "line ") {
			g.step = line
		}
	}
	return len(b), nil
}

// watch reports the running history every second until the returned
// function is called.
func (g *progress) watch() (stop func()) {
	if g.report == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				g.mu.Lock()
				if g.running && g.step != "" {
					p := g.p
					p.Step, p.Running = g.step, time.Since(g.began)
					g.report(p)
				}
				g.mu.Unlock()
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}
