//! The command line of codex-ps.

use ::cli::complete::{sessions, Sessions};
use ::cli::usage::{count, duration};
use ::cli::{Codes, Failure, HostArg, RootArg, Tool};
use clap::{ArgMatches, Parser};
use shared::Selector;
use std::time::Duration;

use crate::filter::Filter;
use crate::wait::Until;

/// List background sessions, newest first.
///
/// Row numbers (#) count from 0 for the newest session and stay the same
/// when filters hide rows, so other tools can take them as selectors.
#[derive(Debug, Parser)]
#[command(
    name = "codex-ps",
    version,
    after_help = "Filters: status=queued|starting|running|exited|failed|lost|corrupt, kind=exec|repl|cmd, label=KEY, label=KEY=VALUE, exit=N, state=working|idle|blocked|done|failed, since=T, until=T (RFC 3339 or a duration ago: 7d), name=GLOB.\nExit status: 0 listed (even with corrupt sessions); 1 failure; 2 usage error.\nWith --wait: 0 if every session exited 0; for one session (or --wait=any) its exit code, as codex-tail -f; else 1 if any did not exit 0 (or ended without an exit code); 124 the --timeout ran out; 125 codex-ps's own failure or a usage error."
)]
pub struct Cli {
    /// Sessions to show: ids, unique id prefixes, or row numbers, each as ID@DEST for a session of another host [default: all].
    #[arg(value_name = "SELECTOR", add = sessions(Sessions::All))]
    pub selectors: Vec<String>,

    #[command(flatten)]
    pub root: RootArg,

    #[command(flatten)]
    pub host: HostArg,

    /// Print ids only, one per line.
    #[arg(short, long, conflicts_with = "json")]
    pub quiet: bool,

    /// Print one JSON object per session per line.
    #[arg(long)]
    pub json: bool,

    /// Show only sessions matching KEY=VALUE (repeatable; all must match).
    #[arg(short, long = "filter", value_name = "KEY=VALUE", value_parser = Filter::parse)]
    pub filters: Vec<Filter>,

    /// Show only the N newest sessions (after filtering).
    #[arg(short = 'n', long = "last", value_name = "N", value_parser = count::<usize>)]
    pub last: Option<usize>,

    /// Do not cut the PROMPT column to the terminal's width.
    #[arg(long)]
    pub no_trunc: bool,

    /// Wait until the sessions listed have ended (all, or any one), then list them; the exit status says how they ended.
    #[arg(
        long,
        value_name = "all|any",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "all"
    )]
    pub wait: Option<Until>,

    /// With --wait: give up after DURATION, such as 90s or 10m (exit 124).
    #[arg(long, value_name = "DURATION", value_parser = duration, requires = "wait")]
    pub timeout: Option<Duration>,
}

impl Tool for Cli {
    /// With --wait, the exit status is the sessions': codex-ps's own
    /// failures are 125, as codex-tail -f's.
    fn codes(matches: &ArgMatches) -> Codes {
        match matches.try_get_raw("wait") {
            Ok(Some(_)) => Codes::PASSING_ON,
            _ => Codes::ORDINARY,
        }
    }

    fn check(&self) -> Result<(), Failure> {
        for s in &self.selectors {
            let (s, _) = ::cli::host::split_selector(s).map_err(Failure::usage)?;
            Selector::parse(s, true).map_err(Failure::usage)?;
        }
        if self.wait.is_some() && crate::hosts::wanted(self) {
            return Err(Failure::usage(
                "--wait waits on this machine's sessions: run it on the host itself (ssh HOST codex-ps --wait ...)",
            ));
        }
        Ok(())
    }
}
