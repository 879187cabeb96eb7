package sqlprobe

import "time"

// SetNow makes a judge its reads and quiet periods at now's time: the
// pace specs move a clock of their own, so that no reading of theirs
// depends on how busy the machine is.
func SetNow(a *Adapter, now func() time.Time) { a.now = now }
