//! What codex-tail does: pick the sessions, print their ends, follow them.

use std::io;

use anyhow::{anyhow, bail, Context};

use ::cli::Failure;
use shared::{Access, Selector, Session};

use crate::cli::{Cli, Lines};
use crate::follow::follow;
use crate::output::Printer;
use shared::output::{Source, Window};

/// Runs codex-tail; returns the exit status.
pub fn run(cli: Cli) -> Result<i32, Failure> {
    let cli = &cli;
    let window = Window {
        which: cli.stream.into(),
        upto: None,
        since: cli.since,
        until: cli.until,
    };
    let root = cli.root.open(Access::Read)?;
    let mut ids = Vec::new();
    if cli.selectors.is_empty() {
        let newest = root.list()?.into_iter().next();
        ids.push(
            newest
                .ok_or_else(|| anyhow!("no sessions in {}", root.path().display()))?
                .id,
        );
    }
    for s in &cli.selectors {
        let id = root.resolve(&Selector::parse(s, true)?)?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    let mut sources = ids
        .into_iter()
        .map(|id| {
            let dir = root.session_dir(&id);
            // A session whose record cannot be read (corrupt, of a newer
            // format, or a symlink out of the root) is not read at all.
            let session = Session::load(id.clone(), dir.clone());
            if let Err(e) = &session.record {
                bail!("{id} cannot be read: {e}");
            }
            Source::open(id.clone(), dir).with_context(|| format!("opening the output of {id}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    let colour = ::cli::term::colour(&io::stdout());
    let mut printer = Printer::new(cli.json, cli.timestamps, sources.len() > 1, colour);
    printer.raw = cli.raw;
    printer.exec = sources
        .iter()
        .map(|s| shared::Record::read(&s.dir).is_ok_and(|r| r.kind == shared::Kind::Exec))
        .collect();
    for (nth, source) in sources.iter_mut().enumerate() {
        let id = source.id.to_string();
        // Printed as they are read, long lines in pieces where lines are
        // printed as bytes: memory stays bounded by a piece, whatever the
        // log (JSON lines and rendered events need whole lines).
        source.pieces = !cli.json && (cli.raw || !printer.exec[nth]);
        let mut failed = None;
        if let Some(n) = cli.bytes {
            source.last_bytes(n, &window, &mut |stream, bytes| {
                if failed.is_none() {
                    failed = printer.raw(stream, bytes).err();
                }
            })?;
        } else {
            let mut print = |line: shared::output::Line| {
                if failed.is_none() {
                    failed = printer.line(&id, nth, &line).err();
                }
            };
            match cli.lines {
                Lines::Last(n) => source.last_lines_each(n, &window, cli.follow, &mut print)?,
                Lines::From(first) => source.lines_from(first, &window, cli.follow, &mut print)?,
            }
        }
        if let Some(e) = failed {
            return Err(e.into());
        }
    }
    printer.flush()?;
    if cli.follow {
        return Ok(follow(&mut sources, &mut printer, &window)?);
    }
    Ok(0)
}
