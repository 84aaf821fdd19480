//! The attach socket: accepts codex-attach clients of the same user, greets
//! them, passes their input and window sizes on, and sends them the
//! session's output. Each client has a bounded queue; a client that stops
//! reading is dropped when its queue is full, never the command or the log.
//! Input is never dropped: while the command's input backlog is full, the
//! clients that send input are not read (back-pressure), and a client's
//! sync (`S`) is answered once its input reached the command, or with the
//! reason it never will.
//!
//! A flood of connections (by the session's own user) never stops the
//! supervisor: clients are capped, a connection that does not say hello in
//! time is closed, and when `accept` fails for want of descriptors a spare
//! one is given up to accept and close the connection, so the listener
//! never stays readable with poll spinning on it.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::PollFlags;
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};

use shared::layout;
use shared::protocol::{self, Delivered, Frame, Welcome};

use crate::feed::Delivery;

/// Output queued for one client before it is dropped as stalled.
const MAX_QUEUE: usize = 4 << 20;
/// The most clients at once (fewer when the descriptor limit is low).
const MAX_CLIENTS: usize = 64;
/// Descriptors kept free for the logs, the index and the records.
const FD_RESERVE: u64 = 16;
/// How long a connection has to say hello.
const HELLO_WITHIN: Duration = Duration::from_secs(3);
/// Bytes read from one client before others get a turn (input is then
/// taken no faster than the command's backlog allows).
const READ_BUDGET: usize = 256 * 1024;

/// What clients asked for.
pub enum Event {
    /// A client joined, with its terminal's size when it has one.
    Attached(Option<(u16, u16)>),
    /// Input for the command, from client number `.0`.
    Input(u64, Vec<u8>),
    /// Client number `.0` asks to be told once its input is delivered.
    Sync(u64),
    /// A client's terminal changed size.
    Resize(u16, u16),
    /// A client asked to close the command's input.
    Close,
    /// Clients left; the newest one still attached has this size (none:
    /// no client with a terminal is left).
    Left(Option<(u16, u16)>),
}

/// One connection. Its readiness is its own: poll's answer is noted on
/// the client itself, so that clients dropped before they are served (a
/// broadcast drops stalled ones) shift nobody's readiness to another.
struct Client {
    /// Its number, for events.
    id: u64,
    stream: UnixStream,
    /// It said it sends input.
    input: bool,
    /// It waits to hear that the input accepted up to this mark reached
    /// the command.
    sync: Option<u64>,
    /// Bytes of its input refused (the input was closed).
    refused: u64,
    /// The input accepted up to the end of its last input.
    mark: u64,
    /// Poll found it readable (or closed, or writable as asked).
    ready: bool,
    inbuf: Vec<u8>,
    outq: VecDeque<Vec<u8>>,
    queued: usize,
    greeted: bool,
    gone: bool,
    /// When it must have said hello.
    hello_by: Instant,
    /// Its terminal's size, as last told.
    size: Option<(u16, u16)>,
    /// It shows the output on a terminal and forwards that terminal's
    /// input (its answers to queries included).
    terminal: bool,
}

/// The listening socket and its clients.
pub struct Server {
    listener: UnixListener,
    /// Poll found a connection waiting.
    listener_ready: bool,
    path: PathBuf,
    clients: Vec<Client>,
    /// The most clients at once.
    max_clients: usize,
    /// A descriptor given up when `accept` finds none left (EMFILE), to
    /// take the connection and close it.
    spare: Option<File>,
    /// Greeted clients went away since [`Server::take_left`] last looked.
    left: bool,
    /// The command's input backlog is full: input clients are not read.
    paused: bool,
    /// The next client's number.
    next_id: u64,
}

/// Binds `dir/attach.sock` (through /proc/self/fd when the path is too
/// long for a socket address), readable and writable by the owner only.
pub fn listen(dir: &Path) -> io::Result<UnixListener> {
    let path = dir.join(layout::SOCKET);
    let _ = std::fs::remove_file(&path);
    let dir_file = File::open(dir)?;
    let bind_path = protocol::socket_path(dir, Some(dir_file.as_raw_fd()));
    let listener = UnixListener::bind(&bind_path)?;
    drop(dir_file);
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(listener)
}

impl Server {
    /// Binds `dir/attach.sock` (through /proc/self/fd when the path is too
    /// long for a socket address), readable and writable by the owner only.
    pub fn bind(dir: &Path) -> io::Result<Server> {
        Server::listening(listen(dir)?, dir)
    }

    /// Serves `listener`, bound to `dir/attach.sock` by [`listen`] (in
    /// codex-spawn's child, before this image was exec'd).
    pub fn listening(listener: UnixListener, dir: &Path) -> io::Result<Server> {
        listener.set_nonblocking(true)?;
        let max_clients = (fd_limit().saturating_sub(FD_RESERVE) as usize).clamp(1, MAX_CLIENTS);
        Ok(Server {
            listener,
            listener_ready: false,
            path: dir.join(layout::SOCKET),
            clients: Vec::new(),
            max_clients,
            spare: File::open("/dev/null").ok(),
            left: false,
            paused: false,
            next_id: 0,
        })
    }

    /// Gives up the spare descriptor (before the final record, which needs
    /// descriptors of its own).
    pub fn release_spare(&mut self) {
        self.spare = None;
    }

    /// When the first connection still to say hello runs out of time.
    pub fn deadline(&self) -> Option<Instant> {
        self.clients
            .iter()
            .filter(|c| !c.greeted)
            .map(|c| c.hello_by)
            .min()
    }

    /// Closes the connections that did not say hello in time.
    pub fn check_deadline(&mut self, now: Instant) {
        self.clients.retain(|c| c.greeted || c.hello_by > now);
    }

    /// Whether any client is attached (greeted).
    pub fn has_clients(&self) -> bool {
        self.clients.iter().any(|c| c.greeted)
    }

    /// Whether an attached client's terminal answers the program's
    /// terminal queries (it shows the output and forwards its input).
    pub fn has_terminals(&self) -> bool {
        self.clients.iter().any(|c| c.greeted && c.terminal)
    }

    /// When clients left since the last call: the size of the newest
    /// client still attached that has a terminal (so the window follows
    /// who is there).
    pub fn take_left(&mut self) -> Option<Option<(u16, u16)>> {
        if !std::mem::take(&mut self.left) {
            return None;
        }
        Some(
            self.clients
                .iter()
                .rev()
                .filter(|c| c.greeted)
                .find_map(|c| c.size),
        )
    }

    /// Drops the clients that went, noting whether attached ones did.
    fn drop_gone(&mut self) {
        self.left |= self.clients.iter().any(|c| c.gone && c.greeted);
        self.clients.retain(|c| !c.gone);
    }

    /// The descriptors to poll, with their events: the listener first,
    /// then each client. Hand poll's answers to [`Server::mark_ready`] in
    /// this order, before anything else touches the server.
    pub fn poll_fds(&self) -> Vec<(BorrowedFd<'_>, PollFlags)> {
        let mut fds = vec![(self.listener.as_fd(), PollFlags::POLLIN)];
        for c in &self.clients {
            if let Some(flags) = self.flags(c) {
                fds.push((c.stream.as_fd(), flags));
            }
        }
        fds
    }

    /// What to poll a client for (none: not polled, so that a client held
    /// back, even one that hung up, does not wake the loop).
    fn flags(&self, c: &Client) -> Option<PollFlags> {
        let mut flags = PollFlags::empty();
        if !self.held_back(c) {
            flags |= PollFlags::POLLIN;
        }
        if !c.outq.is_empty() {
            flags |= PollFlags::POLLOUT;
        }
        (!flags.is_empty()).then_some(flags)
    }

    /// Whether a client is not read now: it sends input and the command's
    /// backlog is full.
    fn held_back(&self, c: &Client) -> bool {
        self.paused && c.greeted && c.input
    }

    /// Holds back (or no longer) the clients that send input, as the
    /// command's input backlog is full (or not).
    pub fn pause_input(&mut self, full: bool) {
        self.paused = full;
    }

    /// Notes on the listener and on each client what poll reported for
    /// them, given in the order of [`Server::poll_fds`] (missing: not
    /// ready). Each keeps its mark until [`Server::serve`].
    pub fn mark_ready(&mut self, ready: &[bool]) {
        let mut ready = ready.iter().copied();
        self.listener_ready = ready.next().unwrap_or(false);
        let polled: Vec<bool> = self
            .clients
            .iter()
            .map(|c| self.flags(c).is_some())
            .collect();
        for (client, polled) in self.clients.iter_mut().zip(polled) {
            client.ready = polled && ready.next().unwrap_or(false);
        }
    }

    /// Notes that `n` bytes of client `id`'s input were refused.
    pub fn refused(&mut self, id: u64, n: usize) {
        if let Some(c) = self.clients.iter_mut().find(|c| c.id == id) {
            c.refused += n as u64;
        }
    }

    /// Client `id`'s input was accepted up to `mark`.
    pub fn accepted(&mut self, id: u64, mark: u64) {
        if let Some(c) = self.clients.iter_mut().find(|c| c.id == id) {
            c.mark = mark;
        }
    }

    /// At the session's end: every client that sent input is told whether
    /// it was delivered, asked or not (it may not have had the time to
    /// ask before the end).
    pub fn tell_delivery(&mut self, delivery: impl Fn(u64) -> Delivery) {
        for c in &mut self.clients {
            if c.sync.is_none() && (c.mark > 0 || c.refused > 0) {
                c.sync = Some(c.mark);
            }
        }
        self.answer_syncs(true, delivery);
    }

    /// Client `id` waits until the input accepted up to `mark` reached the
    /// command.
    pub fn await_delivery(&mut self, id: u64, mark: u64) {
        if let Some(c) = self.clients.iter_mut().find(|c| c.id == id) {
            c.sync = Some(mark);
        }
    }

    /// Answers the clients waiting for their input's delivery, as far as
    /// `delivery` can tell; once the session has `ended`, input not yet
    /// delivered never will be.
    pub fn answer_syncs(&mut self, ended: bool, delivery: impl Fn(u64) -> Delivery) {
        for c in self.clients.iter_mut().filter(|c| c.sync.is_some()) {
            let mark = c.sync.unwrap_or(0);
            let error = if c.refused > 0 {
                Some(format!(
                    "{} bytes of input were refused: the session's input is closed",
                    c.refused
                ))
            } else {
                match delivery(mark) {
                    Delivery::Done => None,
                    Delivery::Failed(n) => Some(format!(
                        "{n} bytes of input were not delivered: the command no longer reads its input"
                    )),
                    Delivery::Waiting if ended => Some(
                        "input was not delivered: the command ended before it took it all".into(),
                    ),
                    Delivery::Waiting => continue,
                }
            };
            c.sync = None;
            let delivered = error.is_none();
            c.send(Frame::Delivered(Delivered { delivered, error }).encode());
            c.flush();
        }
        self.drop_gone();
    }

    /// Whether anything was marked ready.
    pub fn has_ready(&self) -> bool {
        self.listener_ready || self.clients.iter().any(|c| c.ready)
    }

    /// Serves what was marked ready: the clients' frames, then new
    /// connections; `welcome` is what a new client is told.
    pub fn serve(&mut self, welcome: &Welcome) -> Vec<Event> {
        let mut events = Vec::new();
        let paused = self.paused;
        for client in self.clients.iter_mut().filter(|c| c.ready) {
            client.ready = false;
            if !(paused && client.greeted && client.input) {
                client.read(welcome, &mut events);
            }
            client.flush();
        }
        self.drop_gone();
        if std::mem::take(&mut self.listener_ready) {
            self.accept();
        }
        events
    }

    fn accept(&mut self) {
        let me = nix::unistd::geteuid().as_raw();
        loop {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(nix::libc::EMFILE | nix::libc::ENFILE)
                    ) =>
                {
                    // No descriptor for it: the connection would stay
                    // queued and the listener readable. Take it with the
                    // spare one and close it.
                    self.spare = None;
                    let _ = self.listener.accept();
                    self.spare = File::open("/dev/null").ok();
                    continue;
                }
                Err(_) => break,
            };
            // Only the session's owner may watch or drive it.
            let same_user = getsockopt(&stream, PeerCredentials).is_ok_and(|c| c.uid() == me);
            if !same_user || stream.set_nonblocking(true).is_err() {
                continue;
            }
            if self.clients.len() >= self.max_clients {
                let mut stream = stream;
                let msg = format!("too many clients (at most {})", self.max_clients);
                let _ = stream.write(&Frame::Error(msg).encode());
                continue;
            }
            self.next_id += 1;
            self.clients.push(Client {
                id: self.next_id,
                input: false,
                sync: None,
                refused: 0,
                mark: 0,
                hello_by: Instant::now() + HELLO_WITHIN,
                stream,
                ready: false,
                inbuf: Vec::new(),
                outq: VecDeque::new(),
                queued: 0,
                greeted: false,
                gone: false,
                size: None,
                terminal: false,
            });
        }
    }

    /// Sends `frame` to every attached client, dropping those whose queue
    /// is full.
    pub fn broadcast(&mut self, frame: &Frame) {
        if !self.has_clients() {
            return;
        }
        let bytes = frame.encode();
        for c in self.clients.iter_mut().filter(|c| c.greeted) {
            c.send(bytes.clone());
            c.flush();
        }
        self.drop_gone();
    }

    /// Tells every client how the session ended, giving them up to
    /// `patience` to take it, then removes the socket.
    pub fn close(mut self, last: &Frame, patience: std::time::Duration) {
        let _ = std::fs::remove_file(&self.path);
        let bytes = last.encode();
        let deadline = std::time::Instant::now() + patience;
        for c in self.clients.iter_mut().filter(|c| c.greeted) {
            c.send(bytes.clone());
            let _ = c.stream.set_nonblocking(false);
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            let _ = c.stream.set_write_timeout(Some(left));
            while let Some(front) = c.outq.pop_front() {
                if c.stream.write_all(&front).is_err() {
                    break;
                }
            }
        }
        self.clients.clear();
    }
}

/// The soft limit on open descriptors (1024 when it cannot be read).
fn fd_limit() -> u64 {
    let mut lim = nix::libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // Safety: getrlimit writes one rlimit into memory we own.
    if unsafe { nix::libc::getrlimit(nix::libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur
    } else {
        1024
    }
}

impl Client {
    fn read(&mut self, welcome: &Welcome, events: &mut Vec<Event>) {
        // Small: clients send keys and sizes, and an idle session's stack
        // stays small.
        let mut buf = [0u8; 8 * 1024];
        // A client may send its last frames and close at once: they still
        // count (`printf 'y\n' | codex-attach`).
        let mut closed = false;
        let mut budget = READ_BUDGET;
        while budget > 0 {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => {
                    self.inbuf.extend_from_slice(&buf[..n]);
                    budget = budget.saturating_sub(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.gone = true;
                    return;
                }
            }
        }
        loop {
            match Frame::decode(&mut self.inbuf) {
                Ok(None) => break,
                Ok(Some(Frame::Hello(hello))) if !self.greeted => {
                    if hello.version != protocol::VERSION {
                        let msg =
                            format!("this session speaks attach protocol {}", protocol::VERSION);
                        self.send(Frame::Error(msg).encode());
                        self.gone = true;
                        return;
                    }
                    self.send(Frame::Welcome(welcome.clone()).encode());
                    self.greeted = true;
                    self.size = hello.size.filter(|&(c, r)| c > 0 && r > 0);
                    self.terminal = hello.terminal && hello.input;
                    self.input = hello.input;
                    events.push(Event::Attached(hello.size));
                }
                Ok(Some(Frame::Input(bytes))) if self.greeted => {
                    events.push(Event::Input(self.id, bytes))
                }
                Ok(Some(Frame::Sync)) if self.greeted => events.push(Event::Sync(self.id)),
                Ok(Some(Frame::Resize(c, r))) if self.greeted => {
                    if c > 0 && r > 0 {
                        self.size = Some((c, r));
                    }
                    events.push(Event::Resize(c, r))
                }
                Ok(Some(Frame::Close)) if self.greeted => events.push(Event::Close),
                Ok(Some(Frame::Detach)) => {
                    self.gone = true;
                    return;
                }
                // Anything else breaks the protocol: the client goes.
                Ok(Some(_)) | Err(_) => {
                    self.gone = true;
                    return;
                }
            }
        }
        self.gone |= closed;
    }

    fn send(&mut self, bytes: Vec<u8>) {
        self.queued += bytes.len();
        self.outq.push_back(bytes);
        if self.queued > MAX_QUEUE {
            // Stalled: dropping it keeps the command and the others going.
            self.gone = true;
        }
    }

    fn flush(&mut self) {
        while let Some(front) = self.outq.front_mut() {
            match self.stream.write(front) {
                Ok(n) if n == front.len() => {
                    self.queued -= n;
                    self.outq.pop_front();
                }
                Ok(n) => {
                    self.queued -= n;
                    front.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.gone = true;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::protocol::Hello;

    #[test]
    fn readiness_stays_with_its_client_when_another_is_dropped() {
        let dir = std::env::temp_dir().join(format!("codex-server-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Server::bind(&dir).unwrap();
        let welcome = Welcome {
            version: protocol::VERSION,
            tty: false,
            stdin: true,
            index_len: 0,
            stdout_len: 0,
            stderr_len: 0,
            delivery: true,
        };
        let hello = Frame::Hello(Hello {
            version: protocol::VERSION,
            input: true,
            size: None,
            terminal: false,
        });
        let connect = || {
            let mut c = UnixStream::connect(dir.join(layout::SOCKET)).unwrap();
            c.write_all(&hello.encode()).unwrap();
            c
        };
        let (a, mut b) = (connect(), connect());
        server.mark_ready(&[true]);
        assert!(server.serve(&welcome).is_empty());
        server.mark_ready(&[false, true, true]);
        assert_eq!(server.serve(&welcome).len(), 2);

        // Poll finds only b ready (it typed); then a broadcast drops a,
        // whose end is closed, before the clients are served.
        b.write_all(&Frame::Input(b"y".to_vec()).encode()).unwrap();
        drop(a);
        server.mark_ready(&[false, false, true]);
        server.broadcast(&Frame::Stdout(b"out".to_vec()));
        assert_eq!(server.clients.len(), 1);
        let events = server.serve(&welcome);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            matches!(events.as_slice(), [Event::Input(_, bytes)] if bytes == b"y"),
            "b's input was not served"
        );
    }
}
