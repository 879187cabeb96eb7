//go:build !unix

package sqlitejournal

import (
	"errors"
	"fmt"
	"os"
)

// lockFile creates path+".lock" exclusively: one emulator per journal.
// Without advisory locks a crash leaves the file behind; the error says
// to remove it.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("journal %s: %w (or a crashed one left %s.lock: remove it)", path, ErrInUse, path)
	}
	if err != nil {
		return nil, fmt.Errorf("journal %s: lock file: %w", path, err)
	}
	return f, nil
}

func unlockFile(f *os.File) error {
	name := f.Name()
	return errors.Join(f.Close(), os.Remove(name))
}
