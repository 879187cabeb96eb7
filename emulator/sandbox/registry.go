package sandbox

import "sync"

// registry holds what must be one account's across the sandbox, because
// the sandbox routes by it: a PayPal message's verify_sign, a PayDo
// lookup token, a PayDo transaction id. Each key names the account that
// claimed it, or several accounts (data kept from before keys were
// unique), which routes nowhere.
type registry struct {
	what  string // for messages: "verify_sign"
	mu    sync.Mutex
	owner map[string]string // key → account ID, or several
}

// several owns a key more than one account has; no account ID is empty.
const several = ""

func newRegistry(what string) *registry {
	return &registry{what: what, owner: map[string]string{}}
}

// claim gives key to account id, unless another account has it.
func (r *registry) claim(id, key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if owner, ok := r.owner[key]; ok && owner != id {
		return false
	}
	r.owner[key] = id
	return true
}

// add notes that account id has key (its kept data, on start), marking
// a key another account has too as several accounts'.
func (r *registry) add(id string, keys []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, key := range keys {
		if owner, ok := r.owner[key]; ok && owner != id {
			r.owner[key] = several
		} else {
			r.owner[key] = id
		}
	}
}

// find is the one account that has key: ok is false if none has it;
// id is several if more than one does.
func (r *registry) find(key string) (id string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id, ok = r.owner[key]
	return id, ok
}

// drop forgets what account id had.
func (r *registry) drop(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for key, owner := range r.owner {
		if owner == id {
			delete(r.owner, key)
		}
	}
}
