package paypal

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/ipnlab/ipnlab/emulator/api"
)

// FaultKind is a way the verifier can misbehave on purpose.
type FaultKind = api.FaultKind

// The faults a listener must survive (api's, named here too).
const (
	FaultNone        = api.FaultNone
	FaultInvalid     = api.FaultInvalid
	FaultStatus500   = api.FaultStatus500
	FaultNewline     = api.FaultNewline
	FaultGarbage     = api.FaultGarbage
	FaultUnavailable = api.FaultUnavailable
	FaultSlow        = api.FaultSlow
	FaultDrop        = api.FaultDrop
)

// FaultKinds lists every fault, for help texts and validation.
var FaultKinds = api.FaultKinds

// Fault is an injected misbehaviour.
type Fault struct {
	Kind FaultKind `json:"kind"`
	// Delay is how long a slow answer waits, on the wall clock: the listener
	// under test times its postback in real time.
	Delay time.Duration `json:"-"`
	// Count limits the fault to the next Count postbacks; 0 means until cleared.
	Count int `json:"count,omitempty"`
}

// MarshalJSON writes Delay as a Go duration string.
func (f Fault) MarshalJSON() ([]byte, error) {
	type plain Fault
	out := struct {
		plain
		Delay string `json:"delay,omitempty"`
	}{plain: plain(f)}
	if f.Delay > 0 {
		out.Delay = f.Delay.String()
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (f *Fault) UnmarshalJSON(b []byte) error {
	type plain Fault
	var in struct {
		plain
		Delay string `json:"delay"`
	}
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*f = Fault(in.plain)
	f.Delay = 0
	if in.Delay != "" {
		d, err := time.ParseDuration(in.Delay)
		if err != nil {
			return fmt.Errorf("fault delay %q: %w", in.Delay, err)
		}
		f.Delay = d
	}
	return nil
}

// Validate reports a fault that cannot be applied.
func (f Fault) Validate() error {
	known := false
	for _, k := range FaultKinds {
		known = known || f.Kind == k
	}
	switch {
	case !known:
		return fmt.Errorf("fault kind %q: want one of %v", f.Kind, FaultKinds)
	case f.Count < 0:
		return fmt.Errorf("fault count %d: must not be negative", f.Count)
	case f.Kind == FaultSlow && f.Delay <= 0:
		return fmt.Errorf("fault slow needs a positive delay")
	case f.Kind != FaultSlow && f.Delay != 0:
		return fmt.Errorf("fault %s takes no delay", f.Kind)
	case f.Delay > 10*time.Minute:
		return fmt.Errorf("fault delay %s: at most 10m", f.Delay)
	}
	return nil
}

// faults holds the global fault and per-message ones.
type faults struct {
	mu        sync.Mutex
	global    *Fault
	byMessage map[string]*Fault
}

func (fs *faults) set(messageID string, f *Fault) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if messageID == "" {
		fs.global = f
		return
	}
	if fs.byMessage == nil {
		fs.byMessage = make(map[string]*Fault)
	}
	if f == nil {
		delete(fs.byMessage, messageID)
	} else {
		fs.byMessage[messageID] = f
	}
}

func (fs *faults) get(messageID string) *Fault {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	f := fs.global
	if messageID != "" {
		f = fs.byMessage[messageID]
	}
	if f == nil {
		return nil
	}
	c := *f
	return &c
}

// take returns the fault for a postback of messageID and uses one of its
// count: a message's own fault first, then the global one. used is the
// key of the fault taken ("" for the global one), counted is whether its
// count changed.
func (fs *faults) take(messageID string) (f Fault, used string, counted bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f, ok := fs.byMessage[messageID]; ok && messageID != "" {
		counted := f.Count > 0
		if f.Count > 0 {
			if f.Count--; f.Count == 0 {
				delete(fs.byMessage, messageID)
			}
		}
		return Fault{Kind: f.Kind, Delay: f.Delay}, messageID, counted
	}
	if f := fs.global; f != nil {
		counted := f.Count > 0
		if f.Count > 0 {
			if f.Count--; f.Count == 0 {
				fs.global = nil
			}
		}
		return Fault{Kind: f.Kind, Delay: f.Delay}, "", counted
	}
	return Fault{}, "", false
}

// exact returns a copy of the fault set under key ("" global), with no
// fallback to the global one.
func (fs *faults) exact(key string) *Fault {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	f := fs.global
	if key != "" {
		f = fs.byMessage[key]
	}
	if f == nil {
		return nil
	}
	c := *f
	return &c
}
