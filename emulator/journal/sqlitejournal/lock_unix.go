//go:build unix

package sqlitejournal

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockFile takes an advisory lock on path+".lock" for this process: one
// emulator per journal, while readers (sqlite3 .backup, ipnlab backup)
// open the journal itself freely. The lock goes with the process, so a
// killed emulator leaves nothing to clean up.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal %s: lock file: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("journal %s: %w", path, ErrInUse)
		}
		return nil, fmt.Errorf("journal %s: lock file: %w", path, err)
	}
	return f, nil
}

// unlockFile releases the lock (closing the file releases it).
func unlockFile(f *os.File) error { return f.Close() }
