package paypalrest

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"slices"
	"sync"
)

// keyBits is the size of PayPal's signing keys.
const keyBits = 2048

// signingKeys are the RSA keys signers are made with, shared by every
// plugin in the process. Generating a 2048-bit key costs about a tenth of
// a second of CPU, and a process that makes many emulators (a conformance
// sweep, explore, a sandbox) spent a third of its CPU there; a handful of
// keys serves them all. What a verifier can tell apart stays apart: a
// plugin never signs with a key it has used before (a rotation's key is
// new to whoever cached the old certificate), and its attacker's key is
// none of its own.
var signingKeys keyPool

type keyPool struct {
	mu   sync.Mutex
	keys []*rsa.PrivateKey
}

// take returns a key for which used is false, generating one when every
// key in the pool is used. Concurrent callers that find none generate one
// each, so the pool grows to the peak of plugins starting at once.
func (kp *keyPool) take(used func(*rsa.PublicKey) bool) (*rsa.PrivateKey, error) {
	kp.mu.Lock()
	i := slices.IndexFunc(kp.keys, func(k *rsa.PrivateKey) bool { return !used(&k.PublicKey) })
	if i >= 0 {
		k := kp.keys[i]
		kp.mu.Unlock()
		return k, nil
	}
	kp.mu.Unlock()
	k, err := rsa.GenerateKey(rand.Reader, keyBits)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	kp.mu.Lock()
	kp.keys = append(kp.keys, k)
	kp.mu.Unlock()
	return k, nil
}

// freshKeyLocked is a key this plugin has signed nothing with, its
// restored signers' and its attacker's included (p.mu held).
func (p *Plugin) freshKeyLocked() (*rsa.PrivateKey, error) {
	return signingKeys.take(func(pub *rsa.PublicKey) bool {
		if p.attacker != nil && p.attacker.key.PublicKey.Equal(pub) {
			return true
		}
		return slices.ContainsFunc(p.signers, func(s *signer) bool { return s.key.PublicKey.Equal(pub) })
	})
}
