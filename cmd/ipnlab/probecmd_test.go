package main_test

import (
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gbytes"
	"github.com/onsi/gomega/gexec"

	_ "modernc.org/sqlite"
)

// ipnTable is a shop's table of notifications, one row each.
func ipnTable() string {
	path := filepath.Join(GinkgoT().TempDir(), "shop.db")
	db, err := sql.Open("sqlite", "file:"+path)
	Expect(err).NotTo(HaveOccurred())
	defer db.Close()
	_, err = db.Exec(`CREATE TABLE paypal_ipn (id INTEGER PRIMARY KEY, txn_id TEXT, payment_status TEXT, mc_gross TEXT, mc_currency TEXT);
		INSERT INTO paypal_ipn VALUES (1, 'PAY1', 'Completed', '25.00', 'USD'), (2, 'PAY1', 'Pending', '25.00', 'USD')`)
	Expect(err).NotTo(HaveOccurred())
	return path
}

func writeMap(text string) string {
	path := filepath.Join(GinkgoT().TempDir(), "map.yaml")
	Expect(os.WriteFile(path, []byte(text), 0o644)).To(Succeed())
	return path
}

const ipnMap = `knows: [statuses]
effects: |
  SELECT txn_id, payment_status AS status, %s AS amount, mc_currency AS currency FROM paypal_ipn
  WHERE txn_id = :txn_id AND payment_status = 'Completed'
transaction: |
  SELECT payment_status AS status FROM paypal_ipn WHERE txn_id = :txn_id AND :provider = 'paypal'
  ORDER BY CASE payment_status WHEN 'Pending' THEN 1 ELSE 0 END, id DESC LIMIT 1
`

var _ = Describe("ipnlab probe check", func() {
	It("checks a map on the database with no listener and no emulator, and shows what it answers for a transaction", func() {
		db := ipnTable()
		s := run("probe", "check", "--probe", "sql:sqlite:"+db, "--probe-map", writeMap(fmt.Sprintf(ipnMap, "mc_gross")), "--txn", "PAY1")
		Expect(s).To(gexec.Exit(0))
		Expect(s.Out).To(gbytes.Say(`knows: money, statuses`))
		Expect(s.Out).To(gbytes.Say(`settles on: answers that stay the same, and 200ms of quiet after the last postback \(less once the shop.s own pace is timed\)`))
		Expect(s.Out).To(gbytes.Say(`transaction paypal PAY1: status "Completed"`))
		Expect(s.Out).To(gbytes.Say(`effect PAY1 Completed 25.00 USD`))
		Expect(s.Out).To(gbytes.Say(`net 25.00 USD`))

		s = run("probe", "check", "--probe", "sql:sqlite:"+db, "--probe-map", writeMap(fmt.Sprintf(ipnMap, "mc_gross")), "--txn", "NOPE")
		Expect(s).To(gexec.Exit(0))
		Expect(s.Out).To(gbytes.Say(`transaction paypal NOPE: no row`))
	})

	It("names a map's mistake by file and line, with exit 2: a missing table, a driver's placeholder, an amount that is no number", func() {
		db := ipnTable()
		bad := writeMap("effects: SELECT 1 AS txn_id, 2 AS status, 3 AS amount, 'USD' AS currency FROM nowhere\ntransaction: SELECT 'x' AS status\n")
		s := run("probe", "check", "--probe", "sql:sqlite:"+db, "--probe-map", bad)
		Expect(s).To(gexec.Exit(2))
		Expect(s.Err).To(gbytes.Say(`map.yaml:1: effects: the query fails on sqlite:.*no such table: nowhere`))

		dollar := writeMap("effects: SELECT txn_id, payment_status AS status, mc_gross AS amount, mc_currency AS currency FROM paypal_ipn WHERE txn_id = $1\ntransaction: SELECT 'x' AS status\n")
		s = run("probe", "check", "--probe", "sql:sqlite:"+db, "--probe-map", dollar)
		Expect(s).To(gexec.Exit(2))
		Expect(s.Err).To(gbytes.Say(`map.yaml:1: effects: \$1 is a driver's placeholder: write the map's parameters by name, :provider, :txn_id`))

		s = run("probe", "check", "--probe", "sql:sqlite:"+db, "--probe-map", writeMap(fmt.Sprintf(ipnMap, "'twenty'")), "--txn", "PAY1")
		Expect(s).To(gexec.Exit(2))
		Expect(s.Err).To(gbytes.Say(`effects of PAY1: amount "twenty": not a number`))
	})

	It("is told what it needs", func() {
		s := run("probe", "check", "--probe-map", "x.yaml")
		Expect(s).To(gexec.Exit(2))
		Expect(s.Err).To(gbytes.Say(`give --probe sql:DSN and --probe-map FILE`))
	})
})

var _ = Describe("ipnlab conform through a probe map that reads a value it cannot use", func() {
	It("exits 2, saying the checks could not be judged: an error of the probe, not a verdict on the listener", func() {
		emuAddr := freeAddr()
		addr := startMutantListener("", emuAddr, GinkgoT().TempDir())
		bad := writeMap(`effects: |
  SELECT :txn_id AS txn_id, 'Completed' AS status, 'lots' AS amount, 'USD' AS currency
transaction: |
  SELECT 'Completed' AS status WHERE :txn_id <> ''
`)
		s, err := gexec.Start(exec.Command(binary, "conform", "--listener", "http://"+addr+"/ipn/paypal", "--probe", "sql:sqlite:"+ipnTable(), "--probe-map", bad,
			"--emulator-addr", emuAddr, "--focus", "PP-CREDIT-ONCE", "--ack-timeout", "2s"), GinkgoWriter, GinkgoWriter)
		Expect(err).NotTo(HaveOccurred())
		Eventually(s).WithTimeout(time.Minute).Should(gexec.Exit(2))
		Expect(s.Out).To(gbytes.Say(`amount "lots": not a number`))
		Expect(s.Err).To(gbytes.Say(`1 check\(s\) could not be judged: an error of the harness or the probe, not a verdict on the listener`))
	})
})
