package emulator

import (
	"github.com/ipnlab/ipnlab/emulator/api"
)

// drawSeed derives the next message's seed from the emulator's.
func (e *Emulator) drawSeed() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seq++
	e.saveSeedLocked()
	return subSeed(e.cfg.Seed, e.seq)
}

// subSeed derives message n's seed from the emulator's (splitmix64), so a
// run with the same seed and the same requests makes the same messages.
func subSeed(seed, n uint64) uint64 {
	z := seed + n*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31) | 1
}

// View returns a message with its fields, attempts and postbacks.
func (e *Emulator) View(id string) (MessageView, bool) {
	rec, ok := e.engine.Get(id)
	if !ok {
		return MessageView{}, false
	}
	v := MessageView{Summary: e.summarize(rec), Attempts: rec.Attempts, Fields: []FieldView{}, Postbacks: []api.Postback{}}
	if p, err := e.providerOf(rec); err == nil {
		p.Describe(id, &v)
	}
	return v, true
}
