package explore

import (
	"fmt"

	"github.com/ipnlab/ipnlab/junit"
)

// WriteJUnit writes the report as JUnit XML: one case per history run,
// the one that broke the model failing with the invariant it broke, its
// shrunk history and the command that replays it; a harness that stopped
// the run is an error case of its own.
func (r Report) WriteJUnit(path string) error {
	suite := junit.Suite{Name: "ipnlab explore", Time: junit.Millis(r.Seconds)}
	for i, h := range r.Runs {
		c := junit.Case{Name: fmt.Sprintf("history %d (seed %d, %d events)", i+1, h.Seed, h.Events), Classname: suite.Name, Time: junit.Millis(h.Seconds)}
		for _, v := range r.found() {
			if v.HistorySeed != h.Seed {
				continue
			}
			text := fmt.Sprintf("shrunk from %d to %d events in %d runs:\n%s", v.Events, v.ShrunkEvents, v.Shrinks, v.History)
			if v.Replay != "" {
				text += "replay: " + v.Replay + "\n"
			} else {
				text += "scenario:\n" + v.Scenario
			}
			c.Failure = &junit.Message{Message: v.Broke, Text: text}
		}
		suite.Add(c)
	}
	if r.Aborted != "" {
		suite.Add(junit.Case{Name: "harness: the run went to its end", Classname: suite.Name, Error: &junit.Message{Message: r.Aborted, Text: r.Aborted}})
	}
	if r.Customer == "" && r.Balances != "" {
		// Said, not failed: what the run could not judge.
		suite.Add(junit.Case{Name: "balances", Classname: suite.Name, Skipped: &junit.Message{Message: r.Balances}})
	}
	return junit.Write(path, junit.Suites{Name: "ipnlab explore", Time: suite.Time, Suites: []junit.Suite{suite}})
}
