package sqlprobe

import (
	"errors"
	"fmt"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// SQLite's own word on a map's queries. Lexing SQL to find one SELECT
// loses against SQLite's quoting ([a'], `a;` hide a semicolon from a
// lexer that knows ' and "), and the driver runs every statement of a
// string. So before any query runs, each is prepared on a connection of
// its own, opened read-only by SQLite's open flags, and refused if the
// engine parses more than one statement, if it does not call the
// statement read-only, or if it is not a query (ATTACH, PRAGMA and
// transaction control write no file, and SQLite calls them read-only).

// sqliteChecker is a read-only SQLite connection that prepares, never
// steps.
type sqliteChecker struct {
	tls *libc.TLS
	db  uintptr
	// out is where SQLite writes its handles: Go memory on the heap
	// (the checker escapes), which does not move, unlike a stack.
	out [2]uintptr
}

// openSQLiteChecker opens uri (a file: URI) with SQLITE_OPEN_READONLY:
// whatever a statement says, this connection cannot write, nor attach a
// database it could write.
func openSQLiteChecker(uri string) (*sqliteChecker, error) {
	c := &sqliteChecker{tls: libc.NewTLS()}
	name, err := libc.CString(uri)
	if err != nil {
		c.tls.Close()
		return nil, err
	}
	defer libc.Xfree(c.tls, name)
	rc := sqlite3.Xsqlite3_open_v2(c.tls, name, uintptr(unsafe.Pointer(&c.out[0])), sqlite3.SQLITE_OPEN_READONLY|sqlite3.SQLITE_OPEN_URI, 0)
	c.db = c.out[0]
	if rc != sqlite3.SQLITE_OK {
		err := c.err()
		c.Close()
		return nil, err
	}
	return c, nil
}

// Close closes the connection.
func (c *sqliteChecker) Close() {
	if c.db != 0 {
		sqlite3.Xsqlite3_close_v2(c.tls, c.db)
		c.db = 0
	}
	c.tls.Close()
}

// err is SQLite's message for the last call that failed.
func (c *sqliteChecker) err() error {
	if c.db == 0 {
		return errors.New("out of memory")
	}
	return errors.New(libc.GoString(sqlite3.Xsqlite3_errmsg(c.tls, c.db)))
}

// ErrNotOneQuery is why the engine refused a map's query.
var ErrNotOneQuery = errors.New("a probe map's query must be one read-only SELECT")

// check prepares query statement by statement, as SQLite parses it, and
// refuses anything but exactly one read-only statement returning rows.
func (c *sqliteChecker) check(query string) error {
	zsql, err := libc.CString(query)
	if err != nil {
		return err
	}
	defer libc.Xfree(c.tls, zsql)
	pstmt, ptail := uintptr(unsafe.Pointer(&c.out[0])), uintptr(unsafe.Pointer(&c.out[1]))
	end := zsql + uintptr(len(query))
	statements := 0
	for cur := zsql; cur < end; {
		if rc := sqlite3.Xsqlite3_prepare_v2(c.tls, c.db, cur, -1, pstmt, ptail); rc != sqlite3.SQLITE_OK {
			return c.err()
		}
		stmt, next := c.out[0], c.out[1] // the statement, and where the rest begins
		if stmt == 0 {                   // only a semicolon, spaces or comments were left
			if next <= cur {
				break
			}
			cur = next
			continue
		}
		statements++
		readOnly := sqlite3.Xsqlite3_stmt_readonly(c.tls, stmt) != 0
		columns := sqlite3.Xsqlite3_column_count(c.tls, stmt)
		sqlite3.Xsqlite3_finalize(c.tls, stmt)
		switch {
		case statements > 1:
			return fmt.Errorf("%w: SQLite reads more than one statement here, and would run them all", ErrNotOneQuery)
		case !readOnly:
			return fmt.Errorf("%w: SQLite says this statement writes", ErrNotOneQuery)
		case columns == 0:
			return fmt.Errorf("%w: SQLite says this statement returns no rows (ATTACH, PRAGMA and BEGIN are not queries)", ErrNotOneQuery)
		}
		cur = next
	}
	if statements == 0 {
		return fmt.Errorf("%w: SQLite finds no statement here", ErrNotOneQuery)
	}
	return nil
}
