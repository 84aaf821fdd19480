//! The session root: where it is, and the checks that make it safe to use.
//!
//! The root is `--root DIR`, else `$CODEX_BACKGROUND_DIR`, else
//! `$CODEX_HOME/background`, else `~/.codex/background`. It must be a
//! directory owned by the current user and not writable by group or others;
//! when created, it is created 0700 whatever the umask.

use std::env;
use std::ffi::OsString;
use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::id::SessionId;

/// How a tool opens the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Create the root (and its parents) when missing: codex-spawn.
    Create,
    /// Use it only if it exists; a missing root holds no sessions.
    Read,
}

/// A checked session root.
#[derive(Debug, Clone)]
pub struct Root {
    path: PathBuf,
    exists: bool,
}

/// The root path chosen by `flag` (`--root`) and the environment.
pub fn resolve_path(flag: Option<&Path>) -> Result<PathBuf> {
    resolve_with(flag, |key| env::var_os(key))
}

/// [`resolve_path`] with the environment read through `var`.
fn resolve_with(flag: Option<&Path>, var: impl Fn(&str) -> Option<OsString>) -> Result<PathBuf> {
    let nonempty = |v: Option<OsString>| v.filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = nonempty(var("CODEX_BACKGROUND_DIR")) {
        return Ok(p);
    }
    if let Some(p) = nonempty(var("CODEX_HOME")) {
        return Ok(p.join("background"));
    }
    let home = nonempty(var("HOME"))
        .or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::geteuid())
                .ok()
                .flatten()
                .map(|u| u.dir)
        })
        .ok_or_else(|| Error::InsecureRoot {
            path: PathBuf::from("~/.codex/background"),
            reason: "no home directory: set HOME, CODEX_BACKGROUND_DIR or --root".into(),
        })?;
    Ok(home.join(".codex").join("background"))
}

impl Root {
    /// Opens the root at `path`, creating it when `access` says so, and
    /// checks its owner and mode.
    pub fn open(path: impl Into<PathBuf>, access: Access) -> Result<Root> {
        let path = path.into();
        match fs::metadata(&path) {
            Ok(meta) => {
                check(&path, &meta)?;
                Ok(Root { path, exists: true })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => match access {
                Access::Read => Ok(Root {
                    path,
                    exists: false,
                }),
                Access::Create => {
                    create(&path)?;
                    Ok(Root { path, exists: true })
                }
            },
            Err(e) => Err(Error::io("reading", &path, e)),
        }
    }

    /// The root's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the root exists (a missing one holds no sessions).
    pub fn exists(&self) -> bool {
        self.exists
    }

    /// The directory of session `id` (which may not exist).
    pub fn session_dir(&self, id: &SessionId) -> PathBuf {
        self.path.join(id.as_str())
    }
}

fn create(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|e| Error::io("creating", parent, e))?;
    }
    match DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => fs::set_permissions(path, fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io("setting permissions of", path, e)),
        // Another tool created it meanwhile: check what is there.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let meta = fs::metadata(path).map_err(|e| Error::io("reading", path, e))?;
            check(path, &meta)
        }
        Err(e) => Err(Error::io("creating", path, e)),
    }
}

fn check(path: &Path, meta: &fs::Metadata) -> Result<()> {
    let refuse = |reason: String| {
        Err(Error::InsecureRoot {
            path: path.to_path_buf(),
            reason,
        })
    };
    if !meta.is_dir() {
        return refuse("it is not a directory".into());
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return refuse(format!(
            "it is owned by uid {}, not by you (uid {me})",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return refuse(format!(
            "it is writable by group or others (mode {:o}); run chmod 700 on it",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdir::TempDir;

    #[test]
    fn creates_private_root_whatever_the_umask() {
        let t = TempDir::new("root");
        let path = t.path().join("a/b/background");
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o000));
        let root = Root::open(&path, Access::Create);
        nix::sys::stat::umask(old);
        let root = root.unwrap();
        assert!(root.exists());
        let mode = fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn read_access_does_not_create() {
        let t = TempDir::new("root");
        let root = Root::open(t.path().join("missing"), Access::Read).unwrap();
        assert!(!root.exists());
        assert!(!t.path().join("missing").exists());
    }

    #[test]
    fn a_root_that_cannot_be_looked_at_is_an_error_not_an_empty_root() {
        let t = TempDir::new("root");
        let file = t.path().join("file");
        fs::write(&file, "x").unwrap();
        // Under a plain file: ENOTDIR, not a root that does not exist yet.
        let err = Root::open(file.join("background"), Access::Read).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
    }

    #[test]
    fn a_root_created_meanwhile_by_another_tool_is_checked_not_refused() {
        let t = TempDir::new("root");
        let theirs = t.path().join("theirs");
        fs::create_dir(&theirs).unwrap();
        fs::set_permissions(&theirs, fs::Permissions::from_mode(0o700)).unwrap();
        create(&theirs).unwrap();
        fs::set_permissions(&theirs, fs::Permissions::from_mode(0o777)).unwrap();
        let err = create(&theirs).unwrap_err();
        assert!(matches!(err, Error::InsecureRoot { .. }), "{err}");
        // Any other failure is told as one of creating it.
        let long = t.path().join("x".repeat(300));
        let err = create(&long).unwrap_err().to_string();
        assert!(err.contains("creating"), "{err}");
    }

    #[test]
    fn refuses_files_and_open_modes() {
        let t = TempDir::new("root");
        let file = t.path().join("file");
        fs::write(&file, "x").unwrap();
        let err = Root::open(&file, Access::Read).unwrap_err().to_string();
        assert!(err.contains("not a directory"), "{err}");
        let open = t.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
        let err = Root::open(&open, Access::Create).unwrap_err().to_string();
        assert!(err.contains("writable by group or others"), "{err}");
    }

    #[test]
    fn refuses_a_root_owned_by_someone_else() {
        let t = TempDir::new("root");
        let theirs = t.path().join("theirs");
        fs::create_dir(&theirs).unwrap();
        fs::set_permissions(&theirs, fs::Permissions::from_mode(0o700)).unwrap();
        let other = nix::unistd::Uid::from_raw(nix::unistd::geteuid().as_raw() + 4242);
        if nix::unistd::chown(&theirs, Some(other), None).is_err() {
            eprintln!("skipped: changing a directory's owner needs root");
            return;
        }
        let err = Root::open(&theirs, Access::Read).unwrap_err().to_string();
        assert!(err.contains("owned by uid"), "{err}");
    }

    #[test]
    fn resolution_order() {
        let flag = Path::new("/x/flag");
        assert_eq!(resolve_path(Some(flag)).unwrap(), flag);
        // Each source in turn, the ones above it unset or empty.
        let resolve = |flag: Option<&Path>, vars: &[(&str, &str)]| {
            resolve_with(flag, |key| {
                vars.iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| OsString::from(v))
            })
            .unwrap()
        };
        let all = [
            ("CODEX_BACKGROUND_DIR", "/x/bg"),
            ("CODEX_HOME", "/x/ch"),
            ("HOME", "/x/home"),
        ];
        assert_eq!(resolve(Some(flag), &all), flag);
        assert_eq!(resolve(None, &all), Path::new("/x/bg"));
        let no_bg = [
            ("CODEX_BACKGROUND_DIR", ""),
            ("CODEX_HOME", "/x/ch"),
            ("HOME", "/x/home"),
        ];
        assert_eq!(resolve(None, &no_bg), Path::new("/x/ch/background"));
        let home_only = [("CODEX_HOME", ""), ("HOME", "/x/home")];
        assert_eq!(
            resolve(None, &home_only),
            Path::new("/x/home/.codex/background")
        );
        // No HOME at all: the user database's home directory.
        let from_passwd = resolve_with(None, |_| None);
        if let Ok(Some(user)) = nix::unistd::User::from_uid(nix::unistd::geteuid()) {
            assert_eq!(from_passwd.unwrap(), user.dir.join(".codex/background"));
        }
    }
}
