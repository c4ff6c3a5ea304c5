#!/usr/bin/env bash
# Prints the directory of a Node.js binary of the given version, fetched from the npm registry's
# node-linux-<arch> package (the only place CI can reach). Cached under .ci/cache between runs.
set -euo pipefail
version="$1"
case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64) arch=arm64 ;;
  *) echo "fetch-node: no node-linux package for $(uname -m)" >&2; exit 1 ;;
esac
dir="$(cd "$(dirname "$0")" && pwd)/cache/node-$version-$arch"
if [ ! -x "$dir/bin/node" ]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "node-linux-$arch@$version" >/dev/null)
  mkdir -p "$dir"
  tar -xzf "$work"/node-linux-*.tgz -C "$dir" --strip-components=1 package/bin/node
fi
"$dir/bin/node" --version >/dev/null
echo "$dir/bin"
