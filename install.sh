#!/bin/sh
# Builds the codex-* tools in release mode and installs them into
# ~/.cargo/bin (cargo install), sharing one build directory.
set -eu
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
for tool in codex-spawn codex-ps codex-tail codex-attach codex-rm; do
    cargo install --quiet --locked --path "$tool"
done
echo "installed into $(dirname "$(command -v codex-spawn || echo ~/.cargo/bin/codex-spawn)")" >&2
