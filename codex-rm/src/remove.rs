//! Removing each selected session, going on past failures.

use std::collections::HashMap;
use std::io::{self, Write};

use anyhow::{anyhow, Context};
use serde::Serialize;

use shared::lock;
use shared::select::find_id;
use shared::{Access, Root, Selector, Session, SessionId, Status};

use ::cli::Failure;

use crate::cli::Cli;
use crate::{input, stop, work};

/// What happened to one session (the `--json` line).
#[derive(Debug, Serialize)]
struct Outcome {
    id: String,
    removed: bool,
    stopped: bool,
    error: Option<String>,
}

/// Removes every session `cli` names, those of other hosts through one
/// ssh call per host. Exits 1 if any failed.
pub fn run(cli: Cli) -> Result<i32, Failure> {
    let cli = &cli;
    let (local, remote) = crate::hosts::split(cli, input::selectors(cli)?)?;
    let mut all_ok = crate::hosts::remove(cli, &remote);
    if !local.is_empty() || remote.is_empty() {
        all_ok &= remove_here(cli, local)? == 0;
    }
    Ok(if all_ok { 0 } else { 1 })
}

/// Removes the sessions of this host that `selectors` name.
fn remove_here(cli: &Cli, selectors: Vec<String>) -> Result<i32, Failure> {
    let root = cli.root.open(Access::Read)?;
    let mut ids: Vec<String> = root
        .ids()
        .with_context(|| format!("listing {}", root.path().display()))?
        .into_iter()
        .map(|id| id.to_string())
        .collect();
    ids.sort_unstable();

    // With -f and several sessions, every live one is asked to stop first,
    // so that they all stop at once rather than one grace after another.
    let mut asked = HashMap::new();
    if (cli.force || cli.stop) && selectors.len() > 1 {
        for selector in &selectors {
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let Some(id) = Selector::parse(selector, false)
                .ok()
                .and_then(|_| find_id(selector, &refs).ok())
                .and_then(|i| SessionId::parse(&ids[i]).ok())
            else {
                continue; // reported in its turn below
            };
            if asked.contains_key(id.as_str()) {
                continue; // named twice: a second request would kill at once
            }
            let session = Session::load(id.clone(), root.session_dir(&id));
            if matches!(
                session.status,
                Status::Running | Status::Starting | Status::Queued
            ) {
                if let Ok(Some(request)) = stop::ask_to_stop(&session, cli.grace) {
                    asked.insert(id.to_string(), request);
                }
            }
        }
    }

    let mut all_ok = true;
    let mut out = io::stdout().lock();
    for selector in selectors {
        let mut outcome = Outcome {
            id: selector.clone(),
            removed: false,
            stopped: false,
            error: None,
        };
        let result = remove_one(&root, &ids, &selector, cli, &mut asked, &mut outcome);
        if let Err(e) = &result {
            all_ok = false;
            eprintln!("codex-rm: {}", ::cli::text::line(&format!("{e:#}")));
            outcome.error = Some(format!("{e:#}"));
        }
        // A closed stdout does not stop the removals.
        let _ = if cli.json {
            serde_json::to_writer(&mut out, &outcome)
                .map_err(io::Error::from)
                .and_then(|()| writeln!(out))
        } else if outcome.removed || (cli.stop && result.is_ok()) {
            writeln!(out, "{}", outcome.id)
        } else {
            Ok(())
        };
        let _ = out.flush();
    }
    // What a codex-spawn killed mid-creation left: invisible to every
    // listing, so reclaimed here, quietly and at no risk to live sessions.
    let _ = root.sweep_staging();
    Ok(if all_ok { 0 } else { 1 })
}

fn remove_one(
    root: &Root,
    ids: &[String],
    selector: &str,
    cli: &Cli,
    asked: &mut HashMap<String, stop::Asked>,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    Selector::parse(selector, false)?;
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let index = find_id(selector, &refs)?;
    let id = SessionId::parse(&ids[index])?;
    outcome.id = id.to_string();
    // Asked to stop already (see `run`): stopped, whatever it reads as now.
    let mut request = asked.remove(id.as_str());
    let force = cli.force || cli.stop;
    outcome.stopped = request.is_some();
    let session = Session::load(id.clone(), root.session_dir(&id));
    match session.status {
        // A queued session leaves its queue: it has nothing running yet,
        // so no -f is needed.
        Status::Queued => {
            match request.take() {
                Some(request) => stop::wait_stopped(&session, request, cli.grace),
                None => stop::stop_live(&session, cli.grace),
            }
            .with_context(|| format!("taking {id} out of its queue"))?;
        }
        Status::Running | Status::Starting if !force => {
            return Err(anyhow!("{id} is {} (use -f to stop it)", session.status));
        }
        Status::Running | Status::Starting => {
            match request.take() {
                Some(request) => stop::wait_stopped(&session, request, cli.grace),
                None => stop::stop_live(&session, cli.grace),
            }
            .with_context(|| format!("stopping {id}"))?;
            outcome.stopped = true;
        }
        Status::Lost if force => {
            outcome.stopped |= stop::kill_leftovers(&session, cli.grace)
                .with_context(|| format!("killing what {id} left running"))?;
        }
        Status::Lost => {
            let left = stop::leftovers(&session).with_context(|| format!("checking {id}"))?;
            if !left.is_empty() {
                return Err(anyhow!(
                    "{id} is lost but {} of its processes still run (use -f to kill them)",
                    left.len()
                ));
            }
        }
        // Unreadable, yet something holds its lock: a live supervisor
        // whose record was damaged. Removing the directory would leave it
        // running, out of every tool's reach.
        Status::Corrupt
            if is_real_dir(&session.dir) && lock::is_held(&session.dir).unwrap_or(false) =>
        {
            if !force {
                return Err(anyhow!(
                    "{id} is corrupt but still running (use -f to stop it)"
                ));
            }
            stop::stop_lock_holders(&session, cli.grace)
                .with_context(|| format!("stopping {id}"))?;
            outcome.stopped = true;
        }
        Status::Exited | Status::Failed | Status::Corrupt => {}
    }
    if cli.stop {
        // Stopped (or ended already): kept, record and logs.
        return Ok(());
    }
    let worktree = work::reclaim(&session, cli.force)
        .with_context(|| format!("removing the worktree of {id}"))?;
    root.remove_session(&id)
        .with_context(|| format!("removing {id}"))?;
    outcome.removed = true;
    if let Some(w) = worktree.filter(|_| cli.branch) {
        work::delete_branch(&w).with_context(|| format!("{id}"))?;
    }
    Ok(())
}

/// Whether `dir` is a directory and not a symlink to one: the lock of a
/// directory a link points at is not this session's.
fn is_real_dir(dir: &std::path::Path) -> bool {
    std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir())
}
