//! `codex-attach ID@DEST`: the codex-attach of DEST, run through `ssh -t`
//! with this terminal. ssh puts the terminal in raw mode and passes every
//! byte on (its escape character is off, see `cli::ssh`), forwards window
//! size changes, and restores the terminal when it ends; the remote
//! codex-attach does the rest as it does locally (detach keys, redraw,
//! restoring what the program changed).
//!
//! ssh's own failures exit 255, as does a session that exits 255 while
//! attached, and a terminal carries no trailer (see `cli::ssh`): on 255
//! (and on 127, a missing remote tool) DEST is asked again, without a
//! terminal, to tell them apart.

use std::ffi::OsString;

use ::cli::host::for_remote;
use ::cli::{ssh, Failure};
use anyhow::anyhow;
use clap::CommandFactory;

use crate::cli::Cli;

/// Attaches to the session on `dest`; returns the remote codex-attach's
/// exit status (the session's exit code when it ended while attached).
pub fn attach(cli: &Cli, dest: &str) -> Result<i32, Failure> {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let args = for_remote(&Cli::command(), &args);
    let status = ssh::interactive(dest, "codex-attach", &args)?;
    let Some(code) = status.code() else {
        return Err(anyhow!("ssh to {dest} was killed by a signal").into());
    };
    if code != 255 && code != 127 {
        return Ok(code);
    }
    // Is codex-attach there at all? (A missing tool is a one-line error.)
    ssh::capture(dest, "codex-attach", &["--version".into()], None).outcome?;
    if code == 127 {
        return Ok(code);
    }
    // 255: the session's own code only if it did end with 255.
    let exited_255 = cli.selector.as_ref().is_some_and(|id| {
        let out = ssh::capture(
            dest,
            "codex-ps",
            &["--json".into(), "--".into(), id.into()],
            None,
        );
        let line = String::from_utf8_lossy(&out.stdout).into_owned();
        out.outcome.is_ok_and(|c| c == 0)
            && serde_json::from_str::<serde_json::Value>(line.trim())
                .is_ok_and(|v| v["status"] == "exited" && v["exit_code"] == 255)
    });
    if exited_255 {
        Ok(255)
    } else {
        Err(anyhow!("the connection to {dest} failed (ssh exited 255)").into())
    }
}
