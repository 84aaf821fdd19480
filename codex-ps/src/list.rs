//! Choosing the sessions to show and printing them.

use std::io::{self, IsTerminal, Write};

use anyhow::Context;
use shared::view::View;
use shared::{Access, Root, Selector, Session, Status};

use crate::cli::Cli;
use crate::table::{self, Look};

/// Lists the sessions `cli` asks for.
pub fn run(cli: &Cli) -> anyhow::Result<()> {
    let selectors: Vec<Selector> = cli
        .selectors
        .iter()
        .map(|s| Selector::parse(s, true))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| usage_error(&e.to_string()));
    let path =
        shared::root::resolve_path(cli.root.as_deref()).context("finding the session root")?;
    let root = Root::open(&path, Access::Read).context("opening the session root")?;
    let sessions = root
        .list()
        .with_context(|| format!("listing {}", path.display()))?;

    let mut rows: Vec<(usize, &Session)> = if selectors.is_empty() {
        sessions.iter().enumerate().collect()
    } else {
        let mut picked = Vec::new();
        for sel in &selectors {
            let i = sel.find(&sessions)?;
            if !picked.contains(&i) {
                picked.push(i);
            }
        }
        picked.sort_unstable();
        picked.into_iter().map(|i| (i, &sessions[i])).collect()
    };
    rows.retain(|(_, s)| cli.filters.iter().all(|f| f.matches(s)));
    if let Some(n) = cli.last {
        rows.truncate(n);
    }
    for (_, s) in &rows {
        if let (Status::Corrupt, Err(e)) = (s.status, &s.record) {
            eprintln!("codex-ps: warning: {} is corrupt: {e}", s.id);
        }
    }

    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    if cli.quiet {
        for (_, s) in &rows {
            writeln!(out, "{}", s.id)?;
        }
    } else if cli.json {
        for (i, s) in &rows {
            serde_json::to_writer(&mut out, &View::new(s, Some(*i)))?;
            out.write_all(b"\n")?;
        }
    } else {
        let tty = io::stdout().is_terminal();
        let look = Look {
            colour: tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            width: if cli.no_trunc || !tty {
                None
            } else {
                terminal_width()
            },
        };
        out.write_all(table::render(&rows, &look).as_bytes())?;
    }
    out.flush()?;
    Ok(())
}

fn usage_error(message: &str) -> ! {
    shared::cli::usage_error::<Cli>(message)
}

/// Whether `e` is a write to a closed pipe (`codex-ps | head -1`), which
/// ends the listing quietly.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .and_then(|e| e.io_error_kind())
                .is_some_and(|k| k == io::ErrorKind::BrokenPipe)
    })
}

nix::ioctl_read_bad!(tiocgwinsz, nix::libc::TIOCGWINSZ, nix::libc::winsize);

/// The width of the terminal on stdout.
fn terminal_width() -> Option<usize> {
    let mut ws = nix::libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // Safety: TIOCGWINSZ writes one `winsize` into the struct we own; a
    // failure (stdout not a terminal) leaves it untouched.
    let ok = unsafe { tiocgwinsz(1, &mut ws) }.is_ok();
    (ok && ws.ws_col > 0).then_some(ws.ws_col as usize)
}
