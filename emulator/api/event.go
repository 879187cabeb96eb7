package api

import (
	"encoding/json"
	"time"
)

// Event is one entry of the emulator's journal of events, as
// /api/v1/events streams it and /api/v1/events/poll answers it.
type Event struct {
	Seq       uint64          `json:"seq"`
	Type      string          `json:"type"`
	Time      time.Time       `json:"time"` // clock time
	Provider  string          `json:"provider,omitempty"`
	MessageID string          `json:"message_id,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
}
