//! The command line of codex-rm.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

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
    /// Sessions to remove: ids or unique id prefixes; `-` reads them from stdin.
    #[arg(value_name = "SELECTOR")]
    pub selectors: Vec<String>,

    /// The session root [default: $CODEX_BACKGROUND_DIR, else $CODEX_HOME/background, else ~/.codex/background].
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// Stop running and starting sessions first, and kill what a lost one left running.
    #[arg(short, long)]
    pub force: bool,

    /// With --force: how long the command has between SIGTERM and SIGKILL.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub grace: Duration,

    /// Print one JSON object per session: {"id","removed","stopped","error"}.
    #[arg(long)]
    pub json: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    shared::units::parse_duration(s).map_err(|e| e.to_string())
}
