//! `--filter KEY=VALUE`: which sessions to show.

use shared::agent::AgentState;
use shared::{Kind, Session, Status, Timestamp};

/// One filter; a session is shown when it matches all of them.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `status=NAME`.
    Status(Status),
    /// `kind=exec|repl|cmd`.
    Kind(Kind),
    /// `label=KEY` (any value) or `label=KEY=VALUE`.
    Label(String, Option<String>),
    /// `exit=N`.
    Exit(i32),
    /// `state=working|idle|blocked|done|failed`: the agent's state.
    State(AgentState),
    /// `since=T`: created at or after T.
    Since(Timestamp),
    /// `until=T`: created at or before T.
    Until(Timestamp),
    /// `name=GLOB`: the id matches GLOB (`*`, `?`).
    Name(String),
}

const KEYS: &str = "accepted: status=queued|starting|running|exited|failed|lost|corrupt, kind=exec|repl|cmd, label=KEY, label=KEY=VALUE, exit=N, state=working|idle|blocked|done|failed, since=T, until=T (RFC 3339 or a duration ago: 7d), name=GLOB";

impl Filter {
    /// Parses `KEY=VALUE`; the error names the accepted keys.
    pub fn parse(s: &str) -> Result<Filter, String> {
        let bad = |why: &str| format!("{why} ({KEYS})");
        let (key, value) = s.split_once('=').ok_or_else(|| bad("expected KEY=VALUE"))?;
        match key {
            "status" => Status::parse(value)
                .map(Filter::Status)
                .ok_or_else(|| bad(&format!("unknown status {value:?}"))),
            "kind" => Kind::parse(value)
                .map(Filter::Kind)
                .ok_or_else(|| bad(&format!("unknown kind {value:?}"))),
            "label" => match value.split_once('=') {
                _ if value.is_empty() => Err(bad("empty label name")),
                Some((k, v)) => Ok(Filter::Label(k.into(), Some(v.into()))),
                None => Ok(Filter::Label(value.into(), None)),
            },
            "exit" => value
                .parse()
                .map(Filter::Exit)
                .map_err(|_| bad(&format!("exit code {value:?} is not a number"))),
            "state" => AgentState::parse(value)
                .map(Filter::State)
                .ok_or_else(|| bad(&format!("unknown agent state {value:?}"))),
            "since" => time(value).map(Filter::Since).map_err(|e| bad(&e)),
            "until" => time(value).map(Filter::Until).map_err(|e| bad(&e)),
            "name" if value.is_empty() => Err(bad("empty name pattern")),
            "name" => Ok(Filter::Name(value.into())),
            _ => Err(bad(&format!("unknown filter key {key:?}"))),
        }
    }

    /// Whether `session` passes this filter.
    pub fn matches(&self, session: &Session) -> bool {
        let record = session.record.as_deref().ok();
        match self {
            Filter::Status(s) => session.status == *s,
            Filter::Kind(k) => record.is_some_and(|r| r.kind == *k),
            Filter::Label(k, v) => record
                .and_then(|r| r.labels.get(k))
                .is_some_and(|found| v.as_ref().is_none_or(|v| v == found)),
            Filter::Exit(code) => {
                session.status == Status::Exited && record.and_then(|r| r.exit_code) == Some(*code)
            }
            Filter::State(state) => {
                record.and_then(|r| r.agent.as_ref()).map(|a| a.state) == Some(*state)
            }
            Filter::Since(t) => session.created_at() >= *t,
            Filter::Until(t) => session.created_at() <= *t,
            Filter::Name(glob) => glob_match(glob.as_bytes(), session.id.as_str().as_bytes()),
        }
    }
}

/// A time: RFC 3339, or a duration ago (`90s`, `10m`, `7d`).
fn time(value: &str) -> Result<Timestamp, String> {
    if let Ok(t) = Timestamp::parse_rfc3339(value) {
        return Ok(t);
    }
    shared::units::parse_duration(value)
        .map(|d| Timestamp::now().minus(d))
        .map_err(|_| format!("{value:?} is neither an RFC 3339 time nor a duration"))
}

/// Whether `text` matches the shell-style `glob`: `*` any run of
/// characters, `?` any one, anything else itself.
fn glob_match(glob: &[u8], text: &[u8]) -> bool {
    let (mut g, mut t) = (0, 0);
    // Where the last `*` was, and the text position it stands for.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match glob.get(g) {
            Some(b'*') => {
                star = Some((g, t));
                g += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                g += 1;
                t += 1;
            }
            _ => match star {
                Some((sg, st)) => {
                    g = sg + 1;
                    t = st + 1;
                    star = Some((sg, st + 1));
                }
                None => return false,
            },
        }
    }
    glob[g..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_key() {
        assert_eq!(
            Filter::parse("status=lost").unwrap(),
            Filter::Status(Status::Lost)
        );
        assert_eq!(Filter::parse("kind=cmd").unwrap(), Filter::Kind(Kind::Cmd));
        assert_eq!(
            Filter::parse("label=team").unwrap(),
            Filter::Label("team".into(), None)
        );
        assert_eq!(
            Filter::parse("label=team=a=b").unwrap(),
            Filter::Label("team".into(), Some("a=b".into()))
        );
        assert_eq!(Filter::parse("exit=3").unwrap(), Filter::Exit(3));
        assert_eq!(
            Filter::parse("state=blocked").unwrap(),
            Filter::State(AgentState::Blocked)
        );
        assert_eq!(
            Filter::parse("state=error").unwrap(),
            Filter::State(AgentState::Failed)
        );
        assert_eq!(
            Filter::parse("since=2025-04-27T19:08:47Z").unwrap(),
            Filter::Since(Timestamp::parse_rfc3339("2025-04-27T19:08:47Z").unwrap())
        );
        assert!(
            matches!(Filter::parse("until=7d").unwrap(), Filter::Until(t) if t < Timestamp::now())
        );
        assert_eq!(
            Filter::parse("name=crisp-*").unwrap(),
            Filter::Name("crisp-*".into())
        );
    }

    #[test]
    fn globs_match_like_a_shell() {
        let m = |g: &str, t: &str| glob_match(g.as_bytes(), t.as_bytes());
        assert!(m("crisp-*", "crisp-owlet-3f2a"));
        assert!(m("*-3f2a", "crisp-owlet-3f2a"));
        assert!(m("*owl*", "crisp-owlet-3f2a"));
        assert!(m("crisp-owlet-3f2?", "crisp-owlet-3f2a"));
        assert!(m("*", ""));
        assert!(!m("crisp", "crisp-owlet"));
        assert!(!m("*x*", "crisp-owlet"));
        assert!(m("a*b*c", "aXbYbZc"));
    }

    #[test]
    fn errors_name_the_accepted_keys() {
        for bad in [
            "status",
            "status=dead",
            "kind=vm",
            "label=",
            "exit=x",
            "colour=red",
            "state=sleeping",
            "since=yesterday",
            "name=",
        ] {
            let e = Filter::parse(bad).unwrap_err();
            assert!(e.contains("accepted: status="), "{bad}: {e}");
        }
    }
}
