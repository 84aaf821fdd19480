//! The error type of the crate: every failure says what was being done and,
//! where there is one, to which path.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while reading or writing a session root.
#[derive(Debug)]
pub enum Error {
    /// A system call on `path` failed while doing `action` (e.g. "reading").
    Io {
        /// What was being done, as a lowercase "-ing" phrase.
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A session record could not be parsed.
    Json {
        /// The record's path.
        path: PathBuf,
        /// The parser's complaint.
        source: serde_json::Error,
    },
    /// A record written by a newer version of the tools.
    NewerFormat {
        /// The record's path.
        path: PathBuf,
        /// The format version found in it.
        found: u32,
    },
    /// The root directory is unsafe to use (wrong owner, open permissions,
    /// not a directory).
    InsecureRoot {
        /// The root's path.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// A string that is not a valid session id or name.
    InvalidId {
        /// The offending string.
        id: String,
        /// Why it is not valid.
        reason: &'static str,
    },
    /// A name asked for with `--name` is already taken.
    NameTaken(String),
    /// No session matches a selector.
    NotFound(String),
    /// A prefix that matches more than one session.
    Ambiguous {
        /// The prefix given.
        prefix: String,
        /// The ids it matches, sorted.
        candidates: Vec<String>,
    },
    /// A value (duration, size, time, selector…) that does not parse.
    Parse {
        /// What kind of value was expected ("duration", "size"...).
        what: &'static str,
        /// The offending input.
        input: String,
        /// What is accepted instead.
        hint: &'static str,
    },
}

impl Error {
    /// Whether this is a write that failed for want of space (see
    /// [`crate::files::is_space_error`]).
    pub fn is_space(&self) -> bool {
        matches!(self, Error::Io { source, .. } if crate::files::is_space_error(source))
    }

    /// Wraps an [`io::Error`] with what was being done to which path.
    pub fn io(action: &'static str, path: impl AsRef<Path>, source: io::Error) -> Self {
        Error::Io {
            action,
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// Wraps a [`nix::Error`] (an errno) like [`Error::io`].
    pub fn nix(action: &'static str, path: impl AsRef<Path>, errno: nix::Error) -> Self {
        Self::io(action, path, io::Error::from(errno))
    }

    /// The underlying OS error, when there is one.
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }

    /// True when the failure is a missing file or directory.
    pub fn is_not_found(&self) -> bool {
        self.io_error()
            .is_some_and(|e| e.kind() == io::ErrorKind::NotFound)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io {
                action,
                path,
                source,
            } => write!(f, "{action} {}: {source}", path.display()),
            Error::Json { path, source } => {
                write!(f, "parsing {}: {source}", path.display())
            }
            Error::NewerFormat { path, found } => write!(
                f,
                "{} has format version {found}, newer than this tool understands ({}); upgrade the codex-* tools",
                path.display(),
                crate::record::FORMAT_VERSION
            ),
            Error::InsecureRoot { path, reason } => {
                write!(f, "refusing session root {}: {reason}", path.display())
            }
            Error::InvalidId { id, reason } => {
                write!(f, "invalid session id or name {id:?}: {reason}")
            }
            Error::NameTaken(name) => write!(f, "a session named {name} already exists"),
            Error::NotFound(sel) => write!(f, "no such session: {sel}"),
            Error::Ambiguous { prefix, candidates } => write!(
                f,
                "{prefix} is ambiguous: it matches {}",
                candidates.join(", ")
            ),
            Error::Parse { what, input, hint } => {
                write!(f, "invalid {what} {input:?}: {hint}")
            }
        }
    }
}

/// No [`source`](std::error::Error::source): the message already ends with
/// the underlying error, which a chain printed in full (`{:#}`) would
/// otherwise repeat ("…: No space left on device (os error 28): No space
/// left on device (os error 28)"). [`Error::io_error`] gives it.
impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_os_error_is_told_once() {
        let e = Error::io(
            "writing",
            "/r/x",
            io::Error::from_raw_os_error(nix::libc::ENOSPC),
        );
        let text = e.to_string();
        assert!(
            text.starts_with("writing /r/x: No space left on device"),
            "{text}"
        );
        // A reader printing the whole chain must not see it twice.
        assert!(std::error::Error::source(&e).is_none());
        assert_eq!(
            e.io_error().and_then(io::Error::raw_os_error),
            Some(nix::libc::ENOSPC)
        );
    }

    #[test]
    fn not_found_is_told_apart() {
        let missing = Error::io("reading", "/x", io::Error::from(io::ErrorKind::NotFound));
        let denied = Error::io(
            "reading",
            "/x",
            io::Error::from(io::ErrorKind::PermissionDenied),
        );
        assert!(missing.is_not_found());
        assert!(!denied.is_not_found());
        assert!(!Error::NotFound("x".into()).is_not_found());
    }
}
