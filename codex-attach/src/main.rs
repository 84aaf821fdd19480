//! codex-attach: attach the terminal to a running background session.

mod attach;
mod cli;
mod display;
mod keys;
mod remote;
mod term;

fn main() {
    std::process::exit(::cli::run(attach::run));
}
