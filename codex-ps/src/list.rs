//! Choosing the sessions to show and printing them.

use std::io::{self, Write};

use ::cli::Failure;
use anyhow::Context;
use shared::view::View;
use shared::{Access, Selector, Session, Status};

use crate::cli::Cli;
use crate::table::{self, Look};
use crate::wait::{self, Until};

/// Lists the sessions `cli` asks for (on other hosts too, when it names
/// any: see [`crate::hosts`]).
pub fn run(cli: Cli) -> Result<i32, Failure> {
    if crate::hosts::wanted(&cli) {
        return crate::hosts::run(cli);
    }
    let (selectors, sessions) = load(&cli, &cli.selectors)?;

    let mut rows = pick(&cli, &selectors, &sessions)?;
    let waited;
    let mut code = 0;
    if let Some(until) = cli.wait {
        let (status, shown) = wait_for(&rows, until, &cli)?;
        code = status;
        waited = shown;
        rows = waited.iter().map(|(i, s)| (*i, s)).collect();
    }
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
            relative: io::IsTerminal::is_terminal(&io::stdout()).then(shared::Timestamp::now),
        };
        out.write_all(table::render(&rows, &look).as_bytes())?;
    }
    out.flush()?;
    // The process ends now: freeing thousands of records one by one would
    // cost a listing of 10,000 sessions a tenth of its time.
    drop(rows);
    std::mem::forget(sessions);
    Ok(code)
}

/// `--wait`: waits for the sessions of `rows`; the exit status, and the
/// sessions to list: those that ended (all of them, or the first one).
fn wait_for(
    rows: &[(usize, &Session)],
    until: Until,
    cli: &Cli,
) -> Result<(i32, Vec<(usize, Session)>), Failure> {
    if rows.is_empty() && until == Until::Any {
        return Err(anyhow::anyhow!("no session to wait for").into());
    }
    let sessions = rows
        .iter()
        .map(|(_, s)| Session::load(s.id.clone(), s.dir.clone()))
        .collect();
    let w = wait::wait(sessions, until, cli.timeout);
    let mut shown: Vec<(usize, Session)> = rows
        .iter()
        .map(|(i, _)| *i)
        .zip(w.sessions)
        .zip(&w.ended)
        .filter(|(_, &ended)| ended)
        .map(|(row, _)| row)
        .collect();
    if w.timed_out {
        let left = rows.len() - shown.len();
        eprintln!(
            "codex-ps: timed out after {}: {left} session{} still running",
            shared::units::human_duration(cli.timeout.unwrap_or_default()),
            if left == 1 { "" } else { "s" }
        );
        return Ok((wait::TIMED_OUT, shown));
    }
    if until == Until::Any {
        shown.truncate(1);
    }
    let code = match shown.as_slice() {
        [(_, only)] if until == Until::Any || rows.len() == 1 => wait::code_of(only),
        all => {
            let codes: Vec<i32> = all.iter().map(|(_, s)| wait::code_of(s)).collect();
            i32::from(codes.iter().any(|&c| c != 0))
        }
    };
    Ok((code, shown))
}

/// The rows of `sessions` (newest first) that `selectors` (all when none)
/// and `cli`'s filters pick, with their row numbers; at most `--last`.
/// The sessions of this host's root, newest first, and `selectors`
/// parsed (row numbers allowed).
pub fn load(cli: &Cli, selectors: &[String]) -> anyhow::Result<(Vec<Selector>, Vec<Session>)> {
    let selectors: Vec<Selector> = selectors
        .iter()
        .map(|s| Selector::parse(s, true))
        .collect::<Result<_, _>>()?;
    let root = cli.root.open(Access::Read)?;
    let sessions = root
        .list()
        .with_context(|| format!("listing {}", root.path().display()))?;
    Ok((selectors, sessions))
}

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
