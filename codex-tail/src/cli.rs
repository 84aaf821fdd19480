//! The command line of codex-tail.

use ::cli::complete::{sessions, Sessions};
use ::cli::usage::count;
use ::cli::{Codes, Failure, HostArg, RootArg, Tool};
use clap::{ArgMatches, Parser, ValueEnum};
use shared::{Selector, Timestamp};

/// Print the end of sessions' output, and follow it.
///
/// stdout lines go to stdout and stderr lines to stderr, merged in the order
/// they arrived. With several sessions each line is prefixed with its id.
#[derive(Debug, Parser)]
#[command(
    name = "codex-tail",
    version,
    after_help = "Exit status: 0 printed; 1 failure; 2 usage error. With -f: the session's exit code (128+N when signal N killed it; the first non-zero of several), 125 when codex-tail fails or the session is lost or failed."
)]
pub struct Cli {
    /// Sessions: ids, unique id prefixes, or row numbers, as ID@DEST on another host [default: the newest].
    #[arg(value_name = "SELECTOR", add = sessions(Sessions::All))]
    pub selectors: Vec<String>,

    #[command(flatten)]
    pub root: RootArg,

    #[command(flatten)]
    pub host: HostArg,

    /// Lines to print: N (the last N), +N (from line N on) or all.
    #[arg(short = 'n', long = "lines", value_name = "N", default_value = "10", value_parser = Lines::parse)]
    pub lines: Lines,

    /// Print the last N bytes instead of lines.
    #[arg(
        short = 'c',
        long = "bytes",
        value_name = "N",
        conflicts_with = "lines",
        value_parser = count::<u64>
    )]
    pub bytes: Option<u64>,

    /// Keep printing new output until the session ends, then exit with its exit code.
    #[arg(short, long)]
    pub follow: bool,

    /// Which output to print.
    #[arg(long, value_enum, default_value_t = Which::All)]
    pub stream: Which,

    /// Prefix each line with the time it was read (RFC 3339, UTC, milliseconds).
    #[arg(short, long)]
    pub timestamps: bool,

    /// Only lines read at or after T (RFC 3339, or a duration ago such as 10m).
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub since: Option<Timestamp>,

    /// Only lines read at or before T (RFC 3339, or a duration ago such as 10m).
    #[arg(long, value_name = "T", value_parser = parse_time)]
    pub until: Option<Timestamp>,

    /// Print one JSON object per line: {"id","stream","time","line"} (exec sessions: and "event", the parsed event).
    #[arg(long)]
    pub json: bool,

    /// Exec sessions: print codex's JSONL events as they are instead of rendering them (a tty session's bytes are printed as they are unless --screen).
    #[arg(long)]
    pub raw: bool,

    /// Name sessions ID@DEST (every line prefixed, a "host" field in JSON):
    /// what codex-tail of several hosts asks each host's codex-tail for.
    #[arg(long, hide = true, value_name = "DEST")]
    pub host_label: Option<String>,

    /// Tty sessions: print what the screen shows now, as plain text (like tmux capture-pane -p).
    #[arg(long, conflicts_with_all = ["bytes", "follow", "json", "timestamps", "since", "until", "raw"])]
    pub screen: bool,
}

impl Tool for Cli {
    /// With -f the exit status is the session's: codex-tail's own
    /// failures, usage errors included, exit 125 so they cannot be taken
    /// for it.
    fn codes(matches: &ArgMatches) -> Codes {
        match matches.try_get_one::<bool>("follow") {
            Ok(Some(true)) => Codes::PASSING_ON,
            _ => Codes::ORDINARY,
        }
    }

    /// A selector that cannot name a session is a usage error, as in
    /// codex-ps.
    fn check(&self) -> Result<(), Failure> {
        for s in &self.selectors {
            let (s, _) = ::cli::host::split_selector(s).map_err(Failure::usage)?;
            Selector::parse(s, true).map_err(Failure::usage)?;
        }
        Ok(())
    }
}

/// `-n`: which lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// The last N lines.
    Last(usize),
    /// From line N (1-based) on; `all` is `From(1)`.
    From(usize),
}

impl Lines {
    fn parse(s: &str) -> Result<Lines, String> {
        let bad = || format!("invalid line count {s:?}: expected N, +N or all");
        if s == "all" {
            return Ok(Lines::From(1));
        }
        if let Some(n) = s.strip_prefix('+') {
            return n
                .parse()
                .map(|n: usize| Lines::From(n.max(1)))
                .map_err(|_| bad());
        }
        s.parse().map(Lines::Last).map_err(|_| bad())
    }
}

/// `--stream`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Which {
    /// stdout only.
    Out,
    /// stderr only.
    Err,
    /// Both, merged in arrival order.
    All,
}

impl From<Which> for shared::output::Which {
    fn from(w: Which) -> Self {
        match w {
            Which::Out => shared::output::Which::Out,
            Which::Err => shared::output::Which::Err,
            Which::All => shared::output::Which::All,
        }
    }
}

/// `--since`/`--until`: an RFC 3339 time, or a duration ago (`10m`).
fn parse_time(s: &str) -> Result<Timestamp, String> {
    if let Ok(t) = Timestamp::parse_rfc3339(s) {
        return Ok(t);
    }
    shared::units::parse_duration(s)
        .map(|d| Timestamp::now().minus(d))
        .map_err(|_| {
            "expected RFC 3339 (2026-11-23T20:00:00Z) or a duration ago (90s, 10m, 2h)".to_string()
        })
}
