//go:build unix

package intercept

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir waits for the lock on dir's lock file: two first runs at once
// make one CA, not two halves of two.
func lockDir(dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock: %w", err)
	}
	return func() { f.Close() }, nil
}

// checkOwner refuses a directory or key another user owns: whoever owns
// the CA's key can make certificates this machine's listeners trust.
func checkOwner(path string, st os.FileInfo) error {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Getuid() {
		return fmt.Errorf("%s belongs to user %d, not to this user (%d): use a CA directory of your own (%s)", path, sys.Uid, os.Getuid(), EnvDir)
	}
	return nil
}
