//! codex-spawn: start a background session and print its id.

mod cli;
mod spawn;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    let code = match spawn::run(cli) {
        Ok(()) => 0,
        Err(failure) => {
            eprintln!("codex-spawn: {:#}", failure.error);
            failure.code
        }
    };
    std::process::exit(code);
}
