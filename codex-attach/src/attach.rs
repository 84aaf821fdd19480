//! Attaching: pick the session, connect, show recent output, then relay
//! keys one way and output the other until detach or the session's end.

use std::io::{self, IsTerminal, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use shared::index::Reader;
use shared::layout::{self, Stream};
use shared::logs::StreamLog;
use shared::output::{Source, Which, Window};
use shared::protocol::{self, Frame, Hello, Welcome};
use shared::{Access, Root, Selector, Session, SessionId, Status};

use crate::cli::Cli;
use crate::keys::Detector;
use crate::term::{self, RawMode};

/// Bytes of a tty session's recent output redrawn on attach.
const TTY_REPLAY: u64 = 16 * 1024;
/// How long a session still starting is waited for.
const START_WAIT: Duration = Duration::from_secs(5);

/// How an attachment ended.
pub enum End {
    /// The user detached.
    Detached,
    /// The session ended with this exit code.
    Exited(i32),
    /// A signal told codex-attach to go.
    Signalled(i32),
}

/// Attaches as `cli` says; returns how it ended.
pub fn run(cli: &Cli) -> anyhow::Result<(SessionId, End)> {
    let path =
        shared::root::resolve_path(cli.root.as_deref()).context("finding the session root")?;
    let root = Root::open(&path, Access::Read).context("opening the session root")?;
    let session = pick(&root, cli.selector.as_deref())?;
    let id = session.id.clone();
    let record = session.record.as_ref().map_err(|e| anyhow!("{e}"))?;

    let stdin_tty = io::stdin().is_terminal();
    let stdout_tty = io::stdout().is_terminal();
    let raw = record.tty && stdin_tty && !cli.no_stdin;
    let size = (record.tty && stdout_tty)
        .then(|| term::size(io::stdout()))
        .flatten();
    let hello = Hello {
        version: protocol::VERSION,
        input: !cli.no_stdin,
        size,
    };
    let (stream, welcome) =
        protocol::connect(&session.dir, &hello).with_context(|| format!("connecting to {id}"))?;
    // Piped input is refused rather than silently dropped.
    let mut read_input = !cli.no_stdin;
    if read_input && !welcome.stdin {
        if !stdin_tty {
            bail!("{id} has no stdin: it cannot take piped input (spawn it with --stdin or --tty)");
        }
        eprintln!("[{id} is read-only: its command has no stdin; watching]");
        read_input = false;
    }

    let signals = block_signals()?;
    let _raw = if raw {
        Some(RawMode::enter().context("setting the terminal to raw mode")?)
    } else {
        None
    };
    replay(&session, &welcome, cli.replay)?;
    let mut link = Link {
        id: id.clone(),
        dir: session.dir.clone(),
        stream,
        detector: Detector::new(&cli.detach_keys),
        raw,
        tty: welcome.tty,
        stdout_tty,
        read_input,
        signals,
    };
    let end = link.relay();
    drop(_raw);
    Ok((id, end?))
}

/// The session `selector` names, or the newest running one; it must be
/// running (one still starting is waited for).
fn pick(root: &Root, selector: Option<&str>) -> anyhow::Result<Session> {
    let id = match selector {
        Some(s) => root.resolve(&Selector::parse(s, true)?)?,
        None => root
            .list()?
            .into_iter()
            .find(|s| s.status == Status::Running)
            .map(|s| s.id)
            .ok_or_else(|| anyhow!("no running session in {}", root.path().display()))?,
    };
    let deadline = Instant::now() + START_WAIT;
    loop {
        let session = Session::load(id.clone(), root.session_dir(&id));
        match session.status {
            Status::Running => return Ok(session),
            Status::Starting if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Status::Exited => {
                let r = session.record.as_ref().ok();
                let code = r
                    .and_then(|r| r.exit_code)
                    .map_or("?".into(), |c| c.to_string());
                bail!("{id} is not running: it exited with code {code}")
            }
            Status::Corrupt if session.record.is_err() => {
                let e = session.record.as_ref().err().map(ToString::to_string);
                bail!("{id} cannot be read: {}", e.unwrap_or_default())
            }
            other => bail!("{id} is not running: it is {other}"),
        }
    }
}

/// Shows what the session wrote before we joined: a tty session's last
/// screenfuls (the program repaints too), a pipe session's last lines.
fn replay(session: &Session, welcome: &Welcome, lines: usize) -> anyhow::Result<()> {
    if welcome.tty {
        let index = Reader::open(&session.dir.join(layout::INDEX)).ok();
        let log = StreamLog::open(&session.dir, Stream::Stdout, index.as_ref())?;
        let end = welcome.stdout_len;
        let start = end.saturating_sub(TTY_REPLAY).max(log.first());
        let mut bytes = log.read_range(start, end)?;
        if start > log.first() {
            // Start at a line, not in the middle of an escape sequence.
            let cut = bytes.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
            bytes.drain(..cut);
        }
        let mut out = io::stdout().lock();
        out.write_all(b"\x1b[H\x1b[2J")?;
        out.write_all(&bytes)?;
        out.flush()?;
        return Ok(());
    }
    let mut source = Source::open(session.id.clone(), session.dir.clone())?;
    let window = Window {
        which: Which::All,
        since: None,
        until: None,
        upto: Some(welcome.index_len as usize),
    };
    for line in source.last_lines(lines, &window, false)? {
        let mut text = line.text;
        text.push(b'\n');
        match line.stream {
            Stream::Stdout => io::stdout().lock().write_all(&text)?,
            Stream::Stderr => io::stderr().lock().write_all(&text)?,
        }
    }
    io::stdout().flush()?;
    Ok(())
}

/// Blocks the signals handled in the loop and returns their signalfd.
fn block_signals() -> anyhow::Result<SignalFd> {
    let mut mask = SigSet::empty();
    for sig in [
        Signal::SIGWINCH,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGINT,
        Signal::SIGQUIT,
    ] {
        mask.add(sig);
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)?;
    Ok(SignalFd::with_flags(
        &mask,
        SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC,
    )?)
}

/// The connection and what to do with what comes.
struct Link {
    id: SessionId,
    dir: PathBuf,
    stream: UnixStream,
    detector: Detector,
    raw: bool,
    tty: bool,
    stdout_tty: bool,
    read_input: bool,
    signals: SignalFd,
}

impl Link {
    fn relay(&mut self) -> anyhow::Result<End> {
        let mut inbuf = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let (sock_ready, input_ready, sig_ready) = {
                let stdin_handle = io::stdin();
                let stdin: BorrowedFd<'_> = stdin_handle.as_fd();
                let mut fds = vec![
                    PollFd::new(self.stream.as_fd(), PollFlags::POLLIN),
                    PollFd::new(self.signals.as_fd(), PollFlags::POLLIN),
                ];
                if self.read_input {
                    fds.push(PollFd::new(stdin, PollFlags::POLLIN));
                }
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => return Err(e.into()),
                }
                let ready = |f: &PollFd<'_>| f.revents().is_some_and(|r| !r.is_empty());
                (
                    ready(&fds[0]),
                    fds.get(2).is_some_and(ready),
                    ready(&fds[1]),
                )
            };
            if sig_ready {
                if let Some(end) = self.on_signals()? {
                    return Ok(end);
                }
            }
            if input_ready {
                if let Some(end) = self.on_input(&mut buf)? {
                    return Ok(end);
                }
            }
            if sock_ready {
                let n = match self.stream.read(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e.into()),
                };
                if n == 0 {
                    return self.lost();
                }
                inbuf.extend_from_slice(&buf[..n]);
                while let Some(frame) = Frame::decode(&mut inbuf)? {
                    match frame {
                        Frame::Stdout(b) => write_out(&mut io::stdout().lock(), &b)?,
                        Frame::Stderr(b) => write_out(&mut io::stderr().lock(), &b)?,
                        Frame::Exit(x) => return Ok(End::Exited(x.code)),
                        Frame::Error(m) => bail!("{}: {m}", self.id),
                        _ => {}
                    }
                }
            }
        }
    }

    fn on_signals(&mut self) -> anyhow::Result<Option<End>> {
        while let Ok(Some(info)) = self.signals.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGWINCH) if self.tty && self.stdout_tty && self.raw => {
                    if let Some((cols, rows)) = term::size(io::stdout()) {
                        self.send(Frame::Resize(cols, rows))?;
                    }
                }
                Ok(Signal::SIGINT | Signal::SIGQUIT) => {
                    self.send(Frame::Detach)?;
                    return Ok(Some(End::Detached));
                }
                Ok(sig @ (Signal::SIGTERM | Signal::SIGHUP)) => {
                    let _ = self.send(Frame::Detach);
                    return Ok(Some(End::Signalled(128 + sig as i32)));
                }
                _ => {}
            }
        }
        Ok(None)
    }

    fn on_input(&mut self, buf: &mut [u8]) -> anyhow::Result<Option<End>> {
        let n = match io::stdin().lock().read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            // End of input: piped input is all sent, or ctrl-d on a
            // terminal in line mode.
            self.send(Frame::Detach)?;
            return Ok(Some(End::Detached));
        }
        if !self.raw {
            self.send(Frame::Input(buf[..n].to_vec()))?;
            return Ok(None);
        }
        let (keys, detach) = self.detector.feed(&buf[..n]);
        if !keys.is_empty() {
            self.send(Frame::Input(keys))?;
        }
        if detach {
            self.send(Frame::Detach)?;
            return Ok(Some(End::Detached));
        }
        Ok(None)
    }

    fn send(&mut self, frame: Frame) -> io::Result<()> {
        frame.write_to(&mut self.stream)
    }

    /// The connection closed without the end being told: the supervisor
    /// died, or the end came just before we looked.
    fn lost(&self) -> anyhow::Result<End> {
        let session = Session::load(self.id.clone(), self.dir.clone());
        match (
            session.status,
            session.record.ok().and_then(|r| r.exit_code),
        ) {
            (Status::Exited, Some(code)) => Ok(End::Exited(code)),
            (status, _) => bail!("the connection to {} closed; it is {status}", self.id),
        }
    }
}

fn write_out(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    out.write_all(bytes)?;
    out.flush()
}
