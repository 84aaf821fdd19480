//! The command line of codex-spawn.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use ::cli::complete::{sessions, Sessions};
use ::cli::usage::{duration, pair, size};
use ::cli::{Codes, Failure, HostArg, RootArg, Tool};
use clap::builder::TypedValueParser;
use clap::error::{ContextKind, ErrorKind};
use clap::{ArgMatches, Parser, Subcommand};
use shared::record::QueueSpec;
use shared::{Selector, SessionId};

use crate::codex::CodexArgs;

/// Start a command, or a codex agent, as a background session and print its id.
///
/// The session runs under its own small supervisor, detached from this
/// terminal; its output goes to the session directory. codex-spawn returns as
/// soon as the command has really started.
#[derive(Debug, Parser)]
#[command(
    name = "codex-spawn",
    version,
    disable_help_subcommand = true,
    override_usage = "codex-spawn [OPTIONS] exec [--resume SELECTOR] PROMPT [CODEX_OPTIONS]...\n       codex-spawn [OPTIONS] repl [PROMPT] [CODEX_OPTIONS]...\n       codex-spawn [OPTIONS] -- COMMAND [ARGS]...",
    after_help = "Exit status: 0 started; 2 usage error; 125 codex-spawn failed; 126 the command is not executable; 127 the command was not found."
)]
pub struct Cli {
    #[command(flatten)]
    pub options: Options,

    #[command(subcommand)]
    pub mode: Option<Mode>,

    /// The command to run (kind `cmd`), after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// Options common to every kind of session. They go before `exec` or `--`.
#[derive(Debug, clap::Args)]
pub struct Options {
    #[command(flatten)]
    pub root: RootArg,

    #[command(flatten)]
    pub host: HostArg,

    /// Use NAME as the session id instead of a generated one.
    #[arg(short = 'n', long, value_name = "NAME")]
    pub name: Option<String>,

    /// Run the command in DIR [default: the current directory].
    #[arg(short = 'C', long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,

    /// Set an environment variable for the command (repeatable). The value is never written to disk.
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE", value_parser = clap::builder::OsStringValueParser::new().try_map(env_pair))]
    pub env: Vec<(String, OsString)>,

    /// Attach a label to the session (repeatable), for codex-ps filters.
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE", value_parser = pair)]
    pub labels: Vec<(String, String)>,

    /// Run the command in a pseudo-terminal (for interactive and full-screen programs).
    #[arg(short = 't', long)]
    pub tty: bool,

    /// The terminal's initial size with --tty or repl, as COLSxROWS [default: 80x24].
    #[arg(long, value_name = "COLSxROWS", value_parser = parse_size_spec)]
    pub size: Option<(u16, u16)>,

    /// Keep the command's stdin open for input through codex-attach (not with exec).
    #[arg(short = 'i', long)]
    pub stdin: bool,

    /// Stop the command (SIGTERM, then SIGKILL) after DURATION, such as 90s, 10m or 2h (0: never).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub timeout: Option<Duration>,

    /// Rotate each log at SIZE (such as 10M or 1GiB), keeping one previous file (0: never).
    #[arg(long, value_name = "SIZE", value_parser = size)]
    pub max_log_size: Option<u64>,

    /// Print the session as one JSON line (as codex-ps --json does) instead of its id.
    #[arg(long)]
    pub json: bool,

    /// Run in a new git worktree on a new branch codex/ID made from BASE [default: HEAD]; what the command changed is committed there when it ends.
    #[arg(
        long,
        value_name = "BASE",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "HEAD"
    )]
    pub worktree: Option<String>,

    /// With --worktree: copy the untracked files matching PATTERN (gitignore syntax, such as .env) into it (repeatable; see also .worktreeinclude).
    #[arg(long = "copy", value_name = "PATTERN")]
    pub copy: Vec<String>,

    /// With --worktree: run CMD with sh -c in the worktree before the command; if it fails, the session fails.
    #[arg(long, value_name = "CMD")]
    pub setup: Option<String>,

    /// Run CMD (through sh -c) once the session has ended and its final record is written; see CODEX_SESSION_* in its environment.
    #[arg(long, value_name = "CMD")]
    pub on_exit: Option<String>,

    /// Run CMD (through sh -c) at each change of the agent's state (working, idle, blocked, done, failed).
    #[arg(long, value_name = "CMD")]
    pub on_state: Option<String>,

    /// Stop a hook, and all it started, after DURATION [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub hook_timeout: Option<Duration>,

    /// The codex binary for exec and repl [default: $CODEX_BIN, else codex on PATH].
    #[arg(long, value_name = "PATH")]
    pub codex_bin: Option<PathBuf>,

    /// Run in queue NAME, at most N of its sessions at once in this root; the session waits as `queued` until a slot frees.
    #[arg(long, value_name = "NAME=N", value_parser = parse_queue)]
    pub queue: Option<QueueSpec>,

    /// Start only once SELECTOR has ended (repeatable); the session waits as `queued`.
    #[arg(long, value_name = "SELECTOR", add = sessions(Sessions::All))]
    pub after: Vec<String>,

    /// Start only once SELECTOR has ended with exit code 0 (repeatable); otherwise the session fails without running.
    #[arg(long, value_name = "SELECTOR", add = sessions(Sessions::All))]
    pub after_ok: Vec<String>,

    /// Run again what session SELECTOR ran: its kind, command or prompt, directory, labels and options; options given beside it win.
    #[arg(long, value_name = "SELECTOR", add = sessions(Sessions::All))]
    pub rerun: Option<String>,
}

/// `--queue NAME=N`: a name with the rules of a session name, and a limit of
/// at least 1.
fn parse_queue(s: &str) -> Result<QueueSpec, String> {
    let (name, n) = s
        .split_once('=')
        .ok_or("expected NAME=N, such as builds=4")?;
    SessionId::parse(name).map_err(|e| format!("queue name: {e}"))?;
    let limit: u32 = n
        .parse()
        .ok()
        .filter(|&n| n > 0)
        .ok_or("expected NAME=N with N a whole number of at least 1, such as builds=4")?;
    Ok(QueueSpec {
        name: name.to_string(),
        limit,
    })
}

/// The kinds of session that have a subcommand.
#[derive(Debug, Subcommand)]
pub enum Mode {
    /// Run `codex exec --json CODEX_OPTIONS -` with PROMPT on its stdin (`-` reads the prompt from stdin).
    Exec {
        /// Continue the thread of an earlier exec session (an id, a unique prefix or a row number), in its directory and with its codex options unless given anew: runs `codex exec --json CODEX_OPTIONS resume THREAD_ID -`.
        #[arg(long, value_name = "SELECTOR", add = sessions(Sessions::All))]
        resume: Option<String>,
        /// The prompt (`-` reads it from stdin) and codex's options, in any order: `"fix the tests" -m MODEL`. Options codex-spawn does not know go after `--`.
        #[arg(
            value_name = "PROMPT|CODEX_OPTION",
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true
        )]
        args: Vec<String>,
    },
    /// Run the interactive codex (`codex CODEX_OPTIONS [PROMPT]`) in a pseudo-terminal, without codex's shared background server (`--no-daemon`).
    Repl {
        /// The first prompt, if any, and codex's options, in any order: `-m MODEL`, `--search`.
        #[arg(
            value_name = "PROMPT|CODEX_OPTION",
            trailing_var_arg = true,
            allow_hyphen_values = true
        )]
        args: Vec<String>,
    },
}

impl Mode {
    /// Codex's arguments read (see [`crate::codex`]), and the `--resume`
    /// selector of exec, wherever it was given.
    pub fn codex_args(&self) -> Result<(CodexArgs, Option<String>), Failure> {
        let (words, mut resume) = match self {
            Mode::Exec { resume, args } => (args.clone(), resume.clone()),
            Mode::Repl { args } => (args.clone(), None),
        };
        // `--resume` after the prompt is codex-spawn's, as before it.
        let mut rest = Vec::with_capacity(words.len());
        let mut words = words.into_iter();
        while let Some(w) = words.next() {
            if w == "--" {
                rest.push(w);
                rest.extend(words.by_ref());
            } else if matches!(self, Mode::Exec { .. }) && w == "--resume" {
                resume = Some(
                    words
                        .next()
                        .ok_or_else(|| Failure::usage("--resume needs a SELECTOR"))?,
                );
            } else if let Some(v) = w
                .strip_prefix("--resume=")
                .filter(|_| matches!(self, Mode::Exec { .. }))
            {
                resume = Some(v.to_string());
            } else {
                rest.push(w);
            }
        }
        let args = CodexArgs::parse(&rest).map_err(Failure::usage)?;
        if matches!(self, Mode::Exec { .. }) && args.prompt.is_none() {
            return Err(Failure::usage(
                "exec needs a PROMPT (or - to read it from stdin)",
            ));
        }
        Ok((args, resume))
    }
}

impl Tool for Cli {
    /// codex-spawn's own failures exit 125, as `docker run`'s do (126 and
    /// 127 say the command could not be run).
    fn codes(_: &ArgMatches) -> Codes {
        Codes {
            failure: 125,
            usage: 2,
        }
    }

    const QUIET_BROKEN_PIPE: bool = false;

    fn check(&self) -> Result<(), Failure> {
        let o = &self.options;
        if o.rerun.is_some() && (self.mode.is_some() || !self.command.is_empty()) {
            return Err(Failure::usage(
                "--rerun runs what the earlier session ran: give no mode or command beside it",
            ));
        }
        for s in o.after.iter().chain(&o.after_ok).chain(&o.rerun) {
            Selector::parse(s, true).map_err(Failure::usage)?;
        }
        if o.hook_timeout.is_some() && o.on_exit.is_none() && o.on_state.is_none() {
            return Err(Failure::usage(
                "--hook-timeout needs a hook: --on-exit CMD or --on-state CMD",
            ));
        }
        match (&self.mode, self.command.is_empty()) {
            // --rerun: checked once the earlier session is known.
            (None, true) if o.rerun.is_some() => {}
            (Some(_), false) => {
                return Err(Failure::usage("give either exec or -- COMMAND, not both"))
            }
            (None, true) => {
                return Err(Failure::usage(
                    "nothing to run: give exec PROMPT, repl, or -- COMMAND [ARGS]...",
                ))
            }
            (Some(Mode::Exec { .. }), _) if o.stdin => {
                return Err(Failure::usage(
                    "--stdin cannot be used with exec: its stdin is the prompt",
                ))
            }
            (Some(Mode::Exec { .. }), _) if o.tty => {
                return Err(Failure::usage(
                    "--tty cannot be used with exec: its output is a JSON stream",
                ))
            }
            (Some(Mode::Exec { .. }), _) if o.size.is_some() => {
                return Err(Failure::usage(
                    "--size cannot be used with exec: it has no terminal",
                ))
            }
            (None, false) if o.size.is_some() && !o.tty => {
                return Err(Failure::usage(
                    "--size needs --tty: only a terminal has a size",
                ))
            }
            _ => {}
        }
        if o.worktree.is_none() && (!o.copy.is_empty() || o.setup.is_some()) {
            let flag = if o.copy.is_empty() {
                "--setup"
            } else {
                "--copy"
            };
            return Err(Failure::usage(format!(
                "{flag} needs --worktree: it prepares the session's worktree"
            )));
        }
        if o.worktree.as_deref() == Some("") {
            return Err(Failure::usage(
                "--worktree= needs a BASE (a branch or commit), or no = at all for HEAD",
            ));
        }
        if let Some(mode) = &self.mode {
            let (args, _) = mode.codex_args()?;
            if o.worktree.is_some() && args.has("cd") {
                return Err(Failure::usage(
                    "codex's --cd cannot be used with --worktree: codex runs in the worktree (choose the repository with codex-spawn -C DIR)",
                ));
            }
            if o.worktree.is_some() && args.has("worktree") {
                return Err(Failure::usage(
                    "codex's own --worktree cannot be used with codex-spawn's: give one of them",
                ));
            }
        }
        if let Some(name) = &o.name {
            SessionId::parse(name).map_err(Failure::usage)?;
        }
        Ok(())
    }

    /// `codex-spawn sleep 10` is not run as a command: what follows the
    /// options is a mode (exec, repl) or, after `--`, the command.
    fn explain(error: &clap::Error, args: &[OsString]) -> Option<String> {
        let context = match error.kind() {
            ErrorKind::InvalidSubcommand => ContextKind::InvalidSubcommand,
            ErrorKind::UnknownArgument => ContextKind::InvalidArg,
            _ => return None,
        };
        let word = error.get(context)?.to_string();
        if word.starts_with('-') {
            return None;
        }
        let at = args
            .iter()
            .position(|a| a.to_str() == Some(word.as_str()))?;
        let rest: Vec<String> = args[at..]
            .iter()
            .map(|a| {
                let a = a.to_string_lossy();
                shlex::try_quote(&a).map_or_else(|_| a.to_string(), |q| q.into_owned())
            })
            .collect();
        Some(format!(
            "unknown mode '{word}' (modes: exec, repl); to run a command, put -- before it: codex-spawn -- {}",
            rest.join(" ")
        ))
    }
}

fn parse_size_spec(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("invalid size {s:?}: expected COLSxROWS, such as 120x40");
    let (c, r) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let c: u16 = c.parse().map_err(|_| bad())?;
    let r: u16 = r.parse().map_err(|_| bad())?;
    if c == 0 || r == 0 {
        return Err(bad());
    }
    Ok((c, r))
}

/// `-e KEY=VALUE`: the value may be any bytes (it is passed on, never
/// recorded); the name must be UTF-8, since the record lists it.
fn env_pair(s: OsString) -> Result<(String, OsString), String> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = s.as_bytes();
    let eq = bytes.iter().position(|&b| b == b'=');
    match eq.map(|i| (&bytes[..i], &bytes[i + 1..])) {
        Some((k, v)) if !k.is_empty() => {
            let k = std::str::from_utf8(k).map_err(|_| "the KEY of KEY=VALUE must be UTF-8")?;
            Ok((k.to_string(), std::ffi::OsStr::from_bytes(v).to_os_string()))
        }
        _ => Err("expected KEY=VALUE with a non-empty KEY".into()),
    }
}
