//! `--rerun SELECTOR`: a new session that runs what an earlier one ran
//! (its kind, command or whole prompt, directory, labels and options),
//! with the options given beside `--rerun` winning. `--env` values were
//! never recorded, so their names are reported as not restored.

use std::io::Read;

use anyhow::{anyhow, Context};
use shared::record::{Kind, Record};
use shared::{layout, Access, Selector};

use crate::cli::{Cli, Mode};

/// What the earlier session gives that options cannot carry.
pub struct Rerun {
    /// The earlier session's whole prompt (exec and repl).
    pub prompt: Option<Vec<u8>>,
    /// `--env` names of the earlier session that this one does not set.
    pub env_not_restored: Vec<String>,
}

/// Fills `cli` in from the session `--rerun` names, if given.
pub fn apply(cli: &mut Cli) -> anyhow::Result<Option<Rerun>> {
    let Some(selector) = cli.options.rerun.take() else {
        return Ok(None);
    };
    let root = cli.options.root.open(Access::Read)?;
    let id = root
        .resolve(&Selector::parse(&selector, true)?)
        .context("finding the session to run again")?;
    let dir = root.session_dir(&id);
    let earlier = Record::read(&dir).with_context(|| format!("reading the record of {id}"))?;
    let prompt = match earlier.kind {
        Kind::Cmd => None,
        _ => Some(read_prompt(&dir).with_context(|| format!("reading the prompt of {id}"))?),
    };
    // The prompt comes from the earlier session's file (see `Rerun`); `-`
    // holds its place, before the words that follow a `--`.
    let mut words = earlier.codex_options.clone();
    let at = words.iter().position(|w| w == "--").unwrap_or(words.len());
    if earlier.kind == Kind::Exec {
        words.insert(at, "-".into());
    }
    cli.mode = match earlier.kind {
        Kind::Cmd => {
            cli.command = earlier.argv.clone();
            None
        }
        Kind::Exec => Some(Mode::Exec {
            resume: earlier.continues.clone(),
            args: words,
        }),
        Kind::Repl => Some(Mode::Repl { args: words }),
    };
    let o = &mut cli.options;
    o.cwd.get_or_insert_with(|| earlier.cwd.clone().into());
    if earlier.kind == Kind::Cmd {
        o.tty |= earlier.tty;
        o.stdin |= earlier.stdin && !earlier.tty;
    }
    if o.size.is_none() && earlier.kind != Kind::Exec {
        o.size = earlier.size.map(|[c, r]| (c, r));
    }
    if o.timeout.is_none() {
        o.timeout = earlier.timeout_ms.map(std::time::Duration::from_millis);
    }
    o.max_log_size = o.max_log_size.or(earlier.max_log_size);
    o.queue = o.queue.take().or(earlier.queue.clone());
    let given: Vec<String> = o.labels.iter().map(|(k, _)| k.clone()).collect();
    let mut labels: Vec<(String, String)> = earlier
        .labels
        .into_iter()
        .filter(|(k, _)| !given.contains(k))
        .collect();
    labels.append(&mut o.labels);
    o.labels = labels;
    let env_not_restored = earlier
        .env
        .into_iter()
        .filter(|k| !o.env.iter().any(|(given, _)| given == k))
        .collect();
    Ok(Some(Rerun {
        prompt,
        env_not_restored,
    }))
}

fn read_prompt(dir: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    match shared::files::open_nofollow(&dir.join(layout::PROMPT)) {
        Ok(mut f) => {
            f.read_to_end(&mut buf)?;
            Ok(buf)
        }
        // A repl started without a prompt has none.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(anyhow!(e)),
    }
}
