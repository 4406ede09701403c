#!/usr/bin/env bash
# Builds the N-API prebuild of this platform (linux-x64 for the npm tarball) with prebuildify:
#   prebuilds/<platform>-<arch>/mics.napi.<libc>.node   e.g. prebuilds/linux-x64/mics.napi.glibc.node
# which node-gyp-build loads on install and at run time, so users need no compiler.
#
#   scripts/prebuild.sh            # builds unless the prebuild is newer than csrc/, binding.gyp and package.json
#   scripts/prebuild.sh --force    # always builds (~1 minute on 2 cores: a full, clean node-gyp build)
#
# Run by `npm pack` / `npm publish` (the `prepack` script) and by the release workflow; the
# tarball test (test/package) runs it too. prebuilds/ is build output, never committed: a
# binary in git goes stale against csrc/ silently, one made at pack time cannot.
#
# The build runs in a temporary copy of the sources, so the working tree's build/ (what the
# tests and `npm install` use) is left alone. N-API version 8 (package.json "binary") means
# one file serves every Node.js from 20 on. The glibc it needs is the build machine's (see
# the report printed at the end): build releases on the oldest distribution you support.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

FORCE=0
case "${1:-}" in
  --force) FORCE=1 ;;
  '') ;;
  *) echo "usage: scripts/prebuild.sh [--force]" >&2; exit 2 ;;
esac

# Up to date: a prebuild newer than every input (the version in package.json is compiled in).
TUPLE=$(node -p 'process.platform + "-" + process.arch')
existing=$(ls prebuilds/"$TUPLE"/*.node 2>/dev/null | head -1 || true)
if [ "$FORCE" = 0 ] && [ -n "$existing" ] && [ -z "$(find csrc binding.gyp package.json -newer "$existing" -print -quit)" ]; then
  echo "prebuild: $existing is newer than csrc/, binding.gyp and package.json: up to date (--force rebuilds)"
  exit 0
fi
rm -rf "prebuilds/$TUPLE"

[ -d node_modules/node-addon-api ] && [ -x node_modules/.bin/prebuildify ] ||
  { echo "prebuild: run 'npm install' first (node-addon-api and prebuildify are needed)" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mics-prebuild-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cp -R binding.gyp package.json csrc "$WORK/"
ln -s "$ROOT/node_modules" "$WORK/node_modules"

# node-gyp: npm's own (npm exports its path to scripts; else it sits next to npm), as `npm install` uses.
NODE_GYP=${npm_config_node_gyp:-$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js}
[ -f "$NODE_GYP" ] || { echo "prebuild: node-gyp not found at $NODE_GYP (set npm_config_node_gyp)" >&2; exit 1; }
# Build against this Node's own headers (offline); N-API makes the result version-independent.
NODE_PREFIX=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
if [ -f "$NODE_PREFIX/include/node/node_api.h" ]; then export npm_config_nodedir="$NODE_PREFIX"; fi

export npm_config_jobs=${npm_config_jobs:-max}
echo "prebuild: compiling csrc/ with node-gyp (prebuildify --napi --strip --tag-libc, Node $(node -v) headers) in $WORK"
# prebuildify keeps its own scratch in $TMPDIR/prebuildify: inside $WORK, removed with it.
mkdir -p "$WORK/tmp"
TMPDIR="$WORK/tmp" PREBUILD_NODE_GYP="$NODE_GYP" node_modules/.bin/prebuildify --napi --strip --tag-libc --target "node@$(node -v)" --cwd "$WORK" --out "$ROOT"

# Prove the file loads here and say what it is (and which glibc symbols it needs).
node -e '
const path = require("path");
const dir = path.join(process.argv[1], "prebuilds", `${process.platform}-${process.arch}`);
const files = require("fs").readdirSync(dir).filter((f) => f.endsWith(".node"));
for (const f of files) {
  const file = path.join(dir, f);
  const info = require(file).buildInfo();
  console.log(`prebuild: ${path.relative(process.argv[1], file)} (${require("fs").statSync(file).size} bytes) loads: mics ${info.version}, ${info.compiler}, ${info.buildSystem}`);
}' "$ROOT"
if command -v objdump >/dev/null 2>&1; then
  for f in prebuilds/*/*.node; do
    need=$(objdump -T "$f" | grep -o 'GLIBC_[0-9.]*' | sort -V | tail -1 || true)
    echo "prebuild: $f needs ${need:-no versioned glibc symbols} or newer"
  done
fi
