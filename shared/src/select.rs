//! Selectors: how users name a session on the command line.
//!
//! - an exact id (`crisp-owlet-3f2a`);
//! - a unique prefix of one (`crisp`); an ambiguous one is an error that
//!   lists the candidates;
//! - a row number `N`, 0 being the newest, as in the `#` column of codex-ps
//!   (ids are never all digits, so the two cannot be confused).

use crate::error::{Error, Result};
use crate::id::SessionId;
use crate::list::Session;

/// A parsed selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// An exact id or a unique prefix of one.
    Id(String),
    /// A row number, 0 being the newest session.
    Row(usize),
}

impl Selector {
    /// Parses a selector. `allow_rows` is false for tools that destroy
    /// (codex-rm): row numbers shift with every spawn.
    pub fn parse(s: &str, allow_rows: bool) -> Result<Selector> {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            if !allow_rows {
                return Err(Error::InvalidId {
                    id: s.to_string(),
                    reason: "row numbers are not accepted here; give an id or a prefix",
                });
            }
            return s.parse().map(Selector::Row).map_err(|_| Error::Parse {
                what: "row number",
                input: s.to_string(),
                hint: "too large",
            });
        }
        // A prefix obeys the rules of an id, so it is checked the same way
        // before it comes anywhere near a path.
        SessionId::parse(s)?;
        Ok(Selector::Id(s.to_string()))
    }

    /// Finds the session this selector names among `sessions` (newest
    /// first, as [`crate::root::Root::list`] returns them). Returns its index.
    pub fn find(&self, sessions: &[Session]) -> Result<usize> {
        match self {
            Selector::Row(n) if *n < sessions.len() => Ok(*n),
            Selector::Row(n) => Err(Error::NotFound(format!(
                "row {n} (there are {} sessions)",
                sessions.len()
            ))),
            Selector::Id(s) => {
                let ids: Vec<&str> = sessions.iter().map(|x| x.id.as_str()).collect();
                find_id(s, &ids)
            }
        }
    }
}

/// Finds `s` among `ids`: an exact match, else the only id it prefixes.
pub fn find_id(s: &str, ids: &[&str]) -> Result<usize> {
    if let Some(i) = ids.iter().position(|id| *id == s) {
        return Ok(i);
    }
    let matches: Vec<usize> = (0..ids.len()).filter(|&i| ids[i].starts_with(s)).collect();
    match matches.as_slice() {
        [] => Err(Error::NotFound(s.to_string())),
        [one] => Ok(*one),
        many => Err(Error::Ambiguous {
            prefix: s.to_string(),
            // Sorted, so that every tool lists them in the same order
            // whatever order it had the ids in.
            candidates: {
                let mut c: Vec<String> = many.iter().map(|&i| ids[i].to_string()).collect();
                c.sort_unstable();
                c
            },
        }),
    }
}

impl crate::root::Root {
    /// The id `selector` names in this root. Ids and prefixes need only the
    /// directory names; row numbers need the newest-first list.
    pub fn resolve(&self, selector: &Selector) -> Result<SessionId> {
        match selector {
            Selector::Row(_) => {
                let sessions = self.list()?;
                let i = selector.find(&sessions)?;
                Ok(sessions[i].id.clone())
            }
            Selector::Id(s) => {
                let ids = self.ids()?;
                let refs: Vec<&str> = ids.iter().map(SessionId::as_str).collect();
                let i = find_id(s, &refs)?;
                Ok(ids[i].clone())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rows_and_ids() {
        assert_eq!(Selector::parse("3", true).unwrap(), Selector::Row(3));
        assert!(Selector::parse("3", false).is_err());
        assert_eq!(
            Selector::parse("crisp", true).unwrap(),
            Selector::Id("crisp".into())
        );
        for bad in ["", "../x", "a/b", ".", "A", "99999999999999999999999999"] {
            assert!(Selector::parse(bad, true).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rows_name_the_sessions_there_are_and_no_more() {
        let sessions: Vec<Session> = ["c-3", "b-2", "a-1"]
            .into_iter()
            .map(|id| Session {
                id: SessionId::parse(id).unwrap(),
                dir: id.into(),
                record: Err(Error::NotFound(id.into())),
                status: crate::status::Status::Exited,
            })
            .collect();
        for n in 0..3 {
            assert_eq!(Selector::Row(n).find(&sessions).unwrap(), n);
        }
        for n in [3, 4, 1000] {
            match Selector::Row(n).find(&sessions) {
                Err(Error::NotFound(what)) => {
                    assert_eq!(what, format!("row {n} (there are 3 sessions)"))
                }
                other => panic!("row {n}: {other:?}"),
            }
        }
        assert!(Selector::Row(0).find(&[]).is_err());
    }

    #[test]
    fn exact_prefix_and_ambiguity() {
        let ids = [
            "crisp-owlet-1",
            "crisp-owlet-2",
            "calm-yak-3",
            "job",
            "job-2",
        ];
        assert_eq!(find_id("calm", &ids).unwrap(), 2);
        assert_eq!(find_id("crisp-owlet-2", &ids).unwrap(), 1);
        // An exact id wins over being a prefix of another.
        assert_eq!(find_id("job", &ids).unwrap(), 3);
        match find_id("crisp", &ids).unwrap_err() {
            Error::Ambiguous { candidates, .. } => {
                assert_eq!(candidates, ["crisp-owlet-1", "crisp-owlet-2"])
            }
            e => panic!("{e}"),
        }
        assert!(matches!(find_id("zebra", &ids), Err(Error::NotFound(_))));
    }
}
