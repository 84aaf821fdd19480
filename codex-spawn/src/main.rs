//! codex-spawn: start a background session and print its id.

mod cli;
mod codex;
mod remote;
mod rerun;
mod spawn;
mod worktree;

fn main() {
    std::process::exit(::cli::run(spawn::run));
}
