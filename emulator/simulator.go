package emulator

import (
	"github.com/ipnlab/ipnlab/emulator/plugin"
)

func parseSeed(s string) (uint64, error) { return plugin.ParseSeed(s) }
