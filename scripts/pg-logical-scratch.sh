#!/usr/bin/env bash
# Starts (or stops) a scratch PostgreSQL cluster with wal_level = logical on 127.0.0.1:55432,
# for the postgres-cdc tests when the shared server runs with wal_level = replica:
#   bash scripts/pg-logical-scratch.sh start
#   IX_TEST_PG_CDC_URL=postgres://postgres@127.0.0.1:55432/test npx vitest run src/connectors/postgres/cdc.test.ts
#   bash scripts/pg-logical-scratch.sh stop
set -euo pipefail
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
DIR=${IX_PG_SCRATCH_DIR:-/tmp/ix-pg-logical}
PORT=${IX_PG_SCRATCH_PORT:-55432}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case "${1:-start}" in
  start)
    if [ ! -d "$DIR/data" ]; then
      mkdir -p "$DIR" && [ "$(id -u)" = 0 ] && chown postgres "$DIR"
      as_pg "$BIN/initdb" -D "$DIR/data" -A trust -U postgres >/dev/null
    fi
    if ! as_pg "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
    as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w \
      -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c wal_level=logical -c max_replication_slots=20 -c max_wal_senders=20" start >/dev/null
    fi
    psql -h 127.0.0.1 -p "$PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1 \
      || psql -h 127.0.0.1 -p "$PORT" -U postgres -c 'CREATE DATABASE test' >/dev/null
    echo "postgres://postgres@127.0.0.1:$PORT/test"
    ;;
  stop) as_pg "$BIN/pg_ctl" -D "$DIR/data" -m fast stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
