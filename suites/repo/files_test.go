package repo_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// maxTracked bounds a tracked file; test data lives under testdata/.
const maxTracked = 1 << 20

// executableMagic are the first bytes of the executables a build leaves.
var executableMagic = [][]byte{
	{0x7f, 'E', 'L', 'F'},    // Linux
	{0xcf, 0xfa, 0xed, 0xfe}, // macOS, 64-bit
	{0xca, 0xfe, 0xba, 0xbe}, // macOS, universal
	{'M', 'Z'},               // Windows
}

var _ = Describe("Tracked files", func() {
	It("are no executable and no larger than 1 MiB (test data excepted)", func() {
		top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
		Expect(err).NotTo(HaveOccurred(), "the repository checks need a git checkout (CI clones one)")
		root := strings.TrimSpace(string(top))
		out, err := exec.Command("git", "-C", root, "ls-files", "-z").Output()
		Expect(err).NotTo(HaveOccurred())
		var bad []string
		for _, name := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
			if name == "" || strings.Contains("/"+name, "/testdata/") {
				continue
			}
			path := filepath.Join(root, name)
			st, err := os.Lstat(path)
			if err != nil || !st.Mode().IsRegular() {
				continue // removed in the work tree, or a link
			}
			if st.Size() > maxTracked {
				bad = append(bad, name+": larger than 1 MiB")
				continue
			}
			head := make([]byte, 4)
			f, err := os.Open(path)
			Expect(err).NotTo(HaveOccurred())
			n, _ := f.Read(head)
			f.Close()
			for _, magic := range executableMagic {
				if n >= len(magic) && bytes.Equal(head[:len(magic)], magic) {
					bad = append(bad, name+": an executable")
				}
			}
		}
		Expect(bad).To(BeEmpty(), "build output is not source: remove it and ignore it")
	})
})
