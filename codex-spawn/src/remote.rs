//! `codex-spawn --host DEST …`: the same codex-spawn, run on DEST through
//! ssh, which prints `ID@DEST`.
//!
//! The remote codex-spawn gets this command line without `-H/--host`; an
//! exec prompt travels on ssh's stdin (the remote command line says
//! `exec -`), never on a command line of either host. `-C` names a
//! directory there; without it the session runs in the remote login
//! directory. Nothing of this host's environment goes along (`$CODEX_BIN`
//! included): the remote codex-spawn uses its own.

use std::ffi::OsString;
use std::io::{self, Read, Write};

use ::cli::host::{qualified, strip_host_args};
use ::cli::ssh;
use ::cli::{Dest, Failure};
use anyhow::Context;
use clap::CommandFactory;

use crate::cli::{Cli, Mode};

/// Starts the session on `dest`; returns the remote codex-spawn's status.
pub fn spawn(cli: &Cli, dest: &str) -> Result<i32, Failure> {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let (mut remote_args, rest) = strip_host_args(&Cli::command(), &args);
    let mut input = None;
    match &cli.mode {
        Some(mode @ Mode::Exec { .. }) => {
            let (codex, resume) = mode.codex_args()?;
            let prompt = codex.prompt.clone().unwrap_or_default();
            input = Some(if prompt == "-" {
                let mut p = Vec::new();
                io::stdin()
                    .lock()
                    .read_to_end(&mut p)
                    .context("reading the prompt from stdin")?;
                p
            } else {
                prompt.into_bytes()
            });
            remote_args.push("exec".into());
            if let Some(r) = resume {
                remote_args.push(format!("--resume={r}").into());
            }
            remote_args.push("-".into());
            remote_args.extend(codex.recorded_words().into_iter().map(OsString::from));
        }
        _ => remote_args.extend(rest),
    }
    let out = ssh::capture(dest, "codex-spawn", &remote_args, input);
    // Without a status from codex-spawn there, its stderr is ssh's (or
    // the shell's), which the error quotes.
    let code = out.outcome?;
    ssh::relay_stderr("codex-spawn", dest, &out.stderr);
    if code != 0 {
        return Ok(code);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next().unwrap_or("").trim();
    let dest = Dest::Remote(dest.to_string());
    let shown = if cli.options.json {
        let mut view: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line)
            .with_context(|| {
                format!("{dest}: codex-spawn --json printed something else than a session")
            })?;
        view.insert("host".into(), dest.name().into());
        serde_json::to_string(&view).expect("a map always serializes")
    } else {
        shared::SessionId::parse(line)
            .with_context(|| format!("{dest}: codex-spawn printed no session id"))?;
        qualified(line, &dest)
    };
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{shown}")?;
    stdout.flush()?;
    Ok(0)
}
