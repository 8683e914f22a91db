#!/usr/bin/env bash
# Start N Celery workers (default 2) for vector_sync's Dagster runs, in the background,
# each taking one step at a time; `deploy/workers.sh stop` stops the ones it started. They
# need what a run needs: the same vector_sync.yaml ($VECTOR_SYNC_CONFIG), the same
# $DAGSTER_HOME (deploy/dagster.yaml: the PostgreSQL instance) and the state dir on a path
# every worker sees. Each worker is its own process group, recorded in
# $DAGSTER_HOME/workers/<name>.pid (its log beside it), so stopping one signals exactly it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
runs="${DAGSTER_HOME:-$here/..}/workers"
mkdir -p "$runs"

if [ "${1:-}" = "stop" ]; then
  for pidfile in "$runs"/*.pid; do
    [ -e "$pidfile" ] || continue
    kill -TERM -- "-$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
    echo "stopped $(basename "$pidfile" .pid)"
  done
  exit 0
fi

count="${1:-2}"
export VECTOR_SYNC_CELERY_BROKER="${VECTOR_SYNC_CELERY_BROKER:-pyamqp://guest@127.0.0.1:5672//}"
for i in $(seq 1 "$count"); do
  name="vector-sync-$i"
  setsid dagster-celery worker start --app dagster_celery.app \
    --config-yaml "$here/celery.yaml" --name "$name" -- --concurrency=1 \
    >"$runs/$name.log" 2>&1 < /dev/null &
  echo $! > "$runs/$name.pid"
done
echo "started $count Celery workers on $VECTOR_SYNC_CELERY_BROKER (logs in $runs)"
