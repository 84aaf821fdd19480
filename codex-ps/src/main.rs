//! codex-ps: list background sessions as a table, JSON lines or ids.

mod cli;
mod filter;
mod hosts;
mod list;
mod table;
mod wait;

fn main() {
    std::process::exit(::cli::run(list::run));
}
