package main

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"
)

// newHealthz is the image's readiness check: scratch images have no curl.
func newHealthz() *cobra.Command {
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "healthz [URL]",
		Short: "Exit 0 when URL (default http://127.0.0.1:8700/healthz) answers 200",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			target := "http://127.0.0.1:8700/healthz"
			if len(args) == 1 {
				target = args[0]
			}
			if u, err := url.Parse(target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return usageError{fmt.Errorf("healthz %q: want an http(s) URL", target)}
			}
			if timeout <= 0 {
				return usageError{fmt.Errorf("--timeout %s: must be positive", timeout)}
			}
			resp, err := (&http.Client{Timeout: timeout}).Get(target)
			if err != nil {
				return exitError{code: 1, msg: fmt.Sprintf("healthz: %v", err)}
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return exitError{code: 1, msg: fmt.Sprintf("healthz %s: HTTP %d", target, resp.StatusCode)}
			}
			fmt.Fprintln(cmd.OutOrStdout(), "ok")
			return nil
		},
	}
	c.Flags().DurationVar(&timeout, "timeout", 2*time.Second, "how long to wait for the answer")
	return c
}
