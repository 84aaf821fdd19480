//! Choosing the sessions to show and printing them.

use std::io::{self, Write};

use ::cli::Failure;
use anyhow::Context;
use shared::view::View;
use shared::{Access, Selector, Session, Status};

use crate::cli::Cli;
use crate::table::{self, Look};

/// Lists the sessions `cli` asks for (on other hosts too, when it names
/// any: see [`crate::hosts`]).
pub fn run(cli: Cli) -> Result<i32, Failure> {
    if crate::hosts::wanted(&cli) {
        return crate::hosts::run(cli);
    }
    let selectors: Vec<Selector> = cli
        .selectors
        .iter()
        .map(|s| Selector::parse(s, true))
        .collect::<Result<_, _>>()?;
    let root = cli.root.open(Access::Read)?;
    let sessions = root
        .list()
        .with_context(|| format!("listing {}", root.path().display()))?;
    let rows = pick(&cli, &selectors, &sessions)?;
    for (_, s) in &rows {
        if let (Status::Corrupt, Err(e)) = (s.status, &s.record) {
            let warning = format!("{} is corrupt: {e}", s.id);
            eprintln!("codex-ps: warning: {}", ::cli::text::line(&warning));
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
        let look = Look {
            colour: ::cli::term::colour(&io::stdout()),
            width: if cli.no_trunc {
                None
            } else {
                ::cli::term::size(io::stdout()).map(|(cols, _)| usize::from(cols))
            },
        };
        out.write_all(table::render(&rows, &look).as_bytes())?;
    }
    out.flush()?;
    Ok(0)
}

/// The rows of `sessions` (newest first) that `selectors` (all when none)
/// and `cli`'s filters pick, with their row numbers; at most `--last`.
pub fn pick<'a>(
    cli: &Cli,
    selectors: &[Selector],
    sessions: &'a [Session],
) -> shared::Result<Vec<(usize, &'a Session)>> {
    let mut rows: Vec<(usize, &Session)> = if selectors.is_empty() {
        sessions.iter().enumerate().collect()
    } else {
        let mut picked = Vec::new();
        for sel in selectors {
            let i = sel.find(sessions)?;
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
    Ok(rows)
}
