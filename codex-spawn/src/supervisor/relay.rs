//! The supervisor's loop: one thread, one `poll`, until the command and
//! everything it started have ended. Each turn takes the signals in the
//! order they came, serves the output source, keeps the deadlines
//! (`--timeout`, a stop's SIGKILL, a repaint's end, the agent summary's
//! next write) and serves the attach socket.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use shared::layout::Stream;
use shared::lock::Lock;
use shared::protocol::{self, Welcome};
use shared::record::Record;
use shared::stop;

use crate::agent::Watcher;
use crate::announce::Announcements;
use crate::children::Children;
use crate::hooks::Hooks;
use crate::logs::Logs;
use crate::output::{Consumers, Output};
use crate::server::{Event, Server};
use crate::signals::{Arrival, Signals};
use crate::state;

/// A running session: built by [`Supervisor::start`] (`start.rs`), run
/// here, ended by `Supervisor::finish` (`finish.rs`).
pub struct Supervisor {
    pub(crate) dir: PathBuf,
    pub(crate) record: Record,
    /// Held for the supervisor's whole life; released when it exits.
    pub(crate) _lock: Lock,
    pub(crate) logs: Logs,
    pub(crate) signals: Signals,
    pub(crate) children: Children,
    pub(crate) output: Output,
    /// The attach socket (none if it could not be bound).
    pub(crate) server: Option<Server>,
    /// Exec sessions: the agent summary kept from the event stream.
    pub(crate) watcher: Option<Watcher>,
    /// Tty sessions: the agent summary kept from what the program
    /// announces on its terminal.
    pub(crate) heard: Option<Announcements>,
    /// `--on-state` and `--on-exit`.
    pub(crate) hooks: Option<Hooks>,
    pub(crate) timeout_at: Option<Instant>,
}

impl Supervisor {
    /// Relays until the command and everything it started have ended, then
    /// writes the final record. Returns when the session is over.
    pub fn run(mut self) -> shared::Result<()> {
        crate::trim::start_up_code();
        // A precaution: what ended before the loop is reaped now, whether
        // or not its SIGCHLD is still pending.
        self.children.reap();
        while !self.done() {
            let (ready, signalled) = self.wait()?;
            let to = Consumers {
                server: &mut self.server,
                watcher: &mut self.watcher,
                heard: &mut self.heard,
            };
            // Who needs the bytes may have changed (a client attached).
            self.output.allow_splice(&to);
            if signalled {
                self.take_signals();
            }
            let mut to = Consumers {
                server: &mut self.server,
                watcher: &mut self.watcher,
                heard: &mut self.heard,
            };
            self.output.on_ready(ready, &mut self.logs, &mut to);
            self.check_deadlines(Instant::now());
            if self.children.all_ended() {
                // Every writer we know of is gone: take what is left.
                self.take_signals();
                let mut to = Consumers {
                    server: &mut self.server,
                    watcher: &mut self.watcher,
                    heard: &mut self.heard,
                };
                self.output.take_rest(&mut self.logs, &mut to);
            }
            let mut to = Consumers {
                server: &mut self.server,
                watcher: &mut self.watcher,
                heard: &mut self.heard,
            };
            self.output.flush(&mut self.logs, &mut to);
            self.note_agent(Instant::now());
            self.note_rotation();
            self.serve();
        }
        self.finish()
    }

    /// Whether the command and all it started have ended and their
    /// output is in.
    fn done(&self) -> bool {
        self.children.all_ended() && !self.output.is_open()
    }

    /// Waits for something to do, or the next deadline; says what poll
    /// found on the output source's descriptors (in the order of
    /// [`Output::poll_set`]) and whether signals came, and marks the ready
    /// clients.
    fn wait(&mut self) -> shared::Result<([PollFlags; 3], bool)> {
        let timeout = self.next_deadline().map_or(PollTimeout::NONE, |at| {
            let left = at.saturating_duration_since(Instant::now());
            // Round up, so we never wake just before a deadline.
            PollTimeout::try_from(left + Duration::from_millis(1)).unwrap_or(PollTimeout::MAX)
        });
        let mut fds = vec![PollFd::new(self.signals.fd(), PollFlags::POLLIN)];
        let output = self.output.poll_set().map(|entry| {
            entry.map(|(fd, flags)| {
                fds.push(PollFd::new(fd, flags));
                fds.len() - 1
            })
        });
        let server_at = fds.len();
        let server_fds = self.server.as_ref().map(Server::poll_fds);
        fds.extend(
            server_fds
                .into_iter()
                .flatten()
                .map(|(fd, f)| PollFd::new(fd, f)),
        );
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(shared::Error::nix("polling", &self.dir, e)),
        }
        let ready = |f: &PollFd<'_>| f.revents().is_some_and(|r| !r.is_empty());
        let output = output.map(|slot| {
            slot.and_then(|i| fds[i].revents())
                .unwrap_or(PollFlags::empty())
        });
        let signalled = ready(&fds[0]);
        let server: Vec<bool> = fds[server_at..].iter().map(ready).collect();
        drop(fds);
        if let Some(s) = &mut self.server {
            s.mark_ready(&server);
        }
        Ok((output, signalled))
    }

    /// Handles every queued signal, in order: announced writes are read as
    /// they come, so output keeps the order it was written in. Children
    /// are reaped when a SIGCHLD came.
    fn take_signals(&mut self) {
        let (output, logs, children) = (&mut self.output, &mut self.logs, &mut self.children);
        let mut to = Consumers {
            server: &mut self.server,
            watcher: &mut self.watcher,
            heard: &mut self.heard,
        };
        let mut child = false;
        self.signals.take(|arrival| match arrival {
            Arrival::Write(fd) => output.on_write(fd, logs, &mut to),
            Arrival::Overflow => output.on_overflow(logs, &mut to),
            Arrival::Stop(grace) => children.stop(grace),
            Arrival::Child => child = true,
        });
        // SIGCHLD coalesces: one means "reap whatever has ended".
        if child {
            self.children.reap();
        }
    }

    /// Serves the attach socket: new clients, their input and sizes; when
    /// clients have left, the window takes the size of one still there.
    fn serve(&mut self) {
        let welcome = Welcome {
            version: protocol::VERSION,
            tty: self.record.tty,
            stdin: self.output.takes_input(),
            index_len: self.logs.index_len(),
            stdout_len: self.logs.logged(Stream::Stdout),
            stderr_len: self.logs.logged(Stream::Stderr),
            delivery: true,
        };
        let Some(server) = self.server.as_mut() else {
            return;
        };
        server.pause_input(self.output.input_full());
        let mut events = match server.has_ready() {
            true => server.serve(&welcome),
            false => Vec::new(),
        };
        events.extend(server.take_left().map(Event::Left));
        for event in events {
            match event {
                Event::Input(id, bytes) => {
                    if let Some(heard) = &mut self.heard {
                        heard.input();
                    }
                    if self.output.input(&bytes) {
                        server.accepted(id, self.output.input_accepted());
                    } else {
                        server.refused(id, bytes.len());
                    }
                }
                Event::Sync(id) => server.await_delivery(id, self.output.input_accepted()),
                event => self.output.on_client(event),
            }
        }
        let output = &self.output;
        server.answer_syncs(false, |mark| output.delivery(mark));
        // Input clients are read only while the command's backlog has room.
        server.pause_input(self.output.input_full());
        self.note_window();
    }

    /// Records a tty session's window size when it changed, so that its
    /// screen can be shown as text at the right width.
    fn note_window(&mut self) {
        let Some((cols, rows)) = self.output.window() else {
            return;
        };
        if self.record.window != Some([cols, rows]) {
            state::window(&mut self.record, &self.dir, [cols, rows]);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        [
            self.timeout_at.filter(|_| self.children.exit().is_none()),
            self.children.deadline(),
            self.output.deadline(),
            self.watcher.as_ref().and_then(Watcher::deadline),
            self.server.as_ref().and_then(Server::deadline),
            self.heard.as_ref().and_then(Announcements::deadline),
            self.hooks.as_ref().and_then(Hooks::deadline),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn check_deadlines(&mut self, now: Instant) {
        self.output.check_deadline(now);
        if let Some(server) = &mut self.server {
            server.check_deadline(now);
        }
        if let Some(hooks) = &mut self.hooks {
            hooks.check();
        }
        self.note_agent(now);
        if self.children.exit().is_none() && self.timeout_at.is_some_and(|t| t <= now) {
            self.timeout_at = None;
            self.record.timed_out = true;
            self.children.stop(stop::DEFAULT_GRACE);
        }
        self.children.check_deadline(now);
    }

    /// After a rotation, records where the current log files begin, so
    /// that readers count the bytes logged so far as the final record will.
    fn note_rotation(&mut self) {
        let rotated = self.logs.rotated_bytes();
        if rotated != self.record.rotated_bytes {
            let was = std::mem::replace(&mut self.record.rotated_bytes, rotated);
            if !state::rewrite(&self.record, &self.dir) {
                // Tried again after the next read.
                self.record.rotated_bytes = was;
            }
        }
    }

    /// Writes the agent summary when it is due: at once at a turn's end
    /// (or, from a terminal, at a change), else a few times a second at
    /// most; a change of state then starts the on-state hook.
    fn note_agent(&mut self, now: Instant) {
        let mut written = false;
        if let Some(w) = &mut self.watcher {
            w.schedule(now);
            if w.take_due(now) {
                state::agent(&mut self.record, &self.dir, &w.agent);
                written = true;
            }
        }
        if let Some(h) = &mut self.heard {
            h.schedule(now);
            if let (true, Some(agent)) = (h.take_due(now), &h.agent) {
                state::agent(&mut self.record, &self.dir, agent);
                written = true;
            }
        }
        if let (true, Some(hooks)) = (written, &mut self.hooks) {
            hooks.on_record(&self.record);
        }
    }
}
