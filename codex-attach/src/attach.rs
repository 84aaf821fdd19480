//! Attaching: pick the session, connect, show recent output, then relay
//! keys one way and output the other until detach or the session's end.

use std::io::{self, IsTerminal, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use ::cli::Failure;
use shared::index::Reader;
use shared::layout::{self, Stream};
use shared::logs::StreamLog;
use shared::output::{Source, Which, Window};
use shared::protocol::{self, Frame, Hello, Welcome};
use shared::record::Kind;
use shared::render::render;
use shared::{Access, Root, Selector, Session, SessionId, Status};

use crate::cli::Cli;
use crate::keys::{Detector, Key};
use crate::term::{self, Setup, Terminal};

/// Bytes of a tty session's recent output redrawn on attach.
const TTY_REPLAY: u64 = 16 * 1024;
/// How long a session still starting is waited for.
const START_WAIT: Duration = Duration::from_secs(5);
/// Input queued for the supervisor beyond which stdin is not read (the
/// supervisor holds us back while the command does not take its input).
const OUTBOX_MAX: usize = 256 * 1024;

/// How an attachment ended.
pub enum End {
    /// The user detached.
    Detached,
    /// The session ended with this exit code.
    Exited(i32),
    /// A signal told codex-attach to go.
    Signalled(i32),
}

/// What codex-attach does with the terminal and with its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A terminal drives a tty session: raw mode, every key to the program.
    Drive,
    /// A terminal watches (`--no-stdin`, or a session without stdin): raw
    /// mode with echo off, input read only for the detach keys, ctrl-D
    /// and ctrl-C.
    Watch,
    /// A terminal types lines to a pipe session's stdin (line mode).
    Lines,
    /// Input from a pipe, or `--send`/`--keys`: sent, then detach. Nothing
    /// is written to a terminal.
    Script,
    /// No input at all, stdin not a terminal (`--no-stdin < /dev/null`):
    /// output to stdout unless it is a terminal.
    Follow,
}

/// Attaches as `cli` says; returns the exit status: 0 when detached, the
/// session's exit code when it ended meanwhile (with a notice), or 128+N
/// when signal N told codex-attach to go.
pub fn run(mut cli: Cli) -> Result<i32, Failure> {
    let mut selectors: Vec<String> = cli.selector.take().into_iter().collect();
    let dest = ::cli::host::target(&cli.host, &mut selectors)?;
    cli.selector = selectors.pop();
    if let ::cli::Dest::Remote(dest) = dest {
        return crate::remote::attach(&cli, &dest);
    }
    let (id, mode, end) = attach(&cli)?;
    Ok(match end {
        End::Detached => {
            if matches!(mode, Mode::Drive | Mode::Watch) {
                eprintln!("[detached from {id}]");
            }
            0
        }
        End::Exited(code) => {
            eprintln!("[{id} exited with code {code}]");
            code
        }
        End::Signalled(code) => code,
    })
}

/// Attaches as `cli` says; returns how it ended.
fn attach(cli: &Cli) -> anyhow::Result<(SessionId, Mode, End)> {
    let root = cli.root.open(Access::Read)?;
    let session = pick(&root, cli.selector.as_deref())?;
    let id = session.id.clone();
    let record = session.record.as_ref().map_err(|e| anyhow!("{e}"))?;

    let stdin_tty = io::stdin().is_terminal();
    let stdout_tty = io::stdout().is_terminal();
    let takes_input = record.tty || record.stdin;
    let scripted = !cli.send.is_empty() || !cli.keys.is_empty();
    let mode = if scripted || (!stdin_tty && !cli.no_stdin) {
        Mode::Script
    } else if !stdin_tty {
        Mode::Follow
    } else if cli.no_stdin || !takes_input {
        Mode::Watch
    } else if record.tty {
        Mode::Drive
    } else {
        Mode::Lines
    };
    if cli.eof && mode != Mode::Script {
        bail!("--eof closes the input after piped input, --send or --keys; stdin is a terminal");
    }
    if mode == Mode::Script && !takes_input {
        bail!("{id} has no stdin: it cannot take input (spawn it with --stdin or --tty)");
    }
    // What is shown: nothing on a terminal unless a terminal is also the
    // input (whose answers to the program's queries must go somewhere).
    let show = stdin_tty || !stdout_tty;
    let on_screen = record.tty && stdout_tty && matches!(mode, Mode::Drive | Mode::Watch);
    let size = on_screen.then(|| ::cli::term::size(io::stdout())).flatten();
    let hello = Hello {
        version: protocol::VERSION,
        input: matches!(mode, Mode::Drive | Mode::Lines | Mode::Script),
        size,
        terminal: mode == Mode::Drive,
    };
    let (stream, welcome) =
        protocol::connect(&session.dir, &hello).with_context(|| format!("connecting to {id}"))?;
    let mut mode = mode;
    if matches!(mode, Mode::Lines | Mode::Script) && !welcome.stdin {
        if mode == Mode::Script {
            bail!("{id} takes no more input: its stdin was closed");
        }
        mode = Mode::Watch;
    }
    if mode == Mode::Watch && !cli.no_stdin {
        eprintln!("[{id} is read-only: its command has no stdin; watching]");
    }

    let mut link = Link {
        id: id.clone(),
        dir: session.dir.clone(),
        stream,
        detector: match mode {
            Mode::Watch => Detector::new(&cli.detach_keys, &[Key::Ctrl(b'd'), Key::Ctrl(b'c')]),
            _ => Detector::new(&cli.detach_keys, &[]),
        },
        mode,
        tty: welcome.tty,
        on_screen,
        show,
        eof: cli.eof,
        events: (record.kind == Kind::Exec).then(Vec::new),
        signals: block_signals()?,
        outbox: Vec::new(),
        delivery: welcome.delivery,
        syncing: false,
        told: None,
    };
    if mode == Mode::Script && scripted {
        let mut input: Vec<u8> = cli.send.iter().flat_map(|t| t.bytes()).collect();
        input.extend(cli.keys.iter().flatten());
        return Ok((id, mode, link.send_all(input)?));
    }

    let _terminal = match mode {
        Mode::Drive | Mode::Watch if record.tty => Some(Terminal::enter(Setup::Raw, size)),
        Mode::Watch => Some(Terminal::enter(Setup::RawInput, None)),
        _ => None,
    }
    .transpose()
    .context("setting the terminal to raw mode")?;
    if show && mode != Mode::Script {
        replay(&session, &welcome, cli.replay, link.events.is_some())?;
    }
    let end = link.relay()?;
    Ok((id, mode, end))
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
                let r = session.record.as_deref().ok();
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
/// screenfuls, its terminal queries left out (the program repaints too),
/// a pipe session's last lines (an exec session's rendered).
fn replay(
    session: &Session,
    welcome: &Welcome,
    lines: usize,
    rendered: bool,
) -> anyhow::Result<()> {
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
        term::show(&mut io::stdout().lock(), &bytes, true)?;
        return Ok(());
    }
    let mut source = Source::open(session.id.clone(), session.dir.clone())?;
    let window = Window {
        which: Which::All,
        since: None,
        until: None,
        upto: Some(welcome.index_len as usize),
    };
    for mut line in source.last_lines(lines, &window, false)? {
        if let Some(gap) = line.gap {
            line.text = gap.text(line.stream).into_bytes();
        }
        match line.stream {
            Stream::Stdout if rendered => {
                let mut out = io::stdout().lock();
                for text in rendered_line(&line.text) {
                    out.write_all(&text)?;
                }
            }
            Stream::Stdout => writeln_bytes(&mut io::stdout().lock(), &line.text)?,
            Stream::Stderr => writeln_bytes(&mut io::stderr().lock(), &line.text)?,
        }
    }
    io::stdout().flush()?;
    Ok(())
}

/// A line of an exec session's stdout as people read it (codex-tail's
/// rendering), each output line with its newline.
fn rendered_line(line: &[u8]) -> Vec<Vec<u8>> {
    match render(line) {
        Some(lines) => lines
            .into_iter()
            .map(|l| format!("{l}\n").into_bytes())
            .collect(),
        None => vec![[line, b"\n"].concat()],
    }
}

fn writeln_bytes(out: &mut impl Write, text: &[u8]) -> io::Result<()> {
    out.write_all(text)?;
    out.write_all(b"\n")
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
    mode: Mode,
    tty: bool,
    /// codex-attach draws on the terminal (a tty session's screen).
    on_screen: bool,
    /// Output is written to stdout.
    show: bool,
    /// Close the session's input at the end of ours.
    eof: bool,
    /// An exec session: its stdout rendered line by line; the line begun.
    events: Option<Vec<u8>>,
    signals: SignalFd,
    /// Frames of input not yet taken by the supervisor (it holds us back
    /// while the command's input backlog is full).
    outbox: Vec<u8>,
    /// The supervisor tells when input is delivered (sync frames).
    delivery: bool,
    /// Our input ended; waiting to hear that all of it was delivered.
    syncing: bool,
    /// What the supervisor said of our input's delivery at the session's
    /// end, unasked.
    told: Option<protocol::Delivered>,
}

impl Link {
    fn relay(&mut self) -> anyhow::Result<End> {
        let mut inbuf = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        let read_input = !matches!(self.mode, Mode::Follow);
        // When the escape sequence being typed must be taken as it is.
        let mut escape_due: Option<Instant> = None;
        loop {
            let timeout = escape_due.map_or(PollTimeout::NONE, |due| {
                let left = due.saturating_duration_since(Instant::now());
                PollTimeout::try_from(left + Duration::from_millis(1)).unwrap_or(PollTimeout::MAX)
            });
            let (sock_ready, input_ready, sig_ready) = {
                let stdin_handle = io::stdin();
                let stdin: BorrowedFd<'_> = stdin_handle.as_fd();
                let mut sock = PollFlags::POLLIN;
                if !self.outbox.is_empty() {
                    sock |= PollFlags::POLLOUT;
                }
                let mut fds = vec![
                    PollFd::new(self.stream.as_fd(), sock),
                    PollFd::new(self.signals.as_fd(), PollFlags::POLLIN),
                ];
                if read_input && !self.syncing && self.outbox.len() < OUTBOX_MAX {
                    fds.push(PollFd::new(stdin, PollFlags::POLLIN));
                }
                match poll(&mut fds, timeout) {
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
                escape_due = self.detector.waiting().map(|wait| Instant::now() + wait);
            } else if escape_due.is_some_and(|due| due <= Instant::now()) {
                // Nothing followed the Escape: it was the Escape key.
                escape_due = None;
                let fed = self.detector.flush();
                if let Some(end) = self.on_keys(fed.pass, fed.detach)? {
                    return Ok(end);
                }
            }
            if sock_ready && !self.outbox.is_empty() {
                self.flush_input()?;
            }
            if sock_ready {
                let n = match nix::sys::socket::recv(
                    self.stream.as_raw_fd(),
                    &mut buf,
                    nix::sys::socket::MsgFlags::MSG_DONTWAIT,
                ) {
                    Ok(n) => n,
                    Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => continue,
                    Err(e) => return Err(e.into()),
                };
                if n == 0 {
                    if self.mode == Mode::Script && (self.syncing || !self.outbox.is_empty()) {
                        return self.undelivered(None);
                    }
                    return self.lost();
                }
                inbuf.extend_from_slice(&buf[..n]);
                while let Some(frame) = Frame::decode(&mut inbuf)? {
                    match frame {
                        Frame::Stdout(b) => self.output(&b)?,
                        Frame::Stderr(b) if self.show => {
                            let mut err = io::stderr().lock();
                            err.write_all(&b)?;
                            err.flush()?;
                        }
                        Frame::Exit(x) if self.mode == Mode::Script => {
                            return self.ended_while_sending(x.code)
                        }
                        Frame::Exit(x) => return Ok(End::Exited(x.code)),
                        Frame::Delivered(d) if !self.syncing => self.told = Some(d),
                        Frame::Delivered(d) => {
                            if !d.delivered {
                                let why = d.error.unwrap_or_else(|| "not delivered".into());
                                bail!("{}: {}", self.id, ::cli::text::line(&why));
                            }
                            self.send(Frame::Detach)?;
                            return Ok(End::Detached);
                        }
                        Frame::Error(m) => bail!("{}: {m}", self.id),
                        _ => {}
                    }
                }
            }
        }
    }

    /// Output of the session: to the terminal through the display, an
    /// exec session's events rendered.
    fn output(&mut self, bytes: &[u8]) -> io::Result<()> {
        if !self.show {
            return Ok(());
        }
        let mut out = io::stdout().lock();
        let Some(line) = self.events.as_mut() else {
            return term::show(&mut out, bytes, false);
        };
        line.extend_from_slice(bytes);
        while let Some(nl) = line.iter().position(|&b| b == b'\n') {
            let whole: Vec<u8> = line.drain(..=nl).collect();
            for text in rendered_line(&whole[..nl]) {
                out.write_all(&text)?;
            }
        }
        out.flush()
    }

    fn on_signals(&mut self) -> anyhow::Result<Option<End>> {
        while let Ok(Some(info)) = self.signals.read_signal() {
            match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGWINCH) if self.tty && self.on_screen => {
                    if let Some((cols, rows)) = ::cli::term::size(io::stdout()) {
                        term::resized((cols, rows));
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
            if self.eof {
                self.queue(Frame::Close);
            }
            if self.delivery && matches!(self.mode, Mode::Script | Mode::Lines) {
                // Detach once the supervisor says all of it reached the
                // command (or say why not).
                self.queue(Frame::Sync);
                self.syncing = true;
                self.flush_input()?;
                return Ok(None);
            }
            self.send(Frame::Detach)?;
            return Ok(Some(End::Detached));
        }
        match self.mode {
            Mode::Drive | Mode::Watch => {
                let fed = self.detector.feed(&buf[..n]);
                self.on_keys(fed.pass, fed.detach)
            }
            _ => {
                self.queue(Frame::Input(buf[..n].to_vec()));
                self.flush_input()?;
                Ok(None)
            }
        }
    }

    /// The session ended (with `code`) while we sent it piped input: fine
    /// if all of it was sent and delivered; else an error saying so.
    fn ended_while_sending(&mut self, code: i32) -> anyhow::Result<End> {
        if let Some(d) = self.told.take().filter(|d| !d.delivered) {
            return self.undelivered(d.error);
        }
        let more_input = {
            let stdin = io::stdin();
            let mut fds = [PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
            let readable = poll(&mut fds, PollTimeout::ZERO).is_ok_and(|n| n > 0)
                && fds[0]
                    .revents()
                    .is_some_and(|r| r.contains(PollFlags::POLLIN));
            let mut byte = [0u8; 1];
            readable && !self.syncing && io::stdin().lock().read(&mut byte).is_ok_and(|n| n > 0)
        };
        if !self.outbox.is_empty() || more_input || (self.syncing && self.delivery) {
            return self.undelivered(None);
        }
        Ok(End::Exited(code))
    }

    /// Input did not reach the session: the error codex-attach ends with.
    fn undelivered(&self, why: Option<String>) -> anyhow::Result<End> {
        let session = Session::load(self.id.clone(), self.dir.clone());
        let how = match session.record.ok().and_then(|r| r.exit_code) {
            Some(code) => format!("it ended (exit code {code})"),
            None => format!("it is {}", session.status),
        };
        let why = why.map_or_else(
            || format!("{how} before all of the input was delivered"),
            |w| format!("{} ({how})", ::cli::text::line(&w)),
        );
        bail!("{}: input lost: {why}", self.id)
    }

    /// Queues a frame behind the input not yet sent.
    fn queue(&mut self, frame: Frame) {
        self.outbox.extend_from_slice(&frame.encode());
    }

    /// [`Link::flush_some`] for piped input: a socket that fails (the
    /// supervisor went, the session ended) with input still queued means
    /// the input is lost, and codex-attach says so, wherever that happens.
    fn flush_input(&mut self) -> anyhow::Result<()> {
        match self.flush_some() {
            Ok(()) => Ok(()),
            Err(_) => self.undelivered(None).map(drop),
        }
    }

    /// Sends as much of the queued frames as the socket takes now.
    fn flush_some(&mut self) -> io::Result<()> {
        use nix::sys::socket::{send, MsgFlags};
        while !self.outbox.is_empty() {
            match send(
                self.stream.as_raw_fd(),
                &self.outbox,
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
            ) {
                Ok(n) => {
                    self.outbox.drain(..n);
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Keys typed on a terminal, the detach sequence taken out: to the
    /// program when driving it, dropped when watching (the terminal's
    /// answers to queries included).
    fn on_keys(&mut self, keys: Vec<u8>, detach: bool) -> anyhow::Result<Option<End>> {
        if !keys.is_empty() && self.mode == Mode::Drive {
            self.send(Frame::Input(keys))?;
        }
        if detach {
            self.send(Frame::Detach)?;
            return Ok(Some(End::Detached));
        }
        Ok(None)
    }

    /// `--send`/`--keys`: the input, the end of input when asked, then,
    /// once the supervisor says the input reached the command, detach.
    fn send_all(&mut self, input: Vec<u8>) -> anyhow::Result<End> {
        let mut frames = Vec::new();
        if !input.is_empty() {
            frames.push(Frame::Input(input));
        }
        if self.eof {
            frames.push(Frame::Close);
        }
        if self.delivery {
            frames.push(Frame::Sync);
        }
        for frame in frames {
            if self.send(frame).is_err() {
                // The session ended before it took the input.
                return self.undelivered(None);
            }
        }
        if self.delivery {
            let mut buf = Vec::new();
            loop {
                match Frame::read_from(&mut self.stream, &mut buf)? {
                    Some(Frame::Delivered(d)) if d.delivered => break,
                    Some(Frame::Delivered(d)) => {
                        let why = d.error.unwrap_or_else(|| "not delivered".into());
                        bail!("{}: {}", self.id, ::cli::text::line(&why));
                    }
                    Some(Frame::Exit(x)) => return Ok(End::Exited(x.code)),
                    Some(Frame::Error(m)) => bail!("{}: {m}", self.id),
                    Some(_) => {}
                    None => return self.lost(),
                }
            }
        }
        self.send(Frame::Detach)?;
        Ok(End::Detached)
    }

    /// Sends a frame, after whatever input is still queued.
    fn send(&mut self, frame: Frame) -> io::Result<()> {
        if !self.outbox.is_empty() {
            let queued = std::mem::take(&mut self.outbox);
            self.stream.write_all(&queued)?;
        }
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
