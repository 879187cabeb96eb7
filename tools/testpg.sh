#!/usr/bin/env bash
# A throwaway PostgreSQL for make test, so that a developer's run and
# CI's run are the same run: when IPNLAB_TEST_POSTGRES is unset and the
# server's binaries are installed, `testpg.sh start DIR` makes a cluster
# in DIR, on a free loopback port, and prints the line to eval:
#   export IPNLAB_TEST_POSTGRES=postgres://ipnlab_test:...@127.0.0.1:PORT/ipnlab_test
# (nothing when it cannot, and the SQL specs then skip, saying why);
# `testpg.sh stop DIR` stops it and removes DIR.
set -u
cmd=${1:-}
dir=${2:-}
if [ -z "$cmd" ] || [ -z "$dir" ]; then
	echo "usage: testpg.sh start|stop DIR" >&2
	exit 2
fi
# The server's own directory (initdb on the PATH may be a link to it).
bin=""
if command -v initdb >/dev/null 2>&1; then
	bin=$(dirname "$(readlink -f "$(command -v initdb)")")
fi
if [ -z "$bin" ] || [ ! -x "$bin/createdb" ]; then
	bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
fi
# initdb refuses to run as root: the cluster is then the postgres user's.
as_owner() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}
case "$cmd" in
start)
	if [ -n "${IPNLAB_TEST_POSTGRES:-}" ] || [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
		exit 0
	fi
	if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
		echo "testpg: running as root with no postgres user: no throwaway PostgreSQL" >&2
		exit 0
	fi
	rm -rf "$dir" && mkdir -p "$dir"
	[ "$(id -u)" = 0 ] && chown postgres "$dir"
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 55432)
	if ! as_owner "$bin/initdb" -D "$dir/data" -A trust -U ipnlab_test >"$dir/initdb.log" 2>&1; then
		echo "testpg: initdb failed (see $dir/initdb.log): no throwaway PostgreSQL" >&2
		exit 0
	fi
	if ! as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null; then
		echo "testpg: the server did not start (see $dir/server.log): no throwaway PostgreSQL" >&2
		exit 0
	fi
	as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U ipnlab_test ipnlab_test
	echo "export IPNLAB_TEST_POSTGRES=postgres://ipnlab_test:ipnlab_test@127.0.0.1:$port/ipnlab_test"
	;;
stop)
	if [ -f "$dir/data/postmaster.pid" ]; then
		as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1
	fi
	rm -rf "$dir"
	;;
*)
	echo "usage: testpg.sh start|stop DIR" >&2
	exit 2
	;;
esac
