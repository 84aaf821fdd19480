#!/bin/sh
# Builds the codex-* tools in release mode and installs them into
# ~/.cargo/bin (cargo install), sharing one build directory; then installs
# their man pages and shell completions where man, bash, zsh and fish find
# them for this user (see the README's "Completions and man pages").
set -eu
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
tools="codex-spawn codex-ps codex-tail codex-attach codex-rm"
for tool in $tools; do
    cargo install --quiet --locked --path "$tool"
done
bin="${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}/bin"

# man finds BIN/../share/man for every BIN on PATH.
man_dir="$bin/../share/man/man1"
# bash-completion loads a command's completion from here on first use.
data="${XDG_DATA_HOME:-$HOME/.local/share}"
bash_dir="$data/bash-completion/completions"
# fish loads completions/NAME.fish on first use.
fish_dir="${XDG_CONFIG_HOME:-$HOME/.config}/fish/completions"
# zsh has no per-user directory it reads by itself: ~/.zshrc sources this.
zsh_file="$data/codex-background/completion.zsh"
mkdir -p "$man_dir" "$bash_dir" "$fish_dir" "$(dirname "$zsh_file")"
: >"$zsh_file.tmp"
for tool in $tools; do
    "$bin/$tool" --generate man >"$man_dir/$tool.1"
    COMPLETE=bash "$bin/$tool" >"$bash_dir/$tool"
    COMPLETE=fish "$bin/$tool" >"$fish_dir/$tool.fish"
    COMPLETE=zsh "$bin/$tool" >>"$zsh_file.tmp"
done
mv "$zsh_file.tmp" "$zsh_file"
echo "installed into $bin; man pages into $(cd "$man_dir" && pwd)" >&2
echo "completions: bash and fish load them by themselves; for zsh add to ~/.zshrc: source $zsh_file" >&2
