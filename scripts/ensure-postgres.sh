#!/usr/bin/env bash
# Makes sure the local PostgreSQL answers (starts the cluster if it is down). Exit 1 if it cannot.
set -u
pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
pg_up && exit 0
if [ -d /etc/postgresql ]; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start 2>/dev/null || true
fi
for _ in $(seq 1 30); do pg_up && exit 0; sleep 1; done
echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2
exit 1
