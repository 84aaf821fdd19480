//! Sessions of other hosts: `ID@DEST` (or plain ids with `-H DEST`) are
//! removed by DEST's codex-rm, one ssh call per host (the ids on its
//! stdin), the hosts in parallel. Each id removed there is printed as
//! `ID@DEST` (with `--json`, the line gets a `host` field).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{self, Write};
use std::thread;

use ::cli::host::{qualified, split_selector};
use ::cli::{ssh, Dest, Failure};

use crate::cli::Cli;

/// Selectors of other hosts, by ssh destination.
pub type ByHost = BTreeMap<String, Vec<String>>;

/// Splits `selectors` into this host's and, by host, the others'.
pub fn split(cli: &Cli, selectors: Vec<String>) -> Result<(Vec<String>, ByHost), Failure> {
    let mut local = Vec::new();
    let mut remote = ByHost::new();
    let mut default: Option<Dest> = None;
    for s in selectors {
        let dest = match split_selector(&s) {
            // Not a selector at all: reported in its turn, here.
            Err(_) => {
                local.push(s);
                continue;
            }
            Ok((sel, Some(d))) => (sel.to_string(), d),
            Ok((sel, None)) => {
                if default.is_none() {
                    default = Some(cli.host.one()?);
                }
                (sel.to_string(), default.clone().expect("set above"))
            }
        };
        match dest {
            (sel, Dest::Local) => local.push(sel),
            (sel, Dest::Remote(d)) => remote.entry(d).or_default().push(sel),
        }
    }
    Ok((local, remote))
}

/// Removes the sessions of `remote` on their hosts; whether all went well.
pub fn remove(cli: &Cli, remote: &ByHost) -> bool {
    let mut args: Vec<OsString> = Vec::new();
    if cli.force {
        args.push("--force".into());
    }
    if cli.stop {
        args.push("--stop".into());
    }
    if cli.force || cli.stop {
        args.push(format!("--grace={}ms", cli.grace.as_millis()).into());
    }
    if cli.json {
        args.push("--json".into());
    }
    args.push("-".into());
    let answers: Vec<(&String, ssh::Captured)> = thread::scope(|scope| {
        let handles: Vec<_> = remote
            .iter()
            .map(|(dest, ids)| {
                let args = &args;
                let input = ids.join("\n").into_bytes();
                (
                    dest,
                    scope.spawn(move || ssh::capture(dest, "codex-rm", args, Some(input))),
                )
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|(d, h)| h.join().ok().map(|c| (d, c)))
            .collect()
    });
    let mut all_ok = answers.len() == remote.len();
    let mut out = io::stdout().lock();
    for (dest, answer) in answers {
        let code = match answer.outcome {
            Ok(code) => code,
            Err(e) => {
                eprintln!("codex-rm: {}", ::cli::text::line(&format!("{e:#}")));
                all_ok = false;
                continue;
            }
        };
        all_ok &= code == 0;
        let host = Dest::Remote(dest.clone());
        for line in String::from_utf8_lossy(&answer.stdout).lines() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let shown = if cli.json {
                match line.strip_prefix('{') {
                    Some(rest) => format!(
                        "{{\"host\":{},{rest}",
                        serde_json::to_string(dest).expect("a string serializes")
                    ),
                    None => continue,
                }
            } else {
                qualified(&::cli::text::line(line), &host)
            };
            let _ = writeln!(out, "{shown}");
        }
        let _ = out.flush();
        ssh::relay_stderr("codex-rm", dest, &answer.stderr);
    }
    all_ok
}
