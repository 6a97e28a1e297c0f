#!/bin/sh
# Registers compose's SPUs with the SC, then runs its arguments (if any) with the profile set.
#
# SPUs started with `fluvio-run spu` outside Kubernetes are "custom SPUs": the SC hands out
# partitions to them only once they are registered, with the addresses clients (Weir) and the
# other SPUs reach them at. Registering is idempotent here: an SPU already known is left alone.
#
#   FLUVIO_SC    the SC's public address (default fluvio-sc:9003)
#   FLUVIO_SPUS  space-separated ID=HOST entries; each SPU serves clients on HOST:9010 and
#                replication on HOST:9011 (the ports of compose.yaml's `fluvio-run spu`)
set -eu

sc="${FLUVIO_SC:-fluvio-sc:9003}"
fluvio profile add compose "$sc" docker >/dev/null

attempts=0
until fluvio cluster spu list >/dev/null 2>&1; do
    attempts=$((attempts + 1))
    if [ "$attempts" -ge 60 ]; then
        echo "register-spus: the SC at $sc did not answer within 60 s" >&2
        exit 1
    fi
    sleep 1
done

for entry in ${FLUVIO_SPUS:-}; do
    id="${entry%%=*}"
    host="${entry#*=}"
    if fluvio cluster spu list | grep -qw "custom-spu-$id"; then
        echo "register-spus: SPU $id ($host) is already registered"
    else
        fluvio cluster spu register --id "$id" --public-server "$host:9010" --private-server "$host:9011"
        echo "register-spus: registered SPU $id ($host)"
    fi
done

if [ "$#" -gt 0 ]; then
    exec "$@"
fi
