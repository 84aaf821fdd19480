//! codex-attach: attach the terminal to a running background session.

mod attach;
mod cli;
mod keys;
mod term;

use attach::End;

fn main() {
    // codex-attach passes on the session's exit code: its own failures,
    // usage errors included, exit 125 so they cannot be taken for it.
    let cli: cli::Cli = shared::cli::parse_or_exit(125);
    let code = match attach::run(&cli) {
        Ok((_, End::Detached)) => 0,
        Ok((id, End::Exited(code))) => {
            eprintln!("[{id} exited with code {code}]");
            code
        }
        Ok((_, End::Signalled(code))) => code,
        Err(e) => {
            term::restore();
            eprintln!("codex-attach: {e:#}");
            125
        }
    };
    std::process::exit(code);
}
