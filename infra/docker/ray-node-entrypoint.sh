#!/bin/sh
# ray-node-entrypoint COMMAND [ARG...]: join the Ray cluster as a node with no CPUs and no GPUs, then run
# COMMAND in place of this script.
#
# LoRA Forge's flow runs are Ray drivers. A driver connects to the cluster's GCS (LORAFORGE_RAY_ADDRESS,
# host:6379) and needs a raylet on its own host; this node is that raylet. With --num-cpus=0 --num-gpus=0
# Ray schedules no task here: the node only serves the drivers of this container (and holds the objects
# they put). Ray Client (ray://host:10001) is not an alternative: the model stages' Ray Data actor pools
# fail under it with "'Worker' object has no attribute 'core_worker'".
#
# The containers that run flows use it: the Prefect worker (`loraforge worker`) and the API (which runs a
# flow in-process when no deployment answers). Without LORAFORGE_RAY_ADDRESS it runs COMMAND as is (Ray
# starts locally, or the inline executor needs none).
#
# LORAFORGE_RAY_JOIN_TIMEOUT_S (default 300): how long to keep trying while the head starts.
# LORAFORGE_RAY_JOIN_INTERVAL_S (default 5): the wait between tries.
set -eu

if [ "$#" -eq 0 ]; then
    echo "usage: ray-node-entrypoint COMMAND [ARG...]" >&2
    exit 64
fi

address="${LORAFORGE_RAY_ADDRESS:-}"
timeout_s="${LORAFORGE_RAY_JOIN_TIMEOUT_S:-300}"
interval_s="${LORAFORGE_RAY_JOIN_INTERVAL_S:-5}"

case "$address" in
    "")
        ;;
    ray://*)
        echo "ray-node-entrypoint: LORAFORGE_RAY_ADDRESS=$address is a Ray Client address." >&2
        echo "Ray Client cannot run LoRA Forge's model stages (Ray Data actor pools);" \
            "set LORAFORGE_RAY_ADDRESS to the cluster's GCS address, host:6379." >&2
        exit 2
        ;;
    *)
        deadline=$(($(date +%s) + timeout_s))
        until ray start --address="$address" --num-cpus=0 --num-gpus=0 --disable-usage-stats; do
            # A half-started node would make the next try fail for another reason: clear it first.
            ray stop --force >/dev/null 2>&1 || true
            if [ "$(date +%s)" -ge "$deadline" ]; then
                echo "ray-node-entrypoint: could not join the Ray cluster at $address" \
                    "within ${timeout_s}s; is the head running and RAY_AUTH_TOKEN the cluster's?" >&2
                exit 1
            fi
            echo "ray-node-entrypoint: Ray head at $address not ready; retrying in ${interval_s}s" >&2
            sleep "$interval_s"
        done
        ;;
esac

exec "$@"
