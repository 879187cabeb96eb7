package main

import (
	"os"
	"reflect"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ipnlab/ipnlab/suites/conformance"
)

// sampleValue is a value a flag of this type accepts and that differs from
// every default.
func sampleValue(f *pflag.Flag) string {
	switch f.Value.Type() {
	case "duration":
		return "7s"
	case "int", "uint64", "float64":
		return "7"
	case "bool":
		return "true"
	}
	return "sample-" + f.Name
}

// allCommands walks the command tree.
func allCommands(c *cobra.Command) []*cobra.Command {
	out := []*cobra.Command{c}
	for _, sub := range c.Commands() {
		out = append(out, allCommands(sub)...)
	}
	return out
}

var _ = Describe("Flags", func() {
	for _, tc := range []struct {
		name  string
		bind  func(*pflag.FlagSet, *conformance.Config, *string)
		whole bool // every Config field has a flag
	}{{"conform", conformFlags, true}, {"run", settingFlags, false}} {
		name := tc.name
		It("binds every "+name+" option onto the config: each flag sets one field, none is ignored", func() {
			find := func() *cobra.Command {
				c, _, err := newRoot().Find([]string{name})
				Expect(err).NotTo(HaveOccurred())
				return c
			}
			base, err := resolveConfig(find(), "")
			Expect(err).NotTo(HaveOccurred())
			want := conformance.Defaults()
			want.Command = invokedAs() // how replay lines name the binary
			Expect(base).To(Equal(want), "no flag given: the defaults")

			fields := reflect.TypeOf(base)
			reached := map[string]bool{}
			options := pflag.NewFlagSet("", pflag.ContinueOnError)
			tc.bind(options, &conformance.Config{}, new(string))
			options.VisitAll(func(opt *pflag.Flag) {
				if opt.Deprecated != "" || opt.Name == "config" {
					return
				}
				cmd := find()
				Expect(cmd.ParseFlags([]string{"--" + opt.Name + "=" + sampleValue(opt)})).To(Succeed(), opt.Name)
				got, err := resolveConfig(cmd, "")
				Expect(err).NotTo(HaveOccurred(), opt.Name)
				var changed []string
				for i := range fields.NumField() {
					if !reflect.DeepEqual(reflect.ValueOf(got).Field(i).Interface(), reflect.ValueOf(base).Field(i).Interface()) {
						changed = append(changed, fields.Field(i).Name)
					}
				}
				Expect(changed).To(HaveLen(1), "--%s must set exactly one field", opt.Name)
				reached[changed[0]] = true
			})
			find().Flags().VisitAll(func(f *pflag.Flag) {
				// The others: what the command does instead of a run of its
				// own (--emulator: in a running emulator, checked by its
				// spec), and the listener image's (imageFlags, likewise).
				if options.Lookup(f.Name) == nil && !strings.HasPrefix(f.Name, "listener-") {
					Expect([]string{"help", "list", "reference", "catalog", "gallery", "emulator"}).To(ContainElement(f.Name), "%s --%s is not bound to the config", name, f.Name)
				}
			})
			for i := range fields.NumField() {
				if f := fields.Field(i); tc.whole && f.Tag.Get("yaml") != "-" {
					Expect(reached).To(HaveKey(f.Name), "Config.%s has no flag", f.Name)
				}
			}
		})
	}

	It("lets flags win over IPNLAB_* variables, which win over --config", func() {
		dir := GinkgoT().TempDir()
		file := dir + "/c.yaml"
		Expect(writeFile(file, "settle: 3s\npostback_wait: 3s\nname: from-file\n")).To(Succeed())
		GinkgoT().Setenv("IPNLAB_SETTLE", "4s")
		GinkgoT().Setenv("IPNLAB_NAME", "from-env")
		c, _, err := newRoot().Find([]string{"conform"})
		Expect(err).NotTo(HaveOccurred())
		Expect(c.ParseFlags([]string{"--name", "from-flag"})).To(Succeed())
		cfg, err := resolveConfig(c, file)
		Expect(err).NotTo(HaveOccurred())
		Expect(cfg.PostbackWait.String()).To(Equal("3s"))
		Expect(cfg.Settle.String()).To(Equal("4s"))
		Expect(cfg.Name).To(Equal("from-flag"))
	})

	It("uses one name per concept: the old names are hidden, deprecated aliases that still set the new flag", func() {
		retired := []string{"to", "url", "notify-url", "payer", "failed-since"}
		aliases := 0
		for _, cmd := range allCommands(newRoot()) {
			cmd.Flags().VisitAll(func(f *pflag.Flag) {
				where := cmd.CommandPath() + " --" + f.Name
				if a, ok := f.Value.(aliasValue); ok {
					aliases++
					Expect(f.Hidden).To(BeTrue(), where)
					Expect(f.Deprecated).To(ContainSubstring("--"+a.of.Name), where)
					Expect(cmd.Flags().Set(f.Name, sampleValue(a.of))).To(Succeed(), where)
					Expect(cmd.Flags().Changed(a.of.Name)).To(BeTrue(), where)
					Expect(a.of.Value.String()).To(Equal(f.Value.String()), where)
					return
				}
				Expect(retired).NotTo(ContainElement(f.Name), "%s: a retired name", where)
				if f.Name == "addr" {
					Expect(cmd.Name()).To(Equal("listen"), "%s: the emulator's address is --emulator-addr", where)
				}
				if f.Name == "raw" {
					Expect(f.Value.Type()).To(Equal("bool"), "%s: --raw is a bool; a file is --raw-file", where)
				}
			})
		}
		Expect(aliases).To(BeNumerically(">=", 10))
	})
})

func writeFile(path, text string) error {
	return os.WriteFile(path, []byte(strings.TrimSpace(text)+"\n"), 0o644)
}
