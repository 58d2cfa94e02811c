#!/usr/bin/env sh
# Builds exact_match.wasm (the Python port) with componentize-py, from the
# SDK in this checkout: ./build.sh [OUT.wasm]
set -eu
cd "$(dirname "$0")"
sdk=../../plugin-sdk/python
out=${1:-target/exact_match.wasm}
mkdir -p "$(dirname "$out")"
componentize-py -d "$sdk/wit" -w matcher-plugin componentize app -p . -p "$sdk" -o "$out"
