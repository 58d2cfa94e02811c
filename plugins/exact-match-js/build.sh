#!/usr/bin/env sh
# Builds exact_match.wasm (the JavaScript port) with componentize-js, from the
# SDK in this checkout (`npm ci` in plugin-sdk/js first): ./build.sh [OUT.wasm]
set -eu
cd "$(dirname "$0")"
node ../../plugin-sdk/js/build.mjs app.js -o "${1:-target/exact_match.wasm}"
