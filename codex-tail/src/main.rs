//! codex-tail: print and follow the output of background sessions.

mod cli;
mod follow;
mod output;
mod render;
mod tail;

use std::io;

fn main() {
    let follow = follow_asked(std::env::args().skip(1));
    // With -f the exit status is the session's: codex-tail's own failures,
    // usage errors included, exit 125 so they cannot be taken for it.
    let own_failure = if follow { 125 } else { 1 };
    let usage_exit = if follow { 125 } else { 2 };
    let cli: cli::Cli = shared::cli::parse_or_exit(usage_exit);
    // A selector that cannot name a session is a usage error, as in codex-ps.
    if let Some(e) = cli
        .selectors
        .iter()
        .find_map(|s| shared::Selector::parse(s, true).err())
    {
        eprintln!("codex-tail: {e} (try --help)");
        std::process::exit(usage_exit);
    }
    let code = match tail::run(&cli) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => 0,
        Err(e) => {
            eprintln!("codex-tail: {e:#}");
            own_failure
        }
    };
    std::process::exit(code);
}

/// Whether the arguments ask for `--follow`, read before parsing so that a
/// usage error can exit as a follow's own failure does.
fn follow_asked(args: impl Iterator<Item = String>) -> bool {
    args.take_while(|a| a != "--").any(|a| {
        a == "--follow"
            || (a.starts_with('-') && !a.starts_with("--") && {
                let flags: String = a[1..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphabetic())
                    .collect();
                flags.contains('f') && !flags.starts_with('n') && !flags.starts_with('c')
            })
    })
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
