package form_test

import (
	"net/url"
	"testing"

	"github.com/ipnlab/ipnlab/form"
)

// BenchmarkParse decodes a real 39-field IPN; the standard library's
// url.ParseQuery (which loses order) is the baseline in the same run.
func BenchmarkParse(b *testing.B) {
	body := []byte(guideBody)
	b.Run("form.Parse", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := form.Parse(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline=url.ParseQuery", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := url.ParseQuery(guideBody); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	f, _ := form.Parse([]byte(guideBody))
	v, _ := url.ParseQuery(guideBody)
	b.Run("form.Encode", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 4096)
		for b.Loop() {
			buf = f.AppendEncode(buf[:0])
		}
	})
	b.Run("baseline=url.Values.Encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = v.Encode()
		}
	})
}
