package load

// LiveRecords is how many messages the load still keeps a record of (the
// rest are in its tallies), for the bounded-memory spec.
func (r *Runner) LiveRecords() int {
	r.acct.mu.Lock()
	defer r.acct.mu.Unlock()
	return len(r.acct.msgs) + len(r.acct.byTxn)
}
