//! What an interactive program announces on its terminal about its state:
//! the `OSC 7501` program-status sequence and desktop notifications
//! (`OSC 9`, `OSC 777`), found in a tty session's output across reads with
//! a small state machine whose memory is bounded, and kept in the agent
//! summary (see `shared::termstate`). The summary is written when it
//! changes, at most a few times a second.

use std::time::{Duration, Instant};

use shared::agent::Agent;
use shared::termstate::{self, Report};
use shared::Timestamp;

/// The longest sequence body kept; longer ones (an OSC 52 clipboard, an
/// image) are skipped to their end.
const MAX_BODY: usize = 4096;
/// The least time between two writes of the summary.
const WRITE_EVERY: Duration = Duration::from_millis(250);

const ESC: u8 = 0x1b;
const BEL: u8 = 0x07;

/// Where the scanner is in the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// Outside any sequence.
    Ground,
    /// Just after an ESC.
    Esc,
    /// In an OSC body.
    Osc,
    /// In an OSC body, just after an ESC (the start of ST, `ESC \`).
    OscEsc,
    /// In an OSC body too long to keep: skipping to its end.
    Skip,
    /// Skipping, just after an ESC.
    SkipEsc,
}

/// Finds OSC sequences in output, across reads.
pub struct Scanner {
    at: At,
    body: Vec<u8>,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner {
            at: At::Ground,
            body: Vec::new(),
        }
    }
}

impl Scanner {
    /// Takes in `bytes` of output; calls `found` with each complete OSC
    /// body (what lies between `ESC ]` and BEL or `ESC \`).
    pub fn scan(&mut self, bytes: &[u8], found: &mut impl FnMut(&[u8])) {
        for &b in bytes {
            self.at = match (self.at, b) {
                (At::Ground, ESC) => At::Esc,
                (At::Ground, _) => At::Ground,
                (At::Esc, b']') => {
                    self.body.clear();
                    At::Osc
                }
                (At::Esc, ESC) => At::Esc,
                (At::Esc, _) => At::Ground,
                (At::Osc, BEL) => {
                    found(&self.body);
                    self.end()
                }
                (At::Osc, ESC) => At::OscEsc,
                (At::OscEsc, b'\\') => {
                    found(&self.body);
                    self.end()
                }
                // An ESC that does not end the string aborts it and starts
                // a new sequence.
                (At::OscEsc, b']') => {
                    self.body.clear();
                    At::Osc
                }
                (At::OscEsc | At::SkipEsc, ESC) => At::Esc,
                (At::OscEsc | At::SkipEsc, _) => self.end(),
                // CAN and SUB cancel a sequence.
                (At::Osc | At::Skip, 0x18 | 0x1a) => self.end(),
                (At::Osc, _) if self.body.len() >= MAX_BODY => {
                    self.body.clear();
                    At::Skip
                }
                (At::Osc, _) => {
                    self.body.push(b);
                    At::Osc
                }
                (At::Skip, BEL) => self.end(),
                (At::Skip, ESC) => At::SkipEsc,
                (At::Skip, _) => At::Skip,
            };
        }
    }

    fn end(&mut self) -> At {
        self.body.clear();
        if self.body.capacity() > 256 {
            self.body.shrink_to(256);
        }
        At::Ground
    }
}

/// The agent summary of a tty session, from what its program announces.
pub struct Announcements {
    scanner: Scanner,
    /// The summary, once the program has announced anything.
    pub agent: Option<Agent>,
    /// Whether the summary changed since it was last written.
    changed: bool,
    /// When the summary is to be written next.
    write_at: Option<Instant>,
    /// When it was last written.
    written_at: Option<Instant>,
}

impl Announcements {
    /// Watches a terminal whose program has said nothing yet.
    pub fn new() -> Announcements {
        Announcements {
            scanner: Scanner::default(),
            agent: None,
            changed: false,
            write_at: None,
            written_at: None,
        }
    }

    /// Takes in output; says whether the program asked whether the
    /// terminal takes its state reports (`OSC 7501 ; ?`), to be answered
    /// with [`termstate::QUERY_ANSWER`] when no client answers.
    pub fn feed(&mut self, bytes: &[u8]) -> bool {
        let mut asked = false;
        let (agent, changed) = (&mut self.agent, &mut self.changed);
        self.scanner
            .scan(bytes, &mut |body| match termstate::parse(body) {
                Some(Report::Query) => asked = true,
                Some(report) => {
                    let agent = agent.get_or_insert_with(Agent::default);
                    if agent.observe_terminal(&report, Timestamp::now()) {
                        *changed = true;
                    }
                }
                None => {}
            });
        asked
    }

    /// A client typed into the session.
    pub fn input(&mut self) {
        if let Some(agent) = &mut self.agent {
            if agent.observe_input(Timestamp::now()) {
                self.changed = true;
            }
        }
    }

    /// Schedules writing the summary when it changed: at once, or
    /// [`WRITE_EVERY`] after the last write when that was too recent.
    pub fn schedule(&mut self, now: Instant) {
        if std::mem::take(&mut self.changed) && self.write_at.is_none() {
            let soonest = self.written_at.map_or(now, |w| w + WRITE_EVERY);
            self.write_at = Some(soonest.max(now));
        }
    }

    /// When the summary is to be written next.
    pub fn deadline(&self) -> Option<Instant> {
        self.write_at
    }

    /// Whether the summary is due at `now`; if so it counts as written.
    pub fn take_due(&mut self, now: Instant) -> bool {
        let due = self.write_at.is_some_and(|t| t <= now);
        if due {
            self.write_at = None;
            self.written_at = Some(now);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::agent::AgentState;

    fn bodies(chunks: &[&[u8]]) -> Vec<String> {
        let mut s = Scanner::default();
        let mut found = Vec::new();
        for c in chunks {
            s.scan(c, &mut |b| {
                found.push(String::from_utf8_lossy(b).into_owned())
            });
        }
        found
    }

    #[test]
    fn finds_sequences_split_anywhere() {
        let all: &[u8] = b"x\x1b]0;work\x07\x1b[2J\x1b]7501;state=idle:app=codex\x1b\\y";
        let want = vec!["0;work".to_string(), "7501;state=idle:app=codex".into()];
        assert_eq!(bodies(&[all]), want);
        for cut in 0..all.len() {
            assert_eq!(bodies(&[&all[..cut], &all[cut..]]), want, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = all.chunks(1).collect();
        assert_eq!(bodies(&bytes), want);
    }

    #[test]
    fn overlong_and_aborted_sequences_are_dropped() {
        let mut long = b"\x1b]52;c;".to_vec();
        long.extend(vec![b'A'; MAX_BODY * 3]);
        long.extend(b"\x1b\\\x1b]9;hi\x07");
        assert_eq!(bodies(&[&long]), vec!["9;hi".to_string()]);
        assert_eq!(
            bodies(&[b"\x1b]9;cut\x18\x1b]9;new\x1b]9;ok\x07"]),
            vec!["9;ok".to_string()]
        );
    }

    #[test]
    fn follows_codex_and_writes_at_most_a_few_times_a_second() {
        let mut a = Announcements::new();
        let now = Instant::now();
        assert!(!a.feed(b"\x1b]0;work\x07"));
        a.schedule(now);
        assert!(a.agent.is_none() && a.deadline().is_none());
        a.feed(b"\x1b]7501;state=idle:app=codex\x1b\\");
        a.schedule(now);
        assert!(a.take_due(now));
        assert_eq!(a.agent.as_ref().unwrap().state, AgentState::Idle);
        a.feed(b"\x1b]7501;state=working:app=codex\x1b\\");
        a.schedule(now);
        assert!(!a.take_due(now));
        assert_eq!(a.deadline(), Some(now + WRITE_EVERY));
        assert!(a.feed(b"\x1b]7501;?\x1b\\"));
    }
}
