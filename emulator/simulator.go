package emulator

import (
	"net/http"

	"github.com/ipnlab/ipnlab/emulator/api"
	"github.com/ipnlab/ipnlab/emulator/plugin"
	"github.com/ipnlab/ipnlab/form"
	"github.com/ipnlab/ipnlab/generate"
)

// PreviewPayPal generates the message a SendRequest would send, without
// sending it.
func (e *Emulator) PreviewPayPal(req SendRequest) (Preview, error) {
	if req.Raw != "" || req.RawBase64 != "" || len(req.Fields) > 0 {
		return Preview{}, badRequest("a preview generates a message: raw bodies and whole field lists are already what they are")
	}
	msg, seed, err := e.generatePayPal(req)
	if err != nil {
		return Preview{}, err
	}
	cs, err := msg.Charset()
	if err != nil {
		return Preview{}, badRequest("%v", err)
	}
	p := Preview{Provider: "paypal", Kind: msg.Kind, Seed: api.Seed(seed), Charset: cs.Label(), Fields: make([]TextField, len(msg.Fields))}
	for i, fd := range msg.Fields {
		p.Fields[i] = TextField(fd)
	}
	return p, nil
}

// wholeMessage encodes a field list as the fixtures encode a message: in
// the charset its charset field names (windows-1252 when it names none).
func wholeMessage(kind string, fields []TextField) ([]byte, error) {
	text := make(form.Form, len(fields))
	for i, fd := range fields {
		if fd.Name == "" {
			return nil, badRequest("fields[%d]: a field name is empty", i)
		}
		text[i] = form.Field(fd)
	}
	body, err := generate.Message{Kind: kind, Fields: text}.Body()
	if err != nil {
		return nil, badRequest("fields: %v", err)
	}
	return body, nil
}

func (e *Emulator) previewPayPal(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "charset", "flavour", "seed")
	if err != nil {
		return err
	}
	seed, err := parseSeed(q.Get("seed"))
	if err != nil {
		return err
	}
	p, err := e.PreviewPayPal(SendRequest{Kind: r.PathValue("kind"), Charset: q.Get("charset"), Flavour: q.Get("flavour"), Seed: api.Seed(seed)})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

func parseSeed(s string) (uint64, error) { return plugin.ParseSeed(s) }
