#!/usr/bin/env bash
# A throwaway PostgreSQL server for the decision-log tests (tests/test_logstore*.py).
#
#   source .ci/postgres.sh            # exports ROUTER_TEST_POSTGRES_URL; server stops at exit
#   .ci/postgres.sh                   # starts it, prints the export line and the stop command
#   .ci/postgres.sh CMD [ARGS...]     # runs CMD with ROUTER_TEST_POSTGRES_URL set, then stops
#                                     #   e.g. .ci/postgres.sh pytest -m postgres tests/test_logstore.py
#
# Installs PostgreSQL from Debian if no server binaries are found, runs initdb in a fresh
# temp dir as a non-root user (initdb refuses root), starts the server on a free loopback
# port (TCP on 127.0.0.1 only, password auth, unix socket inside the temp dir), creates the
# database router_test, and sets
#   ROUTER_TEST_POSTGRES_URL=postgresql+psycopg://router:<password>@127.0.0.1:<port>/router_test

_pg_main() {
  local bindir
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
  if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
      bindir=$(pg_config --bindir)
    else
      echo "postgres.sh: installing PostgreSQL (apt-get)" >&2
      if [ "$(id -u)" -ne 0 ]; then
        echo "postgres.sh: PostgreSQL is not installed and this is not root" >&2
        return 1
      fi
      DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || return 1
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null || return 1
      bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
    fi
  fi

  # initdb and the server must not run as root.
  local run_as=() owner
  if [ "$(id -u)" -eq 0 ]; then
    if id postgres >/dev/null 2>&1; then owner=postgres; else owner=nobody; fi
    if command -v runuser >/dev/null 2>&1; then
      run_as=(runuser -u "$owner" --)
    else
      run_as=(setpriv --reuid="$owner" --regid="$(id -g "$owner")" --init-groups --)
    fi
  else
    owner=$(id -un)
  fi

  _PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/router-pg.XXXXXX") || return 1
  chmod 700 "$_PG_DIR"
  [ "$(id -u)" -eq 0 ] && chown "$owner" "$_PG_DIR"

  local port password
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') || return 1
  password=$(python3 -c 'import secrets; print(secrets.token_hex(16))') || return 1
  printf '%s\n' "$password" >"$_PG_DIR/pwfile"
  [ "$(id -u)" -eq 0 ] && chown "$owner" "$_PG_DIR/pwfile"

  if ! "${run_as[@]}" "$bindir/initdb" -D "$_PG_DIR/data" -U router --pwfile="$_PG_DIR/pwfile" \
      --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --no-locale \
      >"$_PG_DIR/initdb.log" 2>&1; then
    echo "postgres.sh: initdb failed:" >&2; cat "$_PG_DIR/initdb.log" >&2; return 1
  fi
  rm -f "$_PG_DIR/pwfile"
  if ! "${run_as[@]}" "$bindir/pg_ctl" -D "$_PG_DIR/data" -l "$_PG_DIR/server.log" -w -t 60 \
      -o "-p $port -c listen_addresses=127.0.0.1 -k $_PG_DIR -c max_connections=100" \
      start >/dev/null; then
    echo "postgres.sh: server did not start:" >&2; cat "$_PG_DIR/server.log" >&2; return 1
  fi
  _PG_STOP=("${run_as[@]}" "$bindir/pg_ctl" -D "$_PG_DIR/data" -m fast -w stop)

  if ! PGPASSWORD="$password" "$bindir/createdb" -h 127.0.0.1 -p "$port" -U router router_test; then
    echo "postgres.sh: createdb failed" >&2; _pg_stop; return 1
  fi
  export ROUTER_TEST_POSTGRES_URL="postgresql+psycopg://router:${password}@127.0.0.1:${port}/router_test"
  echo "postgres.sh: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data in $_PG_DIR)" >&2
}

_pg_stop() {
  if [ -n "${_PG_DIR:-}" ] && [ -d "$_PG_DIR" ]; then
    if [ -n "${_PG_STOP+x}" ]; then "${_PG_STOP[@]}" >/dev/null 2>&1 || true; fi
    rm -rf "$_PG_DIR"
  fi
}

if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
  # Sourced (e.g. by .ci/run): export the URL into the caller, stop the server at its exit.
  _pg_main || return 1
  _pg_prev_trap=$(trap -p EXIT | sed -E "s/^trap -- '(.*)' EXIT$/\1/")
  # shellcheck disable=SC2064
  trap "_pg_stop${_pg_prev_trap:+; $_pg_prev_trap}" EXIT
else
  set -uo pipefail
  _pg_main || exit 1
  if [ $# -gt 0 ]; then
    trap _pg_stop EXIT
    "$@"
    exit $?
  fi
  echo "export ROUTER_TEST_POSTGRES_URL='$ROUTER_TEST_POSTGRES_URL'"
  echo "# stop with: ${_PG_STOP[*]} && rm -rf $_PG_DIR"
fi
