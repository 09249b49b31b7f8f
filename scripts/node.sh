#!/bin/sh
# Runs node as the package needs it (package.json engines: >= 22.12): this machine's node when it
# is new enough, else the Node 24 (the active LTS) that scripts/setup.sh unpacked into .cache/node.
here=$(cd "$(dirname "$0")/.." && pwd)
if node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 22 || (a === 22 && b >= 12) ? 0 : 1)' 2>/dev/null; then
  exec node "$@"
fi
for n in "$here"/.cache/node/24.*/bin/node; do
  [ -x "$n" ] && exec "$n" "$@"
done
echo "s3backer: Node.js >= 22.12 is needed (this machine has $(node --version 2>/dev/null || echo none)); bash scripts/setup.sh puts one in .cache/node" >&2
exit 1
