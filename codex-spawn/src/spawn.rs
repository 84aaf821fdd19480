//! Creating a session and starting its supervisor, then waiting for the
//! supervisor's report that the command really runs.

use std::collections::BTreeMap;
use std::env;
use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, bail, Context};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::sys::stat::{umask, Mode as FileMode};

use shared::launch::{Report, SupervisorArgs, SUPERVISOR_BIN};
use shared::record::{Kind, Record, State, FORMAT_VERSION};
use shared::view::View;
use shared::{host, Access, Root, Session, SessionId, Timestamp};

use crate::cli::{Cli, Mode};

/// How much of the prompt the record keeps for listings.
const PROMPT_PREVIEW_CHARS: usize = 200;

/// A failure and the exit status it calls for (125, 126 or 127, as
/// `docker run` has them).
pub struct Failure {
    /// The exit status.
    pub code: i32,
    /// What went wrong.
    pub error: anyhow::Error,
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure { code: 125, error }
    }
}

/// What the user asked for, checked.
struct Request {
    kind: Kind,
    argv: Vec<String>,
    prompt: Option<Vec<u8>>,
    tty: bool,
}

/// Runs codex-spawn.
pub fn run(cli: Cli) -> Result<(), Failure> {
    let request = request(&cli)?;
    let o = &cli.options;
    let name = o
        .name
        .as_deref()
        .map(SessionId::parse)
        .transpose()
        .unwrap_or_else(|e| usage_error(&e.to_string()));
    let cwd = working_dir(o.cwd.as_deref())?;
    let root_path =
        shared::root::resolve_path(o.root.as_deref()).context("finding the session root")?;
    let root = Root::open(root_path, Access::Create).context("opening the session root")?;

    let record = Record {
        format: FORMAT_VERSION,
        id: String::new(),
        kind: request.kind,
        argv: request.argv.clone(),
        cwd: cwd.clone(),
        prompt: request.prompt.as_deref().map(preview),
        tty: request.tty,
        size: request.tty.then_some([o.size.0, o.size.1]),
        stdin: o.stdin || request.tty,
        labels: o.labels.iter().cloned().collect::<BTreeMap<_, _>>(),
        env: o.env.iter().map(|(k, _)| k.clone()).collect(),
        // 0 means none, as for GNU timeout.
        timeout_ms: o
            .timeout
            .filter(|d| !d.is_zero())
            .map(|d| d.as_millis().clamp(1, u64::MAX as u128) as u64),
        max_log_size: o.max_log_size.filter(|&n| n > 0),
        created_at: Timestamp::now(),
        host: host::hostname(),
        boot_id: host::boot_id(),
        state: State::Starting,
        supervisor_pid: None,
        supervisor_start_time: None,
        pid: None,
        pid_start_time: None,
        pgid: None,
        started_at: None,
        ended_at: None,
        exit_code: None,
        signal: None,
        timed_out: false,
        stdout_bytes: 0,
        stderr_bytes: 0,
        dropped_bytes: 0,
        error: None,
        agent: (request.kind == Kind::Exec).then(Default::default),
    };
    let created = root
        .create_session(name.as_ref(), record, request.prompt.as_deref())
        .context("creating the session")?;

    match start_supervisor(&created.dir, created.lock.as_fd(), &o.env) {
        Ok(()) => {}
        Err(failure) => {
            // Nothing ran: leave nothing behind. We still hold the lock, so
            // no reader ever saw this session as failed or lost, and the
            // removal hides it first, so none sees it half removed.
            let _ = root.remove_session(&created.id);
            return Err(failure);
        }
    }

    let mut out = io::stdout().lock();
    let line = if o.json {
        let session = Session::load(created.id.clone(), created.dir.clone());
        serde_json::to_string(&View::new(&session, None)).expect("a view always serializes")
    } else {
        created.id.to_string()
    };
    // A closed stdout is not worth a failure: the session runs either way.
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    Ok(())
}

/// Checks the mode and builds the command line.
fn request(cli: &Cli) -> Result<Request, Failure> {
    match (&cli.mode, cli.command.is_empty()) {
        (Some(_), false) => usage_error("give either exec or -- COMMAND, not both"),
        (None, true) => usage_error("nothing to run: give exec PROMPT or -- COMMAND [ARGS]..."),
        (None, false) => Ok(Request {
            kind: Kind::Cmd,
            argv: cli.command.clone(),
            prompt: None,
            tty: cli.options.tty,
        }),
        (Some(Mode::Repl { prompt, codex_args }), _) => {
            let mut argv = vec![codex_bin(cli.options.codex_bin.as_deref())?];
            argv.extend(codex_args.iter().cloned());
            argv.extend(prompt.iter().cloned());
            Ok(Request {
                kind: Kind::Repl,
                argv,
                prompt: prompt.as_ref().map(|p| p.clone().into_bytes()),
                tty: true,
            })
        }
        (
            Some(Mode::Exec {
                prompt,
                codex_args,
                resume,
            }),
            _,
        ) => {
            if cli.options.stdin {
                usage_error("--stdin cannot be used with exec: its stdin is the prompt");
            }
            let prompt = if prompt == "-" {
                let mut buf = Vec::new();
                io::stdin()
                    .lock()
                    .read_to_end(&mut buf)
                    .context("reading the prompt from stdin")?;
                buf
            } else {
                prompt.clone().into_bytes()
            };
            let mut argv = vec![codex_bin(cli.options.codex_bin.as_deref())?];
            argv.extend(["exec".into(), "--json".into()]);
            argv.extend(codex_args.iter().cloned());
            if let Some(selector) = resume {
                argv.extend(["resume".into(), thread_of(cli, selector)?]);
            }
            argv.push("-".into());
            if cli.options.tty {
                usage_error("--tty cannot be used with exec: its output is a JSON stream");
            }
            Ok(Request {
                kind: Kind::Exec,
                argv,
                prompt: Some(prompt),
                tty: false,
            })
        }
    }
}

/// The thread id of the exec session `selector` names, for `--resume`.
fn thread_of(cli: &Cli, selector: &str) -> anyhow::Result<String> {
    let path = shared::root::resolve_path(cli.options.root.as_deref())
        .context("finding the session root")?;
    let root = Root::open(path, Access::Read).context("opening the session root")?;
    let selector = shared::Selector::parse(selector, true)?;
    let id = root
        .resolve(&selector)
        .context("finding the session to resume")?;
    let record = shared::Record::read(&root.session_dir(&id))
        .with_context(|| format!("reading the record of {id}"))?;
    record.agent.and_then(|a| a.thread_id).ok_or_else(|| {
        anyhow!(
            "{id} has no codex thread to resume (not an exec session, or codex never started one)"
        )
    })
}

/// Reports a usage error on one line (exit status 2).
fn usage_error(message: &str) -> ! {
    shared::cli::usage_error::<Cli>(message)
}

/// The codex binary: `--codex-bin`, else `$CODEX_BIN`, else `codex` on PATH.
/// A path with a slash is made absolute, so `-C` does not change its meaning.
fn codex_bin(flag: Option<&Path>) -> anyhow::Result<String> {
    let bin: PathBuf = match (flag, env::var_os("CODEX_BIN").filter(|v| !v.is_empty())) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(v)) => v.into(),
        (None, None) => "codex".into(),
    };
    let bin = if bin.is_relative() && bin.components().count() > 1 {
        env::current_dir()
            .context("finding the current directory")?
            .join(bin)
    } else {
        bin
    };
    bin.into_os_string()
        .into_string()
        .map_err(|b| anyhow!("the codex binary path {b:?} is not UTF-8"))
}

/// The command's working directory, absolute and checked.
fn working_dir(flag: Option<&Path>) -> anyhow::Result<String> {
    let dir = match flag {
        Some(d) => fs::canonicalize(d)
            .with_context(|| format!("using {} as the working directory", d.display()))?,
        None => env::current_dir().context("finding the current directory")?,
    };
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    dir.into_os_string()
        .into_string()
        .map_err(|d| anyhow!("the working directory {d:?} is not UTF-8"))
}

/// The start of the prompt, for listings.
fn preview(prompt: &[u8]) -> String {
    String::from_utf8_lossy(prompt)
        .chars()
        .take(PROMPT_PREVIEW_CHARS)
        .collect()
}

/// Starts the supervisor for the session in `dir` and waits for its report.
fn start_supervisor(
    dir: &Path,
    lock: BorrowedFd<'_>,
    env: &[(String, String)],
) -> Result<(), Failure> {
    let exe = env::current_exe().context("finding codex-spawn's own path")?;
    let supervisor = exe.with_file_name(SUPERVISOR_BIN);
    let (report_read, report_write) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).context("creating the report pipe")?;
    // The supervisor inherits exactly these two descriptors; it marks them
    // close-on-exec again at once. codex-spawn is single-threaded, so no
    // other child can inherit them meanwhile.
    for fd in [lock, report_write.as_fd()] {
        fcntl(fd.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::empty()))
            .context("passing descriptors to the supervisor")?;
    }
    let mask = umask(FileMode::from_bits_truncate(0o077));
    umask(mask);
    let args = SupervisorArgs {
        dir: dir.to_path_buf(),
        lock_fd: lock.as_raw_fd(),
        report_fd: report_write.as_raw_fd(),
        umask: mask.bits(),
    };
    let mut child = Command::new(&supervisor)
        .args(args.to_args())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", supervisor.display()))?;
    drop(report_write);

    let mut buf = Vec::new();
    let read = fs::File::from(report_read).read_to_end(&mut buf);
    let report = read.ok().and_then(|_| Report::decode(&buf));
    let program = || {
        shared::Record::read(dir)
            .ok()
            .and_then(|r| r.argv.into_iter().next())
            .unwrap_or_default()
    };
    match report {
        Some(Report::Started { .. }) => Ok(()),
        Some(Report::ExecFailed { errno, message: _ }) => {
            let _ = child.wait();
            let (code, what) = match nix::errno::Errno::from_raw(errno) {
                Errno::ENOENT | Errno::ENOTDIR => (127, "command not found".to_string()),
                e => (126, format!("cannot execute: {}", e.desc())),
            };
            Err(Failure {
                code,
                error: anyhow!("{}: {what}", program()),
            })
        }
        Some(Report::Failed { message }) => {
            let _ = child.wait();
            Err(anyhow!("starting {}: {message}", program()).into())
        }
        None => {
            let status = child.wait();
            Err(anyhow!(
                "the supervisor exited before starting the command ({})",
                status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|e| e.to_string())
            )
            .into())
        }
    }
}
