//! What an interactive agent says about its state on its terminal, and how
//! that updates the agent summary.
//!
//! codex 0.169's TUI writes the program-status sequence
//! `ESC ] 7501 ; state=idle:app=codex ESC \` (idle when it starts,
//! `working` during a turn, `done` after it, `clear` when it lets go of
//! the terminal). Other agents write the same sequence with
//! `state=blocked`, `kind=permission|question` and `msg=<base64>`, or only
//! desktop notifications: `OSC 9 ; text` and `OSC 777 ; notify ; title ;
//! body`. The supervisor finds these sequences in the pty's output (the
//! bytes between `ESC ]` and the terminator) and hands their bodies here.

use crate::agent::{Agent, AgentState};
use crate::time::Timestamp;

/// The longest message kept, in characters.
const MAX_TEXT: usize = 1000;

/// One report of a program about its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// `OSC 7501 ; state=…`: the program's own state.
    State {
        /// The state.
        state: AgentState,
        /// Blocked: on what (`kind=`).
        on: Option<String>,
        /// Blocked: the message (`msg=`, base64 or plain).
        message: Option<String>,
        /// The program (`app=`).
        app: Option<String>,
    },
    /// `OSC 7501 ; state=clear`: the program no longer reports a state.
    Clear,
    /// `OSC 7501 ; ?`: the program asks whether the terminal listens.
    Query,
    /// `OSC 9` or `OSC 777 ; notify`: a desktop notification.
    Notification(String),
}

/// The answer a terminal gives to [`Report::Query`]: it takes program
/// status reports.
pub const QUERY_ANSWER: &[u8] = b"\x1b]7501;state=1\x1b\\";

/// Reads the body of an OSC sequence (what follows `ESC ]`, without the
/// terminator): `None` when it is no state report or notification.
pub fn parse(body: &[u8]) -> Option<Report> {
    let text = String::from_utf8_lossy(body);
    let (code, rest) = text.split_once(';').unwrap_or((&text, ""));
    match code {
        "7501" => parse_status(rest),
        // OSC 9 ; 4 ; … is ConEmu's progress bar, and other OSC 9 ; N ; …
        // are ConEmu commands: no notification.
        "9" if !rest.is_empty() && !conemu_command(rest) => {
            Some(Report::Notification(clip(rest.trim())))
        }
        "777" => {
            let mut parts = rest.splitn(3, ';');
            (parts.next() == Some("notify")).then_some(())?;
            let title = parts.next().unwrap_or("").trim();
            let body = parts.next().unwrap_or("").trim();
            let text = match (title.is_empty(), body.is_empty()) {
                (_, true) => title.to_string(),
                (true, false) => body.to_string(),
                (false, false) => format!("{title}: {body}"),
            };
            Some(Report::Notification(clip(&text)))
        }
        _ => None,
    }
}

fn conemu_command(rest: &str) -> bool {
    let head = rest.split(';').next().unwrap_or("");
    !head.is_empty() && head.bytes().all(|b| b.is_ascii_digit())
}

/// `state=…[:kind=…][:msg=…][:app=…]` (fields split by `:` or `;`), or `?`.
fn parse_status(rest: &str) -> Option<Report> {
    if rest.trim() == "?" {
        return Some(Report::Query);
    }
    let (mut state, mut on, mut message, mut app) = (None, None, None, None);
    for field in rest.split([':', ';']) {
        let Some((key, value)) = field.trim().split_once('=') else {
            continue;
        };
        let value = value.trim();
        match key {
            "state" => state = Some(value.to_string()),
            "kind" if !value.is_empty() => on = Some(clip(value)),
            "msg" if !value.is_empty() => message = Some(clip(&decode_message(value))),
            "app" if !value.is_empty() => app = Some(clip(value)),
            _ => {}
        }
    }
    match state?.as_str() {
        "clear" => Some(Report::Clear),
        s => Some(Report::State {
            state: AgentState::parse(s)?,
            on,
            message,
            app,
        }),
    }
}

/// A `msg=` value: base64 of UTF-8 text, or, where it is not, the text as
/// written.
fn decode_message(value: &str) -> String {
    base64(value)
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_else(|| value.to_string())
}

/// Standard or URL-safe base64, padded or not; `None` if it is not.
fn base64(s: &str) -> Option<Vec<u8>> {
    let digit = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    };
    let s = s.trim_end_matches('=').as_bytes();
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= digit(c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

fn clip(s: &str) -> String {
    let clean: String = s.chars().filter(|c| !c.is_control()).collect();
    match clean.char_indices().nth(MAX_TEXT) {
        Some((i, _)) => format!("{}…", &clean[..i]),
        None => clean,
    }
}

impl Agent {
    /// Takes a program's report about its state into account at `now`;
    /// says whether the summary changed. A notification counts as
    /// "blocked" only for a program that does not report its state (a
    /// program that does, such as codex, also notifies when a turn ends);
    /// [`Agent::observe_input`] ends such a block.
    pub fn observe_terminal(&mut self, report: &Report, now: Timestamp) -> bool {
        let before = self.clone();
        match report {
            Report::State {
                state,
                on,
                message,
                app,
            } => {
                self.set_state(*state, now);
                let blocked = *state == AgentState::Blocked;
                self.blocked_on = on.clone().filter(|_| blocked);
                self.blocked_message = message.clone().filter(|_| blocked);
                if let Some(app) = app {
                    self.app = Some(app.clone());
                }
                self.speaks_state = true;
            }
            Report::Notification(text) if !self.speaks_state => {
                self.set_state(AgentState::Blocked, now);
                self.blocked_on = None;
                self.blocked_message = Some(text.clone()).filter(|t| !t.is_empty());
            }
            Report::Clear => {
                self.blocked_on = None;
                self.blocked_message = None;
            }
            Report::Notification(_) | Report::Query => {}
        }
        *self != before
    }

    /// Someone typed into the session: a block known only from a
    /// notification is over (the program says nothing more).
    pub fn observe_input(&mut self, now: Timestamp) -> bool {
        if self.speaks_state || self.state != AgentState::Blocked {
            return false;
        }
        self.set_state(AgentState::Working, now);
        self.blocked_message = None;
        true
    }

    fn set_state(&mut self, state: AgentState, now: Timestamp) {
        if self.state != state || self.state_since.is_none() {
            self.state = state;
            self.state_since = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(body: &str) -> Report {
        parse(body.as_bytes()).unwrap()
    }

    #[test]
    fn reads_what_codex_writes() {
        assert_eq!(
            state("7501;state=idle:app=codex"),
            Report::State {
                state: AgentState::Idle,
                on: None,
                message: None,
                app: Some("codex".into())
            }
        );
        assert_eq!(state("7501;state=clear"), Report::Clear);
        assert_eq!(state("7501;?"), Report::Query);
        assert_eq!(parse(b"7501;state=sleeping"), None);
        assert_eq!(parse(b"0;my title"), None);
    }

    #[test]
    fn reads_blocked_with_kind_and_message() {
        // "Allow rm -rf build?" in base64.
        let r = state("7501;state=blocked:kind=permission:msg=QWxsb3cgcm0gLXJmIGJ1aWxkPw==");
        assert_eq!(
            r,
            Report::State {
                state: AgentState::Blocked,
                on: Some("permission".into()),
                message: Some("Allow rm -rf build?".into()),
                app: None
            }
        );
        let r = state("7501;state=blocked;kind=question;msg=not base64!");
        assert!(matches!(r, Report::State { message: Some(m), .. } if m == "not base64!"));
        assert!(matches!(
            state("7501;state=error"),
            Report::State {
                state: AgentState::Failed,
                ..
            }
        ));
    }

    #[test]
    fn empty_fields_are_absent_and_both_base64_alphabets_are_read() {
        assert_eq!(
            state("7501;state=blocked:kind=:msg=:app="),
            Report::State {
                state: AgentState::Blocked,
                on: None,
                message: None,
                app: None
            }
        );
        // ">>>?>?": standard base64 has + and /, URL-safe - and _.
        for msg in ["Pj4+Pz4/", "Pj4-Pz4_"] {
            let r = state(&format!("7501;state=blocked:msg={msg}"));
            assert!(
                matches!(&r, Report::State { message: Some(m), .. } if m == ">>>?>?"),
                "{msg}: {r:?}"
            );
        }
        // Five digits are no base64 (a length of 4n+1): the text as written.
        let r = state("7501;state=blocked:msg=QUJDR");
        assert!(
            matches!(&r, Report::State { message: Some(m), .. } if m == "QUJDR"),
            "{r:?}"
        );
    }

    #[test]
    fn a_blocked_report_keeps_on_what_until_the_next_state() {
        let now = Timestamp(1);
        let mut a = Agent::default();
        assert!(a.observe_terminal(&state("7501;state=blocked:kind=permission:msg=QUJD"), now));
        assert_eq!(a.state, AgentState::Blocked);
        assert_eq!(a.blocked_on.as_deref(), Some("permission"));
        assert_eq!(a.blocked_message.as_deref(), Some("ABC"));
        // Typing does not end a block the program reports itself.
        assert!(!a.observe_input(now));
        assert_eq!(a.state, AgentState::Blocked);
        assert!(a.observe_terminal(&state("7501;state=working:kind=x:msg=QUJD"), now));
        assert_eq!((a.blocked_on, a.blocked_message), (None, None));
    }

    #[test]
    fn reads_notifications_but_not_progress() {
        assert_eq!(
            state("9;Waiting for you"),
            Report::Notification("Waiting for you".into())
        );
        assert_eq!(parse(b"9;4;1;50"), None);
        assert_eq!(
            state("777;notify;Codex;Approval requested"),
            Report::Notification("Codex: Approval requested".into())
        );
        assert_eq!(parse(b"777;preexec"), None);
    }

    #[test]
    fn notifications_block_only_programs_that_report_no_state() {
        let now = Timestamp(1);
        let mut a = Agent::default();
        assert!(!a.observe_input(now), "typing into a program not blocked");
        assert_eq!(a, Agent::default());
        assert!(a.observe_terminal(&Report::Notification("Need you".into()), now));
        assert_eq!(a.state, AgentState::Blocked);
        assert_eq!(a.blocked_message.as_deref(), Some("Need you"));
        assert!(a.observe_input(now));
        assert_eq!(a.state, AgentState::Working);

        let mut a = Agent::default();
        a.observe_terminal(&state("7501;state=done:app=codex"), now);
        assert!(!a.observe_terminal(&Report::Notification("Turn done".into()), now));
        assert_eq!(a.state, AgentState::Done);
        assert!(!a.observe_input(now));
    }
}
