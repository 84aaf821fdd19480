//! The command line of codex-rm.

use std::io::{self, IsTerminal};
use std::time::Duration;

use ::cli::complete::{sessions, Sessions};
use ::cli::usage::duration;
use ::cli::{Failure, HostArg, RootArg, Tool};
use clap::Parser;
use shared::Selector;

/// Stop and remove background sessions.
///
/// Takes ids and unique id prefixes (not row numbers, which shift with every
/// spawn). With no SELECTOR, or `-`, reads ids from stdin, whitespace
/// separated: `codex-ps -q -f status=exited | codex-rm`.
#[derive(Debug, Parser)]
#[command(
    name = "codex-rm",
    version,
    after_help = "Exit status: 0 all removed; 1 any failed (the others are still removed); 2 usage error."
)]
pub struct Cli {
    /// Sessions to remove: ids or unique id prefixes (ID@DEST on another host); `-` reads them from stdin.
    #[arg(value_name = "SELECTOR", add = sessions(Sessions::All))]
    pub selectors: Vec<String>,

    #[command(flatten)]
    pub root: RootArg,

    #[command(flatten)]
    pub host: HostArg,

    /// Stop running and starting sessions first, kill what a lost one left running, and remove a worktree holding uncommitted work (committing what it can first).
    #[arg(short, long)]
    pub force: bool,

    /// Stop sessions as --force does, but keep their records and logs (as `docker stop`): a stopped session reads `killed SIGTERM`; a queued one leaves its queue, never having run.
    #[arg(long, conflicts_with = "force")]
    pub stop: bool,

    /// With --force or --stop: how long the command has between SIGTERM and SIGKILL.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub grace: Duration,

    /// Also delete the branch codex/ID of a --worktree session, if all its commits are merged into its base.
    #[arg(long)]
    pub branch: bool,

    /// Print one JSON object per session: {"id","removed","stopped","error"}.
    #[arg(long)]
    pub json: bool,
}

impl Tool for Cli {
    /// Selectors given as arguments are checked before stdin is read or
    /// anything is removed; ids read from stdin are checked one by one, as
    /// they come.
    fn check(&self) -> Result<(), Failure> {
        if self.selectors.is_empty() && io::stdin().is_terminal() {
            return Err(Failure::usage(
                "no session given: name ids as arguments, or pipe them in (codex-ps -q | codex-rm)",
            ));
        }
        for s in self.selectors.iter().filter(|s| *s != "-") {
            let (s, _) = ::cli::host::split_selector(s).map_err(Failure::usage)?;
            Selector::parse(s, false).map_err(Failure::usage)?;
        }
        Ok(())
    }
}
