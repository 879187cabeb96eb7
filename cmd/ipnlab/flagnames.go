package main

import (
	"fmt"

	"github.com/spf13/pflag"
)

// One name per concept, in every command:
//
//	--listener        the listener's URL notifications go to (was --to, --url, --notify-url)
//	--payer-email     a customer's email (was --payer)
//	--emulator        a running emulator's base URL (the client commands)
//	--emulator-addr   where an emulator this command starts listens (was --addr on serve and lab)
//	--since           a lower bound on creation time (was --failed-since)
//	--raw             a bool: the raw encoded body (send paypal's file is --raw-file)
//
// The old names still work for one release, hidden, with a deprecation note.

// renamed keeps old as a hidden, deprecated spelling of the flag named now:
// both set the same value, and the new flag reads as changed.
func renamed(fs *pflag.FlagSet, old, now string) {
	f := fs.Lookup(now)
	if f == nil {
		panic("renamed: no flag --" + now) // a programming error, caught by any run
	}
	a := fs.VarPF(aliasValue{Value: f.Value, of: f}, old, "", "")
	a.NoOptDefVal = f.NoOptDefVal
	a.Hidden = true
	a.Deprecated = fmt.Sprintf("use --%s (--%s goes away in the next release)", now, old)
}

// aliasValue sets its flag's value and marks that flag changed, so that
// code asking whether --now was given hears about --old too.
type aliasValue struct {
	pflag.Value
	of *pflag.Flag
}

func (a aliasValue) Set(s string) error {
	if err := a.Value.Set(s); err != nil {
		return err
	}
	a.of.Changed = true
	return nil
}
