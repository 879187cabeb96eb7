// Package junit writes test reports as JUnit XML, the format CI systems
// (GitLab, Jenkins, GitHub's test reporters) read: conform's checks and
// explore's histories are reported through it.
package junit

import (
	"encoding/xml"
	"math"
	"os"
)

// Suites is the document: every suite of one run, with their totals.
type Suites struct {
	XMLName  xml.Name `xml:"testsuites"`
	Name     string   `xml:"name,attr"`
	Tests    int      `xml:"tests,attr"`
	Failures int      `xml:"failures,attr"`
	Errors   int      `xml:"errors,attr"`
	Skipped  int      `xml:"skipped,attr"`
	Time     float64  `xml:"time,attr"` // the run's wall time, seconds
	Suites   []Suite  `xml:"testsuite"`
}

// Suite is a group of cases.
type Suite struct {
	Name     string  `xml:"name,attr"`
	Tests    int     `xml:"tests,attr"`
	Failures int     `xml:"failures,attr"`
	Errors   int     `xml:"errors,attr"`
	Skipped  int     `xml:"skipped,attr"`
	Time     float64 `xml:"time,attr"`
	Cases    []Case  `xml:"testcase"`
}

// Case is one test: passed unless it carries a failure, an error or a
// skip.
type Case struct {
	Name       string      `xml:"name,attr"`
	Classname  string      `xml:"classname,attr"`
	Time       float64     `xml:"time,attr"`
	Properties *Properties `xml:"properties,omitempty"`
	Failure    *Message    `xml:"failure,omitempty"`
	Error      *Message    `xml:"error,omitempty"`
	Skipped    *Message    `xml:"skipped,omitempty"`
	SystemOut  string      `xml:"system-out,omitempty"`
}

// Properties are a case's name-value pairs.
type Properties struct {
	Property []Property `xml:"property"`
}

// Property is one name-value pair.
type Property struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

// Message is a failure's, an error's or a skip's: a line, and the text
// under it.
type Message struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

// Millis rounds seconds to the millisecond, as JUnit readers show them.
func Millis(seconds float64) float64 { return math.Round(seconds*1000) / 1000 }

// Add counts c into s: its test, and its failure, error or skip.
func (s *Suite) Add(c Case) {
	s.Tests++
	switch {
	case c.Failure != nil:
		s.Failures++
	case c.Error != nil:
		s.Errors++
	case c.Skipped != nil:
		s.Skipped++
	}
	s.Cases = append(s.Cases, c)
}

// Write writes doc to path, its totals summed from its suites.
func Write(path string, doc Suites) error {
	doc.Tests, doc.Failures, doc.Errors, doc.Skipped = 0, 0, 0, 0
	for _, s := range doc.Suites {
		doc.Tests, doc.Failures, doc.Errors, doc.Skipped = doc.Tests+s.Tests, doc.Failures+s.Failures, doc.Errors+s.Errors, doc.Skipped+s.Skipped
	}
	raw, err := xml.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append([]byte(xml.Header), append(raw, '\n')...), 0o644)
}
