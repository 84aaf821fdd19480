//! codex-attach: attach the terminal to a running background session.

mod attach;
mod cli;
mod keys;
mod term;

use clap::Parser;

use attach::End;

fn main() {
    // codex-attach passes on the session's exit code: its own failures,
    // usage errors included, exit 125 so they cannot be taken for it.
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            std::process::exit(if e.use_stderr() { 125 } else { 0 });
        }
    };
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
