//! Where the command's output comes from, and where its input goes: packet
//! pipes (with a `--stdin` pipe) or a pseudo-terminal, behind one set of
//! methods, so that the loop asks "what do you poll", "this is ready",
//! "a write was announced" and "take what is left" without caring which.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::time::Instant;

use nix::poll::PollFlags;

use shared::layout::Stream;
use shared::protocol::Frame;
use shared::Timestamp;

use crate::agent::Watcher;
use crate::announce::Announcements;
use crate::command::Io;
use crate::feed::{Delivery, Feed};
use crate::logs::Logs;
use crate::pipes::Pipes;
use crate::pty::Pty;
use crate::server::{Event, Server};

/// Both output streams.
const STREAMS: [Stream; 2] = [Stream::Stdout, Stream::Stderr];
/// Bytes read from a pty before other work gets a turn.
const PTY_BUDGET: usize = 1 << 20;

/// What to poll for the output source: up to three descriptors, each with
/// the events wanted; [`Output::on_ready`] takes the answers in this order.
pub type PollSet<'a> = [Option<(BorrowedFd<'a>, PollFlags)>; 3];

/// Those who see the output besides the logs: the agent summary (an exec
/// session's stdout) and the attached clients.
pub struct Consumers<'a> {
    /// The attach socket and its clients.
    pub server: &'a mut Option<Server>,
    /// Exec sessions: the agent summary.
    pub watcher: &'a mut Option<Watcher>,
    /// Terminal sessions: what the program announces about its state.
    pub heard: &'a mut Option<Announcements>,
}

impl Consumers<'_> {
    /// Whether anybody needs to see the bytes (else bulk output may skip
    /// user space).
    fn want_bytes(&self) -> bool {
        self.watcher.is_some() || self.server.as_ref().is_some_and(Server::has_clients)
    }

    /// Hands them `bytes` read from `stream`.
    fn take(&mut self, stream: Stream, bytes: &[u8]) {
        if let (Some(w), Stream::Stdout) = (self.watcher.as_mut(), stream) {
            w.feed(bytes);
        }
        if let Some(server) = self.server.as_mut().filter(|s| s.has_clients()) {
            server.broadcast(&match stream {
                Stream::Stdout => Frame::Stdout(bytes.to_vec()),
                Stream::Stderr => Frame::Stderr(bytes.to_vec()),
            });
        }
    }
}

/// The command's output source and input sink.
pub enum Output {
    /// Packet pipes for stdout and stderr (see [`crate::pipes`]).
    Pipes {
        /// The read ends of stdout and stderr.
        pipes: Pipes,
        /// Input for a `--stdin` session's command (kept open so that it
        /// does not see the end of its input).
        stdin: Option<Feed>,
    },
    /// A pseudo-terminal, which carries the program's output and input.
    Pty(Pty),
}

/// What to poll a pipe for: its end, and in bulk mode its input.
fn pipe_events(pipes: &Pipes, stream: Stream) -> Option<(BorrowedFd<'_>, PollFlags)> {
    let events = match pipes.is_bulk(stream) {
        true => PollFlags::POLLIN,
        false => PollFlags::empty(),
    };
    pipes.fd(stream).map(|fd| (fd, events))
}

impl Output {
    /// Wraps the supervisor's ends of a command just started.
    pub fn new(io: Io, stdin: Option<OwnedFd>) -> io::Result<Output> {
        Ok(match io {
            Io::Pipes { stdout, stderr } => Output::Pipes {
                pipes: Pipes::new(stdout, stderr),
                stdin: stdin.map(Feed::new).transpose()?,
            },
            Io::Pty { master, size } => Output::Pty(Pty::new(master, size)?),
        })
    }

    /// Whether the command takes input from attached clients.
    pub fn takes_input(&self) -> bool {
        match self {
            Output::Pipes { stdin, .. } => stdin.as_ref().is_some_and(Feed::is_open),
            Output::Pty(_) => true,
        }
    }

    /// The command's input on its way, when it takes input.
    fn feed(&self) -> Option<&Feed> {
        match self {
            Output::Pipes { stdin, .. } => stdin.as_ref(),
            Output::Pty(pty) => Some(pty.feed()),
        }
    }

    /// Whether the command's input backlog is full: clients that send
    /// input are not read meanwhile (back-pressure).
    pub fn input_full(&self) -> bool {
        self.feed().is_some_and(Feed::is_full)
    }

    /// Bytes of input accepted so far.
    pub fn input_accepted(&self) -> u64 {
        self.feed().map_or(0, Feed::accepted)
    }

    /// Whether the input accepted up to `mark` has reached the command.
    pub fn delivery(&self, mark: u64) -> Delivery {
        match self.feed() {
            Some(feed) => feed.delivery(mark),
            None if mark == 0 => Delivery::Done,
            None => Delivery::Failed(mark),
        }
    }

    /// Input for the command from a client; false when it is refused (the
    /// input was closed, or its reader is gone).
    pub fn input(&mut self, bytes: &[u8]) -> bool {
        match self {
            Output::Pty(pty) => pty.input(bytes),
            Output::Pipes {
                stdin: Some(feed), ..
            } => feed.push(bytes),
            Output::Pipes { stdin: None, .. } => bytes.is_empty(),
        }
    }

    /// Whether output may still come.
    pub fn is_open(&self) -> bool {
        match self {
            Output::Pipes { pipes, .. } => STREAMS.into_iter().any(|s| pipes.is_open(s)),
            Output::Pty(pty) => pty.fd().is_some(),
        }
    }

    /// The descriptors to poll. Pipes are polled only for their end
    /// (POLLHUP is always reported; their data is read when a write is
    /// announced), unless in bulk mode (then for input too), and the stdin
    /// pipe for room while input waits. A pty's
    /// master is polled for output, and for room while input waits.
    pub fn poll_set(&self) -> PollSet<'_> {
        fn room(fd: Option<BorrowedFd<'_>>) -> Option<(BorrowedFd<'_>, PollFlags)> {
            fd.map(|fd| (fd, PollFlags::POLLOUT))
        }
        match self {
            Output::Pipes { pipes, stdin } => [
                pipe_events(pipes, Stream::Stdout),
                pipe_events(pipes, Stream::Stderr),
                room(stdin.as_ref().and_then(Feed::waiting_fd)),
            ],
            Output::Pty(pty) => [
                pty.fd().map(|fd| (fd, PollFlags::POLLIN)),
                room(pty.waiting_fd()),
                None,
            ],
        }
    }

    /// Handles what poll found (the events returned, empty when none), in
    /// the order of [`Output::poll_set`].
    pub fn on_ready(&mut self, found: [PollFlags; 3], logs: &mut Logs, to: &mut Consumers<'_>) {
        let ready = found.map(|f| !f.is_empty());
        match self {
            Output::Pipes { pipes, stdin } => {
                for (stream, events) in STREAMS.into_iter().zip(found) {
                    if events.contains(PollFlags::POLLIN) {
                        // Polled for input in bulk mode (which a write
                        // announced on the other pipe may have ended since:
                        // then this does nothing).
                        pipes.pump(stream, logs, &mut |s, b| to.take(s, b));
                    } else if !events.is_empty() && pipes.is_bulk(stream) {
                        // Hung up in bulk mode: splice what is left.
                        pipes.pump(stream, logs, &mut |s, b| to.take(s, b));
                    } else if !events.is_empty() {
                        // Every writer is gone: what is left comes after
                        // all the announced writes just handled.
                        pipes.drain(stream, logs, &mut |s, b| to.take(s, b));
                    }
                }
                if let Some(feed) = stdin.as_mut().filter(|_| ready[2]) {
                    feed.write_pending();
                }
            }
            Output::Pty(pty) => {
                if ready[1] {
                    pty.write_pending();
                }
                if ready[0] {
                    read_pty(pty, logs, to.server, to.heard);
                }
            }
        }
    }

    /// Whether bulk output may skip user space from now on: only while
    /// nobody needs to see the bytes. Called before every read, so that a
    /// client that just attached sees the next burst.
    pub fn allow_splice(&mut self, to: &Consumers<'_>) {
        if let Output::Pipes { pipes, .. } = self {
            pipes.splice = !to.want_bytes();
        }
    }

    /// Takes in one write announced on the pipe with descriptor `fd`.
    pub fn on_write(&mut self, fd: RawFd, logs: &mut Logs, to: &mut Consumers<'_>) {
        if let Output::Pipes { pipes, .. } = self {
            if let Some(stream) = pipes.stream_of(fd) {
                pipes.on_write(stream, logs, &mut |s, b| to.take(s, b));
            }
        }
    }

    /// The kernel's queue of write announcements overflowed: reads both
    /// pipes empty; the order is as good as two pipes allow.
    pub fn on_overflow(&mut self, logs: &mut Logs, to: &mut Consumers<'_>) {
        if let Output::Pipes { pipes, .. } = self {
            for stream in STREAMS {
                pipes.drain(stream, logs, &mut |s, b| to.take(s, b));
            }
        }
    }

    /// Once every writer known is gone: reads what is left and stops
    /// reading, without waiting for an end of file that a stranger holding
    /// the pipe or terminal open could delay forever.
    pub fn take_rest(&mut self, logs: &mut Logs, to: &mut Consumers<'_>) {
        match self {
            Output::Pipes { pipes, .. } => {
                for stream in STREAMS {
                    pipes.drain(stream, logs, &mut |s, b| to.take(s, b));
                }
                pipes.close();
            }
            Output::Pty(pty) => {
                read_pty(pty, logs, to.server, to.heard);
                pty.close();
            }
        }
    }

    /// Logs and hands out what was read and not yet logged (pipes batch
    /// their reads; a pty's are logged as they come), and commits the
    /// index.
    pub fn flush(&mut self, logs: &mut Logs, to: &mut Consumers<'_>) {
        if let Output::Pipes { pipes, .. } = self {
            pipes.flush(logs, &mut |s, b| to.take(s, b));
        }
        logs.commit();
    }

    /// A pty's window size (columns, rows); none for pipes.
    pub fn window(&self) -> Option<(u16, u16)> {
        match self {
            Output::Pty(pty) => Some(pty.size()),
            Output::Pipes { .. } => None,
        }
    }

    /// When the source needs a turn (a pty's repaint jiggle to end).
    pub fn deadline(&self) -> Option<Instant> {
        match self {
            Output::Pty(pty) => pty.deadline(),
            Output::Pipes { .. } => None,
        }
    }

    /// Does what is due at `now`.
    pub fn check_deadline(&mut self, now: Instant) {
        if let Output::Pty(pty) = self {
            pty.check_deadline(now);
        }
    }

    /// Acts on what a client asked for: input for the command, and, in a
    /// tty session, the window size.
    pub fn on_client(&mut self, event: Event) {
        match (event, self) {
            (Event::Attached(Some((cols, rows))), Output::Pty(pty)) => {
                if (cols, rows) != pty.size() {
                    pty.resize(cols, rows);
                } else {
                    // Same size: a jiggle makes full-screen programs
                    // repaint. (A client without a terminal, such as piped
                    // input, needs no repaint; a jiggle would only disturb
                    // the program as the input arrives.)
                    pty.jiggle();
                }
            }
            (Event::Resize(cols, rows) | Event::Left(Some((cols, rows))), Output::Pty(pty))
                if (cols, rows) != pty.size() =>
            {
                pty.resize(cols, rows)
            }
            (Event::Close, Output::Pty(pty)) => pty.end_of_input(),
            (
                Event::Close,
                Output::Pipes {
                    stdin: Some(feed), ..
                },
            ) => feed.close(),
            _ => {}
        }
    }
}

/// Reads what the program wrote to its terminal: logged, sent to the
/// attached clients, scanned for what the program announces about its
/// state, and, while nobody is attached, for terminal queries to answer.
fn read_pty(
    pty: &mut Pty,
    logs: &mut Logs,
    server: &mut Option<Server>,
    heard: &mut Option<Announcements>,
) {
    let mut budget = PTY_BUDGET;
    while budget > 0 {
        let Some(chunk) = pty.read() else { break };
        if chunk.is_empty() {
            break;
        }
        budget = budget.saturating_sub(chunk.len());
        let now = Timestamp::now();
        // Attached terminals first: an echo reaches the person typing
        // without waiting for the log's write (the loop is single-threaded,
        // so no client attaches between the two).
        let frame = Frame::Stdout(chunk);
        if let Some(server) = server.as_mut().filter(|s| s.has_clients()) {
            server.broadcast(&frame);
        }
        let Frame::Stdout(chunk) = frame else {
            unreachable!("built as Stdout above")
        };
        logs.log_chunk(Stream::Stdout, &chunk, now);
        let asked = heard.as_mut().is_some_and(|h| h.feed(&chunk));
        let terminals = server.as_ref().is_some_and(Server::has_terminals);
        if asked && !terminals {
            pty.input(shared::termstate::QUERY_ANSWER);
        }
        if !terminals {
            pty.answer_queries(&chunk);
        }
    }
}
