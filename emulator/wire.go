package emulator

import "github.com/ipnlab/ipnlab/emulator/api"

// The control API's wire types live in package api, which a client
// imports without the emulator; these names keep the emulator's Go API
// whole.
type (
	ClockView        = api.ClockView
	Detail           = api.Detail
	FaultRequest     = api.FaultRequest
	FieldView        = api.FieldView
	Fields           = api.Fields
	LifecyclePlan    = api.LifecyclePlan
	LifecycleRequest = api.LifecycleRequest
	MessageView      = api.MessageView
	NotifyRequest    = api.NotifyRequest
	Params           = api.Params
	PayDoParams      = api.PayDoParams
	PayDoRequest     = api.PayDoRequest
	PlannedStep      = api.PlannedStep
	ProviderInfo     = api.ProviderInfo
	ProviderKind     = api.ProviderKind
	Preview          = api.Preview
	ResendRequest    = api.ResendRequest
	ResendRefusal    = api.ResendRefusal
	SendRequest      = api.SendRequest
	Summary          = api.Summary
	Outcome          = api.Outcome
	OutcomeState     = api.OutcomeState
	TextField        = api.TextField
)
