//! Watching an exec session's stdout, codex's JSONL event stream, to keep
//! the agent summary in the record current: line by line, with a bounded
//! line buffer, tolerating lines split across reads and lines that are not
//! JSON; and when to write the summary: at once at a turn's end, else a few
//! times a second at most.

use std::time::{Duration, Instant};

use shared::agent::{Agent, Change};

/// The longest event line taken into account; longer ones are skipped.
const MAX_LINE: usize = 1 << 20;
/// The least time between two writes of the summary.
const WRITE_EVERY: Duration = Duration::from_millis(250);

/// The summary and the line being assembled.
pub struct Watcher {
    /// The summary so far.
    pub agent: Agent,
    line: Vec<u8>,
    /// Inside a line too long to keep: skip to its end.
    skipping: bool,
    /// The biggest change since the summary was last written.
    change: Change,
    /// When the summary is to be written next.
    write_at: Option<Instant>,
}

impl Watcher {
    /// Watches a stream whose summary so far is `agent`.
    pub fn new(agent: Agent) -> Watcher {
        Watcher {
            agent,
            line: Vec::new(),
            skipping: false,
            change: Change::None,
            write_at: None,
        }
    }

    /// Takes in bytes of the stream.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while let Some(nl) = bytes.iter().position(|&b| b == b'\n') {
            if !self.skipping && self.line.len() + nl <= MAX_LINE {
                self.line.extend_from_slice(&bytes[..nl]);
                let change = self.agent.observe_line(&self.line);
                self.change = self.change.max(change);
            }
            self.line.clear();
            self.skipping = false;
            bytes = &bytes[nl + 1..];
        }
        if self.line.len() + bytes.len() > MAX_LINE {
            self.line.clear();
            self.skipping = true;
        } else if !self.skipping {
            self.line.extend_from_slice(bytes);
        }
        if self.line.capacity() > 64 * 1024 && self.line.is_empty() {
            self.line.shrink_to(4096);
        }
    }

    /// The stream has ended: a last line without its newline still counts.
    pub fn finish(&mut self) {
        if !self.skipping && !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            let change = self.agent.observe_line(&line);
            self.change = self.change.max(change);
        }
    }

    /// What changed since the last call (and forgets it).
    fn take_change(&mut self) -> Change {
        std::mem::replace(&mut self.change, Change::None)
    }

    /// Schedules writing the summary for what changed since the last call:
    /// at once at a turn's end, else within [`WRITE_EVERY`].
    pub fn schedule(&mut self, now: Instant) {
        match self.take_change() {
            Change::None => {}
            Change::TurnEnd => self.write_at = Some(now),
            Change::Some => {
                self.write_at.get_or_insert(now + WRITE_EVERY);
            }
        }
    }

    /// When the summary is to be written next.
    pub fn deadline(&self) -> Option<Instant> {
        self.write_at
    }

    /// Whether the summary is due at `now`; if so it counts as written
    /// from here on (the caller writes it).
    pub fn take_due(&mut self, now: Instant) -> bool {
        let due = self.write_at.is_some_and(|t| t <= now);
        if due {
            self.write_at = None;
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::agent::AgentState;

    #[test]
    fn lines_split_across_reads_and_garbage() {
        let mut w = Watcher::new(Agent::default());
        w.feed(b"{\"type\":\"thread.sta");
        assert_eq!(w.take_change(), Change::None);
        w.feed(b"rted\",\"thread_id\":\"t\"}\nnot json\n{\"type\":\"turn.completed\",");
        assert_eq!(w.take_change(), Change::Some);
        w.feed(b"\"usage\":{\"output_tokens\":4}}\n");
        assert_eq!(w.take_change(), Change::TurnEnd);
        assert_eq!(w.agent.thread_id.as_deref(), Some("t"));
        assert_eq!(w.agent.output_tokens, 4);
        assert_eq!(w.agent.state, AgentState::Done);
    }

    #[test]
    fn the_summary_is_due_at_a_turns_end_else_a_few_times_a_second() {
        let mut w = Watcher::new(Agent::default());
        let now = Instant::now();
        w.feed(b"{\"type\":\"turn.started\"}\n");
        w.schedule(now);
        assert!(!w.take_due(now));
        assert_eq!(w.deadline(), Some(now + WRITE_EVERY));
        w.feed(b"{\"type\":\"turn.completed\",\"usage\":{}}\n");
        w.schedule(now);
        assert!(w.take_due(now));
        assert_eq!(w.deadline(), None);
    }

    #[test]
    fn overlong_lines_are_skipped_whole() {
        let mut w = Watcher::new(Agent::default());
        w.feed(b"{\"type\":\"error\",\"message\":\"");
        w.feed(&vec![b'x'; MAX_LINE + 10]);
        w.feed(b"\"}\n{\"type\":\"turn.completed\",\"usage\":{\"output_tokens\":4}}\n");
        assert_eq!(
            w.agent.last_error, None,
            "the long line was not skipped whole"
        );
        // The stream is still read after it.
        assert_eq!(w.agent.state, AgentState::Done);
        assert_eq!(w.agent.output_tokens, 4);
        w.feed(b"{\"type\":\"thread.started\",\"thread_id\":\"t\"}\n");
        assert_eq!(w.agent.thread_id.as_deref(), Some("t"));
    }
}
