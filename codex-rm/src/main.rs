//! codex-rm: stop and remove background sessions, ids from arguments or stdin.

mod cli;
mod input;
mod remove;
mod stop;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    match remove::run(&cli) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("codex-rm: {e:#}");
            std::process::exit(1);
        }
    }
}
