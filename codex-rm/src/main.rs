//! codex-rm: stop and remove background sessions, ids from arguments or stdin.

mod cli;
mod input;
mod remove;
mod stop;

fn main() {
    let cli: cli::Cli = shared::cli::parse();
    match remove::run(&cli) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("codex-rm: {e:#}");
            std::process::exit(1);
        }
    }
}
