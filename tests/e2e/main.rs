//! End-to-end tests: the built binaries run as a user runs them, against a
//! temporary `--root`, each bounded by timeouts and ending every process it
//! started. Build first: `cargo build --workspace && cargo test -p codex-tests`.

mod abuse;
mod attach;
mod cli;
mod codex;
mod exec;
mod faults;
mod load;
mod ps;
mod rm;
mod security;
mod spawn;
mod states;
mod support;
mod tail;
mod wait;
