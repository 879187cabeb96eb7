package journal_test

import (
	"errors"
	"fmt"
	"sync"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/ipnlab/ipnlab/emulator/journal"
)

// store records each Write as one commit; gate, when set, holds every
// commit until a value is sent on it, and fail fails the next commit.
type store struct {
	mu      sync.Mutex
	commits [][]journal.Entry
	gate    chan struct{}
	entered chan struct{}
	fail    error
}

func (s *store) Write(entries ...journal.Entry) error {
	if s.gate != nil {
		s.entered <- struct{}{}
		<-s.gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail; err != nil {
		s.fail = nil
		return err
	}
	s.commits = append(s.commits, entries)
	return nil
}

func (s *store) Scan(string, func(string, []byte) error) error { return nil }
func (s *store) Close() error                                  { return nil }

func (s *store) keys() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [][]string
	for _, c := range s.commits {
		var keys []string
		for _, e := range c {
			keys = append(keys, fmt.Sprintf("%s=%s", e.Key, e.Value))
		}
		out = append(out, keys)
	}
	return out
}

func value(v string) func() ([]byte, error) { return journal.Bytes([]byte(v)) }

var _ = Describe("Writer", func() {
	var (
		st     *store
		w      *journal.Writer
		errs   chan error
		closed bool
	)
	BeforeEach(func() {
		st = &store{}
		errs = make(chan error, 10)
		closed = false
	})
	start := func() { w = journal.NewWriter(st, func(err error) { errs <- err }) }
	AfterEach(func() {
		if !closed {
			Expect(w.Close()).To(Succeed())
		}
	})

	It("writes in the order records were queued, a record queued twice once with its last value in its first place", func() {
		st.gate, st.entered = make(chan struct{}), make(chan struct{}, 1)
		start()
		first := w.Queue(journal.Lazy{Kind: "k", Key: "a", Value: value("1")})
		<-st.entered // the first commit is on its way; the rest wait behind it
		w.Post(journal.Lazy{Kind: "k", Key: "b", Value: value("1")})
		w.Post(journal.Lazy{Kind: "k", Key: "c", Value: value("1")})
		last := w.Queue(journal.Lazy{Kind: "k", Key: "b", Value: value("2")})
		close(st.gate)
		Expect(first.Wait()).To(Succeed())
		Expect(last.Wait()).To(Succeed())
		Expect(st.keys()).To(Equal([][]string{{"a=1"}, {"b=2", "c=1"}}))
	})

	It("puts the writes that queue while a commit runs in one commit, and Write returns when its record is on disk", func() {
		st.gate, st.entered = make(chan struct{}), make(chan struct{}, 1)
		start()
		go func() { defer GinkgoRecover(); Expect(w.Write(journal.Entry{Kind: "k", Key: "first"})).To(Succeed()) }()
		<-st.entered
		var wg sync.WaitGroup
		returned := make(chan string, 10)
		for i := range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer GinkgoRecover()
				key := fmt.Sprintf("w%d", i)
				Expect(w.Write(journal.Entry{Kind: "k", Key: key})).To(Succeed())
				returned <- key
			}()
		}
		Eventually(w.Queued).Should(Equal(10))
		Consistently(returned).ShouldNot(Receive()) // none returns before its commit
		entered := st.entered
		go func() {
			for range entered {
			}
		}()
		close(st.gate)
		wg.Wait()
		commits := st.keys()
		Expect(commits).To(HaveLen(2), "the ten writes share the second commit")
		Expect(commits[0]).To(Equal([]string{"first="}))
		Expect(commits[1]).To(HaveLen(10))
	})

	It("returns a failed commit to those who wait for it, and reports it when part of it was posted", func() {
		start()
		st.mu.Lock()
		st.fail = errors.New("disk full")
		st.mu.Unlock()
		Expect(w.Write(journal.Entry{Kind: "k", Key: "a"})).To(MatchError("disk full"))
		Consistently(errs).ShouldNot(Receive())

		st.mu.Lock()
		st.fail = errors.New("disk full again")
		st.mu.Unlock()
		w.Post(journal.Lazy{Kind: "k", Key: "b", Value: value("1")})
		Eventually(errs).Should(Receive(MatchError("disk full again")))
	})

	It("fails a batch whose value cannot be made, writing none of it", func() {
		start()
		c := w.Queue(journal.Lazy{Kind: "k", Key: "a", Value: func() ([]byte, error) { return nil, errors.New("no json") }})
		Expect(c.Wait()).To(MatchError(ContainSubstring("journal k/a: no json")))
		Expect(st.keys()).To(BeEmpty())
	})

	It("commits what is queued at Close, and writes straight to the store after it", func() {
		start()
		w.Post(journal.Lazy{Kind: "k", Key: "a", Value: value("1")})
		Expect(w.Close()).To(Succeed())
		closed = true
		Expect(st.keys()).To(Equal([][]string{{"a=1"}}))
		Expect(w.Write(journal.Entry{Kind: "k", Key: "late", Value: []byte("2")})).To(Succeed())
		Expect(w.Flush()).To(Succeed())
		Expect(st.keys()).To(Equal([][]string{{"a=1"}, {"late=2"}}))
	})
})
