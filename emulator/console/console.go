// Package console is the emulator's web console: IPN History, the
// Simulator and the clock, as a page and a small script embedded in the
// binary (it works offline; nothing comes from elsewhere). The page holds
// no data of its own: everything it shows comes from the control API, with
// the API token when the emulator has one, so the page itself is served
// without it.
package console

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
)

//go:embed assets
var assets embed.FS

var files, _ = fs.Sub(assets, "assets")

// Prefix is where the console's script and style are served.
const Prefix = "/console/"

// Handler serves the page at / and its assets under Prefix.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := "index.html"
		if r.URL.Path != "/" {
			name = path.Clean(r.URL.Path[len(Prefix):])
		}
		body, err := fs.ReadFile(files, name)
		if err != nil {
			http.Error(w, "no console file "+r.URL.Path, http.StatusNotFound)
			return
		}
		h := w.Header()
		h.Set("Content-Type", contentType(name))
		// The page may load only its own files and talk only to this
		// emulator.
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		_, _ = w.Write(body)
	})
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	}
	return "application/octet-stream"
}
