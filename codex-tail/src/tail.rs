//! What codex-tail does: pick the sessions, print their ends, follow them.

use std::io::{self, Write};

use anyhow::{anyhow, Context};

use ::cli::Failure;
use shared::{Access, Selector, Session, Timestamp};

use crate::cli::{Cli, Lines};
use crate::follow::follow;
use crate::output::Printer;
use shared::output::{Line, Source, Window};
use shared::render;

/// Runs codex-tail; returns the exit status.
pub fn run(mut cli: Cli) -> Result<i32, Failure> {
    // Sessions of several hosts: one codex-tail per host at once, their
    // lines relayed as they come (see `hosts`).
    let mut groups = ::cli::host::groups(&cli.host, &cli.selectors)?;
    if groups.len() > 1 {
        return crate::hosts::run(&cli, groups);
    }
    let (dest, selectors) = groups.pop().unwrap_or((::cli::Dest::Local, Vec::new()));
    cli.selectors = selectors;
    // A session of another host: that host's codex-tail, through ssh, its
    // output straight to ours and its exit status passed on.
    if let ::cli::Dest::Remote(dest) = dest {
        let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
        let args = ::cli::host::for_remote(&<Cli as clap::CommandFactory>::command(), &args);
        return Ok(::cli::ssh::stream(&dest, "codex-tail", &args, None)?);
    }
    let cli = &cli;
    let window = Window {
        which: cli.stream.into(),
        upto: None,
        since: cli.since,
        // Printed times have millisecond precision: a time codex-tail
        // printed, given back, still admits the line it was printed for.
        until: cli.until.map(end_of_millisecond),
    };
    // Every selector is checked before anything is read (usage errors).
    let selectors = cli
        .selectors
        .iter()
        .map(|s| Selector::parse(s, true))
        .collect::<Result<Vec<_>, _>>()?;
    let root = cli.root.open(Access::Read)?;
    let mut ids = Vec::new();
    if selectors.is_empty() {
        let newest = root.list()?.into_iter().next();
        ids.push(
            newest
                .ok_or_else(|| anyhow!("no sessions in {}", root.path().display()))?
                .id,
        );
    }
    // One selector that fails does not stop the others (as GNU tail goes
    // on past a missing file): it is reported, and the exit status says so.
    let several = selectors.len() > 1;
    let mut failed: Option<anyhow::Error> = None;
    let mut fail = |e: anyhow::Error| -> anyhow::Result<()> {
        if !several {
            return Err(e);
        }
        eprintln!("codex-tail: {}", format!("{e:#}").replace('\n', " "));
        failed = Some(e);
        Ok(())
    };
    for selector in &selectors {
        match root.resolve(selector) {
            Ok(id) if !ids.contains(&id) => ids.push(id),
            Ok(_) => {}
            Err(e) => fail(e.into())?,
        }
    }
    if cli.screen {
        let mut out = io::stdout().lock();
        let several = ids.len() > 1;
        for (nth, id) in ids.into_iter().enumerate() {
            let session = Session::load(id.clone(), root.session_dir(&id));
            if several || cli.host_label.is_some() {
                let gap = if nth > 0 { "\n" } else { "" };
                let id = match &cli.host_label {
                    Some(h) => format!("{id}@{h}"),
                    None => id.to_string(),
                };
                writeln!(out, "{gap}==> {id} <==")?;
            }
            crate::screen::print(&session, &mut out)?;
        }
        out.flush()?;
        return Ok(0);
    }
    let mut sources = Vec::new();
    for id in ids {
        let dir = root.session_dir(&id);
        // A session whose record cannot be read (corrupt, of a newer
        // format, or a symlink out of the root) is not read at all.
        let session = Session::load(id.clone(), dir.clone());
        let opened = match &session.record {
            Err(e) => Err(anyhow!("{id} cannot be read: {e}")),
            Ok(_) => {
                Source::open(id.clone(), dir).with_context(|| format!("opening the output of {id}"))
            }
        };
        match opened {
            Ok(source) => sources.push(source),
            Err(e) => fail(e)?,
        }
    }
    if sources.is_empty() {
        if let Some(e) = failed {
            return Err(e.context("no session left to read").into());
        }
    }
    let status = tail(cli, &mut sources, &window)?;
    Ok(match failed {
        // Something failed: with -f, codex-tail's own failure (125) unless
        // a session's own exit code says more; without, 1.
        Some(_) if cli.follow => {
            if status == 0 {
                125
            } else {
                status
            }
        }
        Some(_) => 1,
        None => status,
    })
}

/// The last nanosecond of the millisecond `t` falls in, when `t` names a
/// whole millisecond (as every time codex-tail prints does).
fn end_of_millisecond(t: Timestamp) -> Timestamp {
    if t.0 % 1_000_000 == 0 {
        Timestamp(t.0 + 999_999)
    } else {
        t
    }
}

/// Prints the ends of `sources` and follows them as `cli` asks; the exit
/// status.
fn tail(cli: &Cli, sources: &mut [Source], window: &Window) -> Result<i32, Failure> {
    let colour = ::cli::term::colour(&io::stdout());
    let prefix = sources.len() > 1 || cli.host_label.is_some();
    let mut printer = Printer::new(cli.json, cli.timestamps, prefix, colour);
    let window = *window;
    printer.raw = cli.raw;
    printer.host = cli.host_label.clone();
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
        let renders = printer.renders(nth);
        let mut failed = None;
        match (cli.bytes, cli.lines) {
            (Some(n), _) => source.last_bytes(n, &window, &mut |stream, bytes| {
                if failed.is_none() {
                    failed = printer.raw(stream, bytes).err();
                }
            })?,
            // Rendered, `-n N` is N lines of what people see, not N events.
            (None, Lines::Last(n)) if renders => {
                for line in last_shown(source, &printer, nth, n, &window, cli.follow)? {
                    printer.shown(&id, nth, &line)?;
                }
            }
            (None, lines) => {
                let mut print = |line: Line| {
                    if failed.is_none() {
                        failed = printer.line(&id, nth, &line).err();
                    }
                };
                match lines {
                    Lines::Last(n) => source.last_lines_each(n, &window, cli.follow, &mut print)?,
                    Lines::From(first) => {
                        source.lines_from(first, &window, cli.follow, &mut print)?
                    }
                }
                if renders && !cli.follow && failed.is_none() {
                    if let Some(line) = closing_line(source) {
                        printer.shown(&id, nth, &line)?;
                    }
                }
            }
        }
        if let Some(e) = failed {
            return Err(e.into());
        }
    }
    printer.flush()?;
    if cli.follow {
        return Ok(follow(sources, &mut printer, &window)?);
    }
    Ok(0)
}

/// The last `n` lines the `nth` session shows rendered: events are read
/// back from the end, twice as many each time, until they render to `n`
/// lines or the log is read whole. An ended session that was killed or
/// timed out closes with a line saying so.
fn last_shown(
    source: &mut Source,
    printer: &Printer,
    nth: usize,
    n: usize,
    window: &Window,
    follow: bool,
) -> anyhow::Result<Vec<Line>> {
    let closing: Vec<Line> = if follow {
        Vec::new()
    } else {
        closing_line(source).into_iter().collect()
    };
    let want = n.saturating_sub(closing.len());
    let mut events = want.max(1);
    let mut shown = loop {
        let lines = source.last_lines(events, window, follow)?;
        let shown: Vec<Line> = lines.iter().flat_map(|l| printer.display(nth, l)).collect();
        if shown.len() >= want || lines.len() < events {
            break shown;
        }
        events = events.saturating_mul(2);
    };
    shown.drain(..shown.len().saturating_sub(want));
    shown.extend(closing.into_iter().take(n));
    Ok(shown)
}

/// The line closing the rendered view of `source`'s session when it was
/// killed or timed out (see [`render::closing`]).
pub fn closing_line(source: &Source) -> Option<Line> {
    let session = Session::load(source.id.clone(), source.dir.clone());
    if !session.status.is_over() {
        return None;
    }
    let text = render::closing(session.record.as_deref().ok()?)?;
    Some(Line::new(
        shared::layout::Stream::Stdout,
        text.into_bytes(),
        None,
        false,
    ))
}
