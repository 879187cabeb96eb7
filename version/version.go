// Package version says which ipnlab is running: its module version and
// the commit it was built from, read from the binary's own build
// information, for `ipnlab version` and for reports that must say what
// produced them.
package version

import (
	"fmt"
	"runtime/debug"
)

// commit is the revision, set at link time for a build without VCS
// metadata (a source tarball, a copied tree):
//
//	go build -ldflags "-X github.com/ipnlab/ipnlab/version.commit=$(git rev-parse HEAD)" ./cmd/ipnlab
var commit string

// Info is a build of ipnlab.
type Info struct {
	Name    string `json:"name"`
	Version string `json:"version"`          // the module version, "(devel)" for a local build
	Commit  string `json:"commit,omitempty"` // the VCS revision it was built from, if known
	// Modified says the working tree had changes the commit does not hold.
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go"`
}

// Read returns the running binary's build.
func Read() Info {
	info := Info{Name: "ipnlab", Version: "(unknown)"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return info
	}
	info.Go = bi.GoVersion
	if bi.Main.Version != "" {
		info.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Commit = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	if info.Commit == "" {
		info.Commit = commit
	}
	return info
}

// String is the one line `ipnlab version` prints.
func (i Info) String() string {
	s := fmt.Sprintf("%s %s", i.Name, i.Version)
	if i.Commit != "" {
		s += " (commit " + i.Commit
		if i.Modified {
			s += ", modified"
		}
		s += ")"
	} else {
		s += " (unknown commit: built without VCS metadata; -ldflags \"-X github.com/ipnlab/ipnlab/version.commit=SHA\" sets it)"
	}
	return s + " " + i.Go
}
