//! codex-spawn: start a background session and print its id.

mod cli;
mod spawn;

fn main() {
    let cli: cli::Cli = shared::cli::parse();
    let code = match spawn::run(cli) {
        Ok(()) => 0,
        Err(failure) => {
            eprintln!("codex-spawn: {:#}", failure.error);
            failure.code
        }
    };
    std::process::exit(code);
}
