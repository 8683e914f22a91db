#!/usr/bin/env bash
# Start N Celery workers (default 2) for vector_sync's Dagster runs, in the background,
# each taking one step at a time. They need what a run needs: the same vector_sync.yaml
# ($VECTOR_SYNC_CONFIG), the same $DAGSTER_HOME (deploy/dagster.yaml: the PostgreSQL
# instance) and the state dir on a path every worker sees. Stop them with `make
# workers-stop` (or `pkill -f 'celery -A dagster_celery.app'`).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
count="${1:-2}"
export VECTOR_SYNC_CELERY_BROKER="${VECTOR_SYNC_CELERY_BROKER:-pyamqp://guest@127.0.0.1:5672//}"
for i in $(seq 1 "$count"); do
  dagster-celery worker start --app dagster_celery.app --config-yaml "$here/celery.yaml" \
    --name "vector-sync-$i" --background -- --concurrency=1
done
echo "started $count Celery workers on $VECTOR_SYNC_CELERY_BROKER"
