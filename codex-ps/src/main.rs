//! codex-ps: list background sessions as a table, JSON lines or ids.

mod cli;
mod filter;
mod list;
mod table;

fn main() {
    let cli: cli::Cli = shared::cli::parse();
    match list::run(&cli) {
        Ok(()) => {}
        Err(e) if list::is_broken_pipe(&e) => {}
        Err(e) => {
            eprintln!("codex-ps: {e:#}");
            std::process::exit(1);
        }
    }
}
