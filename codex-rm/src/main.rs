//! codex-rm: stop and remove background sessions, ids from arguments or stdin.

mod cli;
mod hosts;
mod input;
mod remove;
mod stop;
mod work;

fn main() {
    std::process::exit(::cli::run(remove::run));
}
