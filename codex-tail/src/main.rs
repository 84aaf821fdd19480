//! codex-tail: print and follow the output of background sessions.

mod cli;
mod follow;
mod hosts;
mod output;
mod screen;
mod tail;

fn main() {
    std::process::exit(::cli::run(tail::run));
}
