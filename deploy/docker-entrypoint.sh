#!/bin/sh
# The image's entry point: reads the PostgreSQL password from the file PGPASSWORD_FILE names (a compose or
# Kubernetes secret) into libpq's PGPASSWORD, so CERTSEAL_DATABASE_URL carries no password; then runs the
# command. Without PGPASSWORD_FILE it only runs the command.
set -eu
if [ -n "${PGPASSWORD_FILE:-}" ]; then
    if [ ! -r "$PGPASSWORD_FILE" ]; then
        echo "certseal-entrypoint: PGPASSWORD_FILE names a file that cannot be read" >&2
        exit 78
    fi
    PGPASSWORD="$(cat "$PGPASSWORD_FILE")"
    export PGPASSWORD
    unset PGPASSWORD_FILE
fi
exec "$@"
