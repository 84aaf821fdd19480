//! codex-spawn: start a background session and print its id.

mod cli;
mod codex;
mod remote;
mod rerun;
mod spawn;

fn main() {
    std::process::exit(::cli::run(spawn::run));
}
