//! End-to-end tests: the built binaries run as a user runs them, against a
//! temporary `--root`, each bounded by timeouts and ending every process it
//! started. Build first: `cargo build --workspace && cargo test -p codex-tests`.

mod abuse;
mod agent;
mod attach;
mod bytes;
mod cli;
mod codex;
mod environment;
mod exec;
mod faults;
mod fleet;
mod hostile;
mod hosts;
mod load;
mod ownership;
mod promises;
mod ps;
mod rm;
mod security;
mod spawn;
mod states;
mod support;
mod tail;
mod tail_truth;
mod terminal;
mod wait;
mod worktree;
