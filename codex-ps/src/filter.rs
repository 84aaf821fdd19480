//! `--filter KEY=VALUE`: which sessions to show.

use shared::{Kind, Session, Status};

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
}

const KEYS: &str = "accepted: status=starting|running|exited|failed|lost|corrupt, kind=exec|repl|cmd, label=KEY, label=KEY=VALUE, exit=N";

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
            _ => Err(bad(&format!("unknown filter key {key:?}"))),
        }
    }

    /// Whether `session` passes this filter.
    pub fn matches(&self, session: &Session) -> bool {
        let record = session.record.as_ref().ok();
        match self {
            Filter::Status(s) => session.status == *s,
            Filter::Kind(k) => record.is_some_and(|r| r.kind == *k),
            Filter::Label(k, v) => record
                .and_then(|r| r.labels.get(k))
                .is_some_and(|found| v.as_ref().is_none_or(|v| v == found)),
            Filter::Exit(code) => {
                session.status == Status::Exited && record.and_then(|r| r.exit_code) == Some(*code)
            }
        }
    }
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
        ] {
            let e = Filter::parse(bad).unwrap_err();
            assert!(e.contains("accepted: status="), "{bad}: {e}");
        }
    }
}
