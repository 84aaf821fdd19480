//! Creating a session and starting its supervisor, then waiting for the
//! supervisor's report that the command really runs.

use std::collections::BTreeMap;
use std::env;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{umask, Mode as FileMode};
use nix::sys::wait::waitpid;
use nix::unistd::ForkResult;

use ::cli::Failure;
use shared::launch::{Report, SUPERVISOR_BIN};
use shared::record::{Dependency, Kind, Record};
use shared::view::View;
use shared::{Access, Session, SessionId};

use crate::cli::{Cli, Mode};
use crate::codex::CodexArgs;
use crate::rerun;
use crate::worktree;

/// A terminal's size when `--size` is not given: columns, rows.
const DEFAULT_SIZE: (u16, u16) = (80, 24);

/// How much of the prompt the record keeps for listings.
const PROMPT_PREVIEW_CHARS: usize = 200;

/// What the user asked for, checked.
struct Request {
    kind: Kind,
    argv: Vec<OsString>,
    prompt: Option<Vec<u8>>,
    tty: bool,
    codex_options: Vec<String>,
    continues: Option<String>,
    /// The working directory when not the caller's: a resumed session's.
    cwd: Option<OsString>,
}

/// The hooks of the session, when any is given.
fn hooks(o: &crate::cli::Options) -> Option<shared::hooks::Hooks> {
    (o.on_exit.is_some() || o.on_state.is_some()).then(|| shared::hooks::Hooks {
        on_exit: o.on_exit.clone(),
        on_state: o.on_state.clone(),
        timeout_ms: o
            .hook_timeout
            .filter(|d| !d.is_zero())
            .map(|d| d.as_millis().clamp(1, u64::MAX as u128) as u64),
    })
}

/// Runs codex-spawn (its command line already checked): creates the
/// session, starts its supervisor and prints the id once the command runs.
pub fn run(mut cli: Cli) -> Result<i32, Failure> {
    if let ::cli::Dest::Remote(dest) = cli.options.host.one()? {
        return crate::remote::spawn(&cli, &dest);
    }
    let rerun = rerun::apply(&mut cli)?;
    if rerun.is_some() {
        // What the earlier session brought in is checked as if given.
        ::cli::Tool::check(&cli)?;
    }
    let prompt = rerun.as_ref().and_then(|r| r.prompt.clone());
    let request = request(&cli, prompt)?;
    let o = &cli.options;
    let name = o.name.as_deref().map(SessionId::parse).transpose()?;
    let cwd = match (&o.cwd, &request.cwd) {
        (None, Some(earlier)) => working_dir(Some(Path::new(earlier)))
            .context("using the directory of the session resumed")?,
        (given, _) => working_dir(given.as_deref())?,
    };
    let plan = worktree::plan(o.worktree.as_deref(), &o.copy, o.setup.as_deref(), &cwd)?;
    let root = o.root.open(Access::Create)?;
    let after = dependencies(&root, &o.after, &o.after_ok)?;
    if let Some(plan) = &plan {
        worktree::check_root(plan, &root)?;
    }

    let tty = request.tty;
    let record = Record {
        prompt: request.prompt.as_deref().map(preview),
        tty,
        size: tty.then(|| {
            let (cols, rows) = o.size.unwrap_or(DEFAULT_SIZE);
            [cols, rows]
        }),
        stdin: o.stdin || tty,
        labels: o.labels.iter().cloned().collect::<BTreeMap<_, _>>(),
        env: o.env.iter().map(|(k, _)| k.clone()).collect(),
        // 0 means none, as for GNU timeout.
        timeout_ms: o
            .timeout
            .filter(|d| !d.is_zero())
            .map(|d| d.as_millis().clamp(1, u64::MAX as u128) as u64),
        max_log_size: o.max_log_size.filter(|&n| n > 0),
        codex_options: request.codex_options.clone(),
        continues: request.continues.clone(),
        queue: o.queue.clone(),
        after,
        hooks: hooks(o),
        ..Record::new(request.kind, request.argv.clone(), cwd)
    };
    let token = record.token.clone().unwrap_or_default();
    let created = root
        .create_session(name.as_ref(), record, request.prompt.as_deref())
        .context("creating the session")?;

    if let Some(plan) = &plan {
        if let Err(e) = worktree::prepare(&created, plan) {
            let _ = root.remove_session(&created.id);
            return Err(e.context("making the session's worktree").into());
        }
    }

    let mut code = 0;
    match start_supervisor(&created.dir, created.lock.as_fd(), &o.env, &token) {
        Ok(()) => {}
        Err(Started::SetupFailed(message)) => {
            // The session stays, failed, with the setup's output in its
            // logs: its id is printed, for codex-tail.
            eprintln!(
                "codex-spawn: {}: the setup failed: {message} (its output: codex-tail {})",
                created.id, created.id
            );
            code = 1;
        }
        Err(Started::Failed(failure)) => {
            // Nothing ran: leave nothing behind. We still hold the lock, so
            // no reader ever saw this session as failed or lost, and the
            // removal hides it first, so none sees it half removed.
            worktree::discard(&created.dir);
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
    if let Some(names) = rerun.map(|r| r.env_not_restored).filter(|n| !n.is_empty()) {
        eprintln!(
            "codex-spawn: warning: --env values are never recorded, so these were not set again: {} (give them with -e)",
            names.join(", ")
        );
    }
    Ok(code)
}

/// Why [`start_supervisor`] did not see the command start.
enum Started {
    /// `--setup` failed; the session is kept, failed.
    SetupFailed(String),
    /// Nothing ran.
    Failed(Failure),
}

impl<E: Into<Failure>> From<E> for Started {
    fn from(e: E) -> Started {
        Started::Failed(e.into())
    }
}

/// Builds the command line of the mode `cli` asks for (checked by
/// [`Tool::check`](::cli::Tool::check)); reads an exec prompt of `-` from
/// stdin.
fn request(cli: &Cli, prompt: Option<Vec<u8>>) -> Result<Request, Failure> {
    let Some(mode) = &cli.mode else {
        return Ok(Request {
            kind: Kind::Cmd,
            argv: cli.command.clone(),
            prompt: None,
            tty: cli.options.tty,
            codex_options: Vec::new(),
            continues: None,
            cwd: None,
        });
    };
    let (mut args, resume) = mode.codex_args()?;
    // --rerun: the earlier session's whole prompt, whatever its bytes.
    if let Some(p) = &prompt {
        args.prompt = (!p.is_empty()).then(|| String::from_utf8_lossy(p).into_owned());
    }
    let mut argv = vec![codex_bin(cli.options.codex_bin.as_deref())?];
    if let Mode::Repl { .. } = mode {
        // No shared background server: one would be adopted by this
        // session and taken down with it, leaving every other codex of the
        // user reconnecting. A repl connecting to a server of its own
        // choosing (--remote) is left as it is.
        if !args.has("no-daemon") && !args.has("remote") {
            args.add_flag("no-daemon");
        }
        argv.extend(args.option_words().into_iter().map(OsString::from));
        argv.extend(args.prompt.iter().map(OsString::from));
        return Ok(Request {
            kind: Kind::Repl,
            argv,
            prompt: args.prompt.clone().map(String::into_bytes),
            tty: true,
            codex_options: args.recorded_words(),
            continues: None,
            cwd: None,
        });
    }
    // exec: over the options of the session it continues, if any.
    let earlier = resume
        .as_deref()
        .map(|s| earlier_session(cli, s))
        .transpose()?;
    let args = match &earlier {
        Some(e) => args.over(&CodexArgs::parse(&e.record.codex_options).unwrap_or_default()),
        None => args,
    };
    argv.extend(["exec".into(), "--json".into()]);
    argv.extend(args.option_words().into_iter().map(OsString::from));
    if let Some(e) = &earlier {
        argv.extend(["resume".into(), OsString::from(&e.thread)]);
    }
    argv.push("-".into());
    let prompt = match args.prompt.as_deref() {
        _ if prompt.is_some() => prompt.unwrap_or_default(),
        Some("-") => {
            let mut buf = Vec::new();
            io::stdin()
                .lock()
                .read_to_end(&mut buf)
                .context("reading the prompt from stdin")?;
            buf
        }
        p => p.unwrap_or_default().as_bytes().to_vec(),
    };
    Ok(Request {
        kind: Kind::Exec,
        argv,
        prompt: Some(prompt),
        tty: false,
        codex_options: args.recorded_words(),
        continues: earlier.as_ref().map(|e| e.id.to_string()),
        // In the directory the thread ran in, unless -C says otherwise.
        cwd: earlier.map(|e| e.record.cwd),
    })
}

/// The exec session a resume continues.
struct Earlier {
    id: SessionId,
    record: Record,
    thread: String,
}

/// The exec session `selector` names, for `--resume`, with its thread id.
fn earlier_session(cli: &Cli, selector: &str) -> anyhow::Result<Earlier> {
    let root = cli.options.root.open(Access::Read)?;
    let selector = shared::Selector::parse(selector, true)?;
    let id = root
        .resolve(&selector)
        .context("finding the session to resume")?;
    let record = shared::Record::read(&root.session_dir(&id))
        .with_context(|| format!("reading the record of {id}"))?;
    let thread = record
        .agent
        .as_ref()
        .and_then(|a| a.thread_id.clone())
        .ok_or_else(|| {
            anyhow!(
            "{id} has no codex thread to resume (not an exec session, or codex never started one)"
        )
        })?;
    Ok(Earlier { id, record, thread })
}

/// The codex binary: `--codex-bin`, else `$CODEX_BIN`, else `codex` on PATH.
/// A path with a slash is made absolute, so `-C` does not change its meaning.
fn codex_bin(flag: Option<&Path>) -> anyhow::Result<OsString> {
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
    Ok(bin.into_os_string())
}

/// The command's working directory, absolute and checked.
fn working_dir(flag: Option<&Path>) -> anyhow::Result<OsString> {
    let dir = match flag {
        Some(d) => fs::canonicalize(d)
            .with_context(|| format!("using {} as the working directory", d.display()))?,
        None => env::current_dir().context("finding the current directory")?,
    };
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    Ok(dir.into_os_string())
}

/// The start of the prompt, for listings.
fn preview(prompt: &[u8]) -> String {
    String::from_utf8_lossy(prompt)
        .chars()
        .take(PROMPT_PREVIEW_CHARS)
        .collect()
}

/// Starts the session in `dir` (whose token is `token`) and waits for the
/// report: a child starts the command, then execs the supervisor's image
/// (see `supervisor::handoff`), reporting once the command runs.
fn start_supervisor(
    dir: &Path,
    lock: BorrowedFd<'_>,
    env: &[(String, OsString)],
    token: &str,
) -> Result<(), Started> {
    let exe = env::current_exe().context("finding codex-spawn's own path")?;
    let supervisor = exe.with_file_name(SUPERVISOR_BIN);
    // The child reports before it execs the supervisor: make sure there is
    // one to exec.
    nix::unistd::access(&supervisor, nix::unistd::AccessFlags::X_OK)
        .with_context(|| format!("finding {}", supervisor.display()))?;
    let (report_read, report_write) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).context("creating the report pipe")?;
    let mask = umask(FileMode::from_bits_truncate(0o077));
    umask(mask);
    let lock = lock
        .try_clone_to_owned()
        .context("passing the lock to the supervisor")?;
    // Safety: codex-spawn is single-threaded here, so the child may run
    // any code (it allocates) until it execs the supervisor's image.
    let child = match unsafe { nix::unistd::fork() }.context("starting the supervisor")? {
        ForkResult::Child => {
            drop(report_read);
            supervisor::handoff::launch(supervisor::handoff::Launch {
                dir,
                lock,
                report: report_write,
                umask: mask.bits(),
                env,
                token,
                program: &supervisor,
            })
        }
        ForkResult::Parent { child } => child,
    };
    drop(report_write);
    drop(lock);
    let wait_child = || waitpid(child, None);

    let mut buf = Vec::new();
    let read = fs::File::from(report_read).read_to_end(&mut buf);
    // The last line: the child reports `started` before it execs the
    // supervisor's image, and a failure after that if the exec failed.
    let last = buf
        .strip_suffix(b"\n")
        .unwrap_or(&buf)
        .rsplit(|&b| b == b'\n')
        .next()
        .unwrap_or_default();
    let report = read.ok().and_then(|_| Report::decode(last));
    if let Some(Report::Started { .. } | Report::Queued) = report {
        return Ok(());
    }
    let record = shared::Record::read(dir).ok();
    let program = || {
        record
            .as_ref()
            .and_then(|r| r.argv.first().cloned())
            .map(|p| ::cli::text::line_bytes(p.as_bytes()))
            .unwrap_or_default()
    };
    match report {
        Some(Report::Started { .. } | Report::Queued) => Ok(()),
        Some(Report::ExecFailed { errno, message: _ }) => {
            let _ = wait_child();
            let kind = record.as_ref().map_or(Kind::Cmd, |r| r.kind);
            let (code, what) = match Errno::from_raw(errno) {
                Errno::ENOENT | Errno::ENOTDIR if kind != Kind::Cmd => (
                    127,
                    format!(
                        "command not found: {} needs the codex CLI (npm install -g @openai/codex), or give its path with --codex-bin",
                        kind.as_str()
                    ),
                ),
                Errno::ENOENT | Errno::ENOTDIR => (127, "command not found".to_string()),
                Errno::EACCES if is_dir(record.as_ref()) => (126, "is a directory".to_string()),
                e => (126, format!("cannot execute: {}", e.desc())),
            };
            Err(Failure::with_code(code, anyhow!("{}: {what}", program())).into())
        }
        Some(Report::SetupFailed { message }) => {
            let _ = wait_child();
            Err(Started::SetupFailed(message))
        }
        Some(Report::Failed { message }) => {
            let _ = wait_child();
            Err(anyhow!("starting {}: {message}", program()).into())
        }
        None => {
            let status = wait_child();
            Err(anyhow!(
                "the supervisor exited before starting the command ({})",
                status
                    .map(|s| format!("{s:?}"))
                    .unwrap_or_else(|e| e.to_string())
            )
            .into())
        }
    }
}

/// Whether the program of `record` names a directory (a path with a
/// slash, taken from the command's working directory).
fn is_dir(record: Option<&Record>) -> bool {
    record.is_some_and(|r| {
        r.argv
            .first()
            .filter(|p| p.as_bytes().contains(&b'/'))
            .is_some_and(|p| Path::new(&r.cwd).join(p).is_dir())
    })
}

/// The sessions `--after` and `--after-ok` name, resolved to ids now (a
/// row number would shift before they end).
fn dependencies(
    root: &shared::Root,
    after: &[String],
    after_ok: &[String],
) -> anyhow::Result<Vec<Dependency>> {
    let mut deps: Vec<Dependency> = Vec::new();
    for (selector, ok) in after
        .iter()
        .map(|s| (s, false))
        .chain(after_ok.iter().map(|s| (s, true)))
    {
        let id = root
            .resolve(&shared::Selector::parse(selector, true)?)
            .with_context(|| format!("finding the session to wait for ({selector})"))?
            .to_string();
        match deps.iter_mut().find(|d| d.id == id) {
            Some(d) => d.ok |= ok,
            None => deps.push(Dependency { id, ok }),
        }
    }
    Ok(deps)
}
