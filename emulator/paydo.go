package emulator

import (
	"github.com/ipnlab/ipnlab/emulator/paydo"
)

// The fake PayDo is a provider like any plug-in (package paydo, registered
// by New with paydo.Factory); these keep the emulator's Go API whole.

// SendPayDo creates and delivers PayDo notifications and returns them in
// the order they were created.
func (e *Emulator) SendPayDo(req PayDoRequest) ([]MessageView, error) { return e.paydo.Send(req) }

// DispatchPayDo creates one PayDo notification (no copies, no follow-up
// statuses) and hands it to delivery without waiting for the first attempt
// or building its view, for tools that send many (ipnlab load). It returns
// the message id.
func (e *Emulator) DispatchPayDo(req PayDoRequest) (string, error) { return e.paydo.Dispatch(req) }

// PreviewPayDo generates the first message a PayDoRequest would send,
// without sending it.
func (e *Emulator) PreviewPayDo(req PayDoRequest) (Preview, error) { return e.paydo.Preview(req) }

// PayDo returns the fake PayDo.
func (e *Emulator) PayDo() *paydo.Service { return e.paydo.Service() }

// MaxThen bounds a PayDo request's follow-up statuses.
const MaxThen = paydo.MaxThen
