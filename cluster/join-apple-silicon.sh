#!/usr/bin/env bash
# Join this Apple Silicon Mac to a running localroute Ray cluster as an `apple-silicon` worker.
#
#   cluster/join-apple-silicon.sh HEAD_IP[:PORT] [THIS_MAC_IP]
#
# Needs the cluster's Ray version (2.60.0) and Python minor version (3.11) with the project
# installed (`pip install -e .`), and a network where the head and every other node can reach this
# Mac's Ray ports and it can reach theirs (a LAN or a VPN; see cluster/README.md). Ray says
# multi-node clusters are supported on Linux only; on macOS they run at your own risk.
set -euo pipefail

HEAD="${1:?usage: $0 HEAD_IP[:PORT] [THIS_MAC_IP]}"
case "$HEAD" in *:*) ;; *) HEAD="$HEAD:6379" ;; esac

if [ "$(uname -s)/$(uname -m)" != "Darwin/arm64" ]; then
  echo "error: this is not an Apple Silicon Mac ($(uname -s)/$(uname -m))" >&2
  exit 2
fi
NODE_IP="${2:-$(ipconfig getifaddr en0 || true)}"
if [ -z "$NODE_IP" ]; then
  echo "error: cannot tell this Mac's IP address; pass it as the second argument" >&2
  exit 2
fi
if ! python -c 'import ray, sys; sys.exit(ray.__version__ != "2.60.0")'; then
  echo "error: Ray 2.60.0 must be installed in this Python (the cluster's version)" >&2
  exit 2
fi

# Without this, `ray start --address` on macOS stops with "Multi-node Ray clusters are not
# supported on Windows and OSX" (ray/scripts/scripts.py). If the cluster uses token auth, export
# RAY_AUTH_MODE=token and RAY_AUTH_TOKEN before running this script.
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1

# Ray detects the Metal GPU (GPU: 1) and sets ray.io/accelerator-type to the chip (e.g. M2-Max);
# the hardware label is what localroute's placement selects on (localroute/placement.py).
exec ray start \
  --address="$HEAD" \
  --node-ip-address="$NODE_IP" \
  --labels="localroute.io/hardware=apple-silicon"
