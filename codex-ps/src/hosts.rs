//! Listing several hosts: each asked in parallel (a thread per host; this
//! host read in-process, the others through `ssh DEST codex-ps --json`),
//! the rows merged newest first with the host they are on.
//!
//! Selectors `ID@DEST` go to their host (and bring it into the listing);
//! plain selectors and filters go to every host, which applies them as
//! it would alone. `-n N` keeps the N newest of the merged rows. A host
//! that cannot be asked is one warning line; the others are still listed
//! and the exit status is 1.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{self, Write};
use std::thread;

use ::cli::host::{qualified, split_selector};
use ::cli::{ssh, Dest, Failure};
use anyhow::anyhow;
use clap::CommandFactory;
use serde::Deserialize;
use shared::agent::Agent;
use shared::units::human_size;
use shared::view::View;
use shared::Timestamp;
use tabled::builder::Builder;
use unicode_width::UnicodeWidthStr;

use crate::cli::Cli;

/// Whether `cli` asks for hosts at all: `-H`, `$CODEX_HOST`, or a selector
/// `ID@DEST`.
pub fn wanted(cli: &Cli) -> bool {
    cli.host.given() || cli.selectors.iter().any(|s| s.contains('@'))
}

/// One host's answer: its rows as JSON lines, or why there are none.
struct Answer {
    dest: Dest,
    lines: anyhow::Result<Vec<String>>,
    /// What it said on stderr (warnings, errors), to relay.
    said: Vec<u8>,
}

/// What the table and the merge need of a row.
#[derive(Debug, Deserialize)]
struct Row {
    index: Option<usize>,
    id: String,
    kind: Option<String>,
    status: String,
    exit_code: Option<i32>,
    signal: Option<String>,
    #[serde(default)]
    timed_out: bool,
    pid: Option<i32>,
    created_at: Option<Timestamp>,
    #[serde(default)]
    argv: Vec<String>,
    prompt: Option<String>,
    continues: Option<String>,
    #[serde(default)]
    stdout_bytes: u64,
    #[serde(default)]
    stderr_bytes: u64,
    agent: Option<Agent>,
}

/// Lists the hosts `cli` names.
pub fn run(cli: Cli) -> Result<i32, Failure> {
    let mut plain = Vec::new();
    let mut named: BTreeMap<Dest, Vec<String>> = BTreeMap::new();
    for s in &cli.selectors {
        let (sel, dest) = split_selector(s).map_err(Failure::usage)?;
        match dest {
            Some(d) => named.entry(d).or_default().push(sel.to_string()),
            None => plain.push(sel.to_string()),
        }
    }
    let mut dests = if cli.host.given() || named.is_empty() {
        cli.host.hosts()?
    } else {
        Vec::new()
    };
    for d in named.keys() {
        if !dests.contains(d) {
            dests.push(d.clone());
        }
    }
    // With selectors given, a host is asked only for those meant for it.
    let asked: Vec<(Dest, Vec<String>)> = dests
        .into_iter()
        .filter_map(|d| {
            let mut sels = plain.clone();
            sels.extend(named.get(&d).into_iter().flatten().cloned());
            (cli.selectors.is_empty() || !sels.is_empty()).then_some((d, sels))
        })
        .collect();
    let filters: Vec<String> = raw_filters();

    let answers: Vec<Answer> = thread::scope(|scope| {
        let handles: Vec<_> = asked
            .iter()
            .map(|(dest, sels)| {
                let (cli, filters) = (&cli, &filters);
                scope.spawn(move || ask(cli, dest, sels, filters))
            })
            .collect();
        handles
            .into_iter()
            .zip(&asked)
            .map(|(h, (dest, _))| {
                h.join().unwrap_or_else(|_| Answer {
                    dest: dest.clone(),
                    lines: Err(anyhow!("listing it failed")),
                    said: Vec::new(),
                })
            })
            .collect()
    });

    let mut failed = false;
    let mut rows: Vec<(usize, Row, String, &Dest)> = Vec::new();
    for (n, answer) in answers.iter().enumerate() {
        if !answer.said.is_empty() {
            ssh::relay_stderr("codex-ps", answer.dest.name(), &answer.said);
        }
        match &answer.lines {
            Ok(lines) => {
                for line in lines {
                    match serde_json::from_str::<Row>(line) {
                        Ok(row) => rows.push((n, row, line.clone(), &answer.dest)),
                        Err(e) => {
                            failed = true;
                            warn(&answer.dest, &format!("a line that is not a session: {e}"));
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                // The error names the host.
                failed = true;
                eprintln!(
                    "codex-ps: warning: {}",
                    ::cli::text::line(&format!("{e:#}"))
                );
            }
        }
    }
    // Newest first across hosts; the hosts' order breaks ties.
    rows.sort_by(|a, b| b.1.created_at.cmp(&a.1.created_at).then(a.0.cmp(&b.0)));
    if let Some(n) = cli.last {
        rows.truncate(n);
    }

    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    if cli.quiet {
        for (_, row, _, dest) in &rows {
            writeln!(out, "{}", qualified(&::cli::text::line(&row.id), dest))?;
        }
    } else if cli.json {
        for (_, _, line, dest) in &rows {
            // The host first, then the host's own object as it printed it.
            let rest = line.trim().strip_prefix('{').unwrap_or("}");
            let sep = if rest.trim_start().starts_with('}') {
                ""
            } else {
                ","
            };
            let host = serde_json::to_string(dest.name()).expect("a string serializes");
            writeln!(out, "{{\"host\":{host}{sep}{rest}")?;
        }
    } else {
        let width = if cli.no_trunc {
            None
        } else {
            ::cli::term::size(io::stdout()).map(|(cols, _)| usize::from(cols))
        };
        out.write_all(table(&rows, width).as_bytes())?;
    }
    out.flush()?;
    Ok(i32::from(failed))
}

fn warn(dest: &Dest, what: &str) {
    let line = ::cli::text::line(&format!("{dest}: {what}"));
    eprintln!("codex-ps: warning: {line}");
}

/// The `-f` values as given: each host applies them itself.
fn raw_filters() -> Vec<String> {
    Cli::command()
        .try_get_matches_from(std::env::args_os())
        .ok()
        .and_then(|m| {
            m.get_raw("filters")
                .map(|v| v.map(|s| s.to_string_lossy().into_owned()).collect())
        })
        .unwrap_or_default()
}

/// Asks one host for its rows.
fn ask(cli: &Cli, dest: &Dest, selectors: &[String], filters: &[String]) -> Answer {
    match dest {
        Dest::Local => Answer {
            dest: dest.clone(),
            lines: local(cli, selectors),
            said: Vec::new(),
        },
        Dest::Remote(d) => {
            let mut args: Vec<OsString> = vec!["--json".into()];
            for f in filters {
                args.push("-f".into());
                args.push(f.into());
            }
            if let Some(n) = cli.last {
                args.push(format!("--last={n}").into());
            }
            if !selectors.is_empty() {
                args.push("--".into());
                args.extend(selectors.iter().map(OsString::from));
            }
            let out = ssh::capture(d, "codex-ps", &args, None);
            // Without a status from codex-ps there, its stderr is ssh's
            // (or the shell's), which the error already quotes.
            let said = if out.outcome.is_ok() {
                out.stderr
            } else {
                Vec::new()
            };
            let lines = out.outcome.and_then(|code| {
                if code != 0 {
                    return Err(anyhow!("codex-ps on {d} failed (exit status {code})"));
                }
                Ok(String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(str::to_string)
                    .collect())
            });
            Answer {
                dest: dest.clone(),
                lines,
                said,
            }
        }
    }
}

/// This host's rows, as `codex-ps --json` prints them.
fn local(cli: &Cli, selectors: &[String]) -> anyhow::Result<Vec<String>> {
    let (selectors, sessions) = crate::list::load(cli, selectors)?;
    let rows = crate::list::pick(cli, &selectors, &sessions)?;
    Ok(rows
        .into_iter()
        .map(|(i, s)| serde_json::to_string(&View::new(s, Some(i))).expect("a view serializes"))
        .collect())
}

const HEADER: [&str; 10] = [
    "HOST", "#", "ID", "PID", "TYPE", "STATUS", "OUT", "ERR", "CREATED", "PROMPT",
];

/// The table of several hosts: the single-host table with HOST first.
/// Everything a host sent is shown escaped (it is session data, and the
/// host may be anyone's).
fn table(rows: &[(usize, Row, String, &Dest)], width: Option<usize>) -> String {
    let dash = || "-".to_string();
    let esc = |s: &str| ::cli::text::line(s);
    let mut cells: Vec<[String; 10]> = rows
        .iter()
        .map(|(_, r, _, dest)| {
            [
                esc(dest.name()),
                r.index.map_or_else(dash, |i| i.to_string()),
                esc(&r.id),
                r.pid.map_or_else(dash, |p| p.to_string()),
                r.kind.as_deref().map_or_else(dash, esc),
                esc(&status_text(r)),
                human_size(r.stdout_bytes),
                human_size(r.stderr_bytes),
                r.created_at.map_or_else(dash, |t| t.to_rfc3339_secs()),
                esc(&prompt_cell(r)),
            ]
        })
        .collect();
    if let Some(width) = width {
        let used: usize = (0..9)
            .map(|c| {
                cells
                    .iter()
                    .map(|r| r[c].width())
                    .max()
                    .unwrap_or(0)
                    .max(HEADER[c].len())
                    + 3
            })
            .sum();
        let room = width.saturating_sub(used).max(10);
        for row in &mut cells {
            row[9] = crate::table::cut(&row[9], room);
        }
    }
    let mut builder = Builder::with_capacity(cells.len() + 1, HEADER.len());
    builder.push_record(HEADER.map(String::from));
    for row in cells {
        builder.push_record(row);
    }
    crate::table::finish(builder)
}

/// STATUS as the single-host table shows it.
fn status_text(r: &Row) -> String {
    match r.status.as_str() {
        "exited" if r.timed_out => "timed out".into(),
        "exited" => match (&r.signal, r.exit_code) {
            (Some(sig), _) => format!("killed {sig}"),
            (None, Some(code)) => format!("exited {code}"),
            _ => "exited".into(),
        },
        other => other.into(),
    }
}

/// PROMPT as the single-host table shows it (the agent's state and last
/// message, the prompt's first line, or the command line).
fn prompt_cell(r: &Row) -> String {
    let first_line = |s: &str| s.lines().next().unwrap_or("").to_string();
    if let Some(agent) = &r.agent {
        let text = match agent.state {
            shared::agent::AgentState::Failed => agent
                .last_error
                .as_deref()
                .or(agent.last_message.as_deref()),
            _ => agent.last_message.as_deref(),
        }
        .or(r.prompt.as_deref())
        .unwrap_or("");
        let after = r
            .continues
            .as_deref()
            .map_or_else(String::new, |id| format!("after {id} · "));
        return format!("{after}{}: {}", agent.state.as_str(), first_line(text));
    }
    match &r.prompt {
        Some(p) => first_line(p),
        None => r
            .argv
            .iter()
            .map(|w| shlex::try_quote(w).map_or_else(|_| w.clone(), |q| q.into_owned()))
            .collect::<Vec<_>>()
            .join(" "),
    }
}
