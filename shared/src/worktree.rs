//! Git worktrees for sessions (`codex-spawn --worktree`): a branch
//! `codex/ID` and a linked worktree per session, what the command changed
//! committed to that branch when it ends, and the worktree removed (the
//! branch kept) with the session.
//!
//! Everything here runs the `git` program (never a library), with the
//! variables that would send git to another repository removed, so that
//! what the user sees with `git worktree list`, `git log` and `git diff` is
//! exactly what was done.
//!
//! The worktree lives in the session directory, `ROOT/ID/worktree`
//! ([`crate::layout::WORKTREE`]): outside the user's working tree, so their
//! `git status` never shows it, and gone with the session, so worktrees do
//! not pile up. Removing a session removes the worktree through git first
//! (`git worktree remove`), so git keeps no record of it either.
//!
//! Untracked files an agent needs (`.env`...) are copied in from the user's
//! checkout: those matching the patterns of `--copy` and of the
//! repository's [`INCLUDE_FILE`] (gitignore syntax). They are listed in the
//! session's [`crate::layout::COPIED`] file and never committed.

use std::fmt;
use std::fs;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::layout;
use crate::record::{Kind, Record};

/// The prefix of every session's branch: `codex/ID`.
pub const BRANCH_PREFIX: &str = "codex/";
/// The file, at the top of a repository, listing untracked files to copy
/// into every session's worktree (gitignore syntax, one pattern a line).
pub const INCLUDE_FILE: &str = ".worktreeinclude";
/// The longest a git command may run before it is killed (a hook that
/// hangs must not keep a session from ending).
pub const GIT_TIMEOUT: Duration = Duration::from_secs(300);

/// Variables that point git at another repository, index or work tree:
/// never passed on to the git commands run here.
const GIT_LOCATION_VARS: [&str; 8] = [
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_PREFIX",
    "GIT_IMPLICIT_WORK_TREE",
];

/// A session's worktree, as its record keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Worktree {
    /// The top of the user's checkout the session was started from.
    pub repo: String,
    /// The repository's (common) git directory.
    pub git_dir: String,
    /// The worktree the command runs in.
    pub path: String,
    /// The session's branch, `codex/ID`.
    pub branch: String,
    /// What the branch was made from: a branch name (`main`,
    /// `origin/main`) when BASE named one, else the commit.
    pub base: String,
    /// The commit the branch was made from.
    pub base_commit: String,
    /// How many untracked files were copied in (never committed).
    #[serde(default)]
    pub copied: u64,
    /// `--setup`: the command run in the worktree before the session's.
    #[serde(default)]
    pub setup: Option<String>,
    /// Where the work stands.
    #[serde(default)]
    pub status: WorkStatus,
    /// The branch's tip when the session ended (the base when nothing was
    /// done).
    #[serde(default)]
    pub commit: Option<String>,
    /// What the branch changed since the base, once the session ended.
    #[serde(default)]
    pub diffstat: Option<Diffstat>,
    /// Why the work could not be committed (then it is still in the
    /// worktree).
    #[serde(default)]
    pub error: Option<String>,
}

/// Where a session's work stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkStatus {
    /// The worktree is being made.
    #[default]
    Creating,
    /// The worktree is there; the command works in it.
    Active,
    /// The session ended and its changes were committed to the branch.
    Committed,
    /// The session ended with nothing left to commit.
    Clean,
    /// The session ended, the commit failed: the work is in the worktree
    /// (see `error`).
    Failed,
}

impl WorkStatus {
    /// The name used in the record and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkStatus::Creating => "creating",
            WorkStatus::Active => "active",
            WorkStatus::Committed => "committed",
            WorkStatus::Clean => "clean",
            WorkStatus::Failed => "failed",
        }
    }
}

/// What a branch changed: files, lines added and removed (binary files
/// count as files only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diffstat {
    /// Files changed.
    pub files: u64,
    /// Lines added.
    pub insertions: u64,
    /// Lines removed.
    pub deletions: u64,
}

impl fmt::Display for Diffstat {
    /// `+12 -3 in 4 files`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.files == 1 { "" } else { "s" };
        write!(
            f,
            "+{} -{} in {} file{s}",
            self.insertions, self.deletions, self.files
        )
    }
}

/// A git command that failed, or git that could not be run: what was being
/// done and what git said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitError(pub String);

impl fmt::Display for GitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GitError {}

/// Result of the git operations.
pub type GitResult<T> = std::result::Result<T, GitError>;

/// Runs `git ARGS` in `dir` with `stdin` (if any) and returns its stdout;
/// killed after [`GIT_TIMEOUT`]. `doing` names the action for errors.
fn git(dir: &Path, args: &[&str], doing: &str) -> GitResult<String> {
    let out = git_raw(dir, args, doing)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// [`git`], returning stdout's bytes.
fn git_raw(dir: &Path, args: &[&str], doing: &str) -> GitResult<Vec<u8>> {
    let (ok, out, err) = run_git(dir, args, doing)?;
    if ok {
        Ok(out)
    } else {
        Err(GitError(format!("{doing}: {}", last_words(&err))))
    }
}

/// Runs git; whether it succeeded, its stdout and its stderr.
fn run_git(dir: &Path, args: &[&str], doing: &str) -> GitResult<(bool, Vec<u8>, Vec<u8>)> {
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for var in GIT_LOCATION_VARS {
        cmd.env_remove(var);
    }
    let mut child = cmd.spawn().map_err(|e| {
        GitError(match e.kind() {
            std::io::ErrorKind::NotFound => format!("{doing}: git is not installed (not on PATH)"),
            _ => format!("{doing}: running git: {e}"),
        })
    })?;
    let pid = child.id() as i32;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    // stderr in a thread, stdout here, and the timeout from a third:
    // hooks may write a lot, and may hang.
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if done_rx.recv_timeout(GIT_TIMEOUT) == Err(mpsc::RecvTimeoutError::Timeout) {
            // Its own process group: the hooks it runs go with it.
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            return true;
        }
        false
    });
    let mut out = Vec::new();
    let _ = stdout.read_to_end(&mut out);
    let status = child.wait();
    let _ = done_tx.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    let err = err_reader.join().unwrap_or_default();
    if timed_out {
        return Err(GitError(format!(
            "{doing}: git did not finish within {}s and was killed",
            GIT_TIMEOUT.as_secs()
        )));
    }
    let status = status.map_err(|e| GitError(format!("{doing}: waiting for git: {e}")))?;
    Ok((status.success(), out, err))
}

/// What git said on stderr, on one line: its last lines, hints left out.
fn last_words(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("hint:"))
        .collect();
    let tail = &lines[lines.len().saturating_sub(3)..];
    if tail.is_empty() {
        "git failed".into()
    } else {
        tail.join(" / ")
    }
}

/// Where a `--worktree` session comes from, found before anything is
/// created.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The top of the user's checkout.
    pub top: PathBuf,
    /// The directory asked for, relative to `top` (`""` at the top).
    pub prefix: String,
    /// The repository's common git directory.
    pub git_dir: PathBuf,
    /// BASE as recorded: a branch name, else the commit.
    pub base: String,
    /// BASE's commit.
    pub base_commit: String,
}

/// Finds the repository that `dir` is in and resolves `base` (`HEAD` when
/// none) to a commit. The error is one line for the user.
pub fn find(dir: &Path, base: Option<&str>) -> GitResult<Origin> {
    let inside = run_git(dir, &["rev-parse", "--is-inside-work-tree"], "")?;
    if !inside.0 || String::from_utf8_lossy(&inside.1).trim() != "true" {
        return Err(GitError(format!(
            "--worktree: {} is not in a git working tree",
            dir.display()
        )));
    }
    let info = git(
        dir,
        &[
            "rev-parse",
            "--path-format=absolute",
            "--show-toplevel",
            "--git-common-dir",
            "--show-prefix",
        ],
        "--worktree: reading the repository",
    )?;
    let mut lines = info.lines();
    let (Some(top), Some(git_dir)) = (lines.next(), lines.next()) else {
        return Err(GitError("--worktree: git rev-parse said too little".into()));
    };
    let prefix = lines.next().unwrap_or("").trim_end_matches('/').to_string();
    let base = base.unwrap_or("HEAD");
    let spec = format!("{base}^{{commit}}");
    let commit = git(
        dir,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            &spec,
        ],
        "",
    )
    .map_err(|_| {
        GitError(if base == "HEAD" {
            format!("--worktree: the repository at {top} has no commit yet")
        } else {
            format!("--worktree={base}: not a commit in the repository at {top}")
        })
    })?;
    // A branch (local or remote-tracking) is kept by name, so that
    // "merged into BASE" later means into its tip then.
    let full = git(
        dir,
        &[
            "rev-parse",
            "--symbolic-full-name",
            "--end-of-options",
            base,
        ],
        "",
    )
    .unwrap_or_default();
    let full = full.lines().last().unwrap_or("").trim();
    let named = full
        .strip_prefix("refs/heads/")
        .or_else(|| full.strip_prefix("refs/remotes/"))
        .filter(|n| !n.is_empty());
    let commit = commit.trim().to_string();
    Ok(Origin {
        top: PathBuf::from(top),
        prefix,
        git_dir: PathBuf::from(git_dir),
        base: named.map_or_else(|| commit.clone(), str::to_string),
        base_commit: commit,
    })
}

/// The untracked files (ignored ones included) of the user's checkout that
/// match `patterns` or the lines of its [`INCLUDE_FILE`], relative to its
/// top, in git's order.
pub fn files_to_copy(origin: &Origin, patterns: &[String]) -> GitResult<Vec<String>> {
    let include = origin.top.join(INCLUDE_FILE);
    if patterns.is_empty() && !include.is_file() {
        return Ok(Vec::new());
    }
    let mut args: Vec<String> = ["ls-files", "-z", "--others", "--ignored"]
        .map(String::from)
        .to_vec();
    if include.is_file() {
        args.push(format!("--exclude-from={}", include.display()));
    }
    args.extend(patterns.iter().map(|p| format!("--exclude={p}")));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = git_raw(&origin.top, &refs, "listing the files to copy")?;
    Ok(out
        .split(|&b| b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect())
}

/// Creates branch `branch` at the base commit and its worktree at `path`.
pub fn add(origin: &Origin, path: &Path, branch: &str) -> GitResult<()> {
    let path = path
        .to_str()
        .ok_or_else(|| GitError(format!("the worktree path {} is not UTF-8", path.display())))?;
    git(
        &origin.top,
        &[
            "worktree",
            "add",
            "--quiet",
            "-b",
            branch,
            "--",
            path,
            &origin.base_commit,
        ],
        &format!("creating the worktree for {branch}"),
    )
    .map(drop)
}

/// Copies `files` (relative paths) from `from` into `to`, making their
/// directories; a symlink is copied as a link.
pub fn copy_files(from: &Path, to: &Path, files: &[String]) -> std::io::Result<()> {
    for f in files {
        let (src, dst) = (from.join(f), to.join(f));
        if let Some(parent) = dst.parent() {
            fs::create_dir_all(parent)?;
        }
        let meta = fs::symlink_metadata(&src)?;
        if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src)?, &dst)?;
        } else if meta.is_file() {
            fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

/// The paths listed in a session's copied-files file (NUL separated).
pub fn read_copied(list: &Path) -> Vec<String> {
    fs::read(list)
        .unwrap_or_default()
        .split(|&b| b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect()
}

/// The message of a session's commit: `subject`, then the trailers.
pub struct Message<'a> {
    /// The first line: the prompt's first line, or the command line.
    pub subject: &'a str,
    /// The session id (`Codex-Session:`).
    pub session: &'a str,
    /// The codex thread id, when known (`Codex-Thread:`).
    pub thread: Option<&'a str>,
}

/// Commits everything that changed in worktree `w` (tracked, new and
/// deleted files, not ignored ones, nor the files listed in `copied_list`)
/// to its branch, and fills in the outcome: status, the branch's tip, the
/// diffstat against the base, and the error when the commit failed (the
/// work is then left in the worktree).
pub fn commit(w: &mut Worktree, copied_list: &Path, message: &Message<'_>) {
    match try_commit(w, copied_list, message) {
        Ok(made) => {
            w.status = if made {
                WorkStatus::Committed
            } else {
                WorkStatus::Clean
            };
            w.error = None;
        }
        Err(e) => {
            w.status = WorkStatus::Failed;
            w.error = Some(e.0);
        }
    }
    let dir = Path::new(&w.path);
    w.commit = git(dir, &["rev-parse", "--verify", "HEAD"], "")
        .ok()
        .map(|s| s.trim().to_string());
    w.diffstat = diffstat(dir, &w.base_commit).ok();
}

/// Commits the work of the session whose record is `record` (its
/// directory `dir`), as [`commit`] does, the message made from the record:
/// the prompt's first line (or the command line), the session's id and
/// its codex thread. Does nothing for a session without a worktree.
pub fn commit_session(record: &mut Record, dir: &Path) {
    let subject = subject(record);
    let thread = record.agent.as_ref().and_then(|a| a.thread_id.clone());
    let session = record.id.clone();
    if let Some(w) = record.worktree.as_mut() {
        let message = Message {
            subject: &subject,
            session: &session,
            thread: thread.as_deref(),
        };
        commit(w, &dir.join(layout::COPIED), &message);
    }
}

/// The first line of a session's commit message: the prompt's first line,
/// else the command line.
fn subject(r: &Record) -> String {
    let line = r
        .prompt
        .as_deref()
        .and_then(|p| p.lines().map(str::trim).find(|l| !l.is_empty()));
    match line {
        Some(l) => l.to_string(),
        None if r.kind == Kind::Repl => "codex (interactive session)".into(),
        None => r
            .argv
            .iter()
            .map(|w| {
                let w = w.to_string_lossy();
                if !w.is_empty()
                    && w.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
                {
                    w.into_owned()
                } else {
                    format!("'{}'", w.replace('\'', r"'\''"))
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// Stages the work and commits it; whether a commit was made.
fn try_commit(w: &Worktree, copied_list: &Path, message: &Message<'_>) -> GitResult<bool> {
    let dir = Path::new(&w.path);
    if !dir.is_dir() {
        return Err(GitError(format!("the worktree {} is gone", w.path)));
    }
    stage(dir, copied_list)?;
    let (unchanged, _, err) = run_git(
        dir,
        &["diff", "--cached", "--quiet", "--exit-code"],
        "comparing",
    )?;
    if unchanged {
        return Ok(false);
    }
    if !err.is_empty() {
        return Err(GitError(format!(
            "comparing the work: {}",
            last_words(&err)
        )));
    }
    let session = format!("Codex-Session: {}", message.session);
    let thread = message.thread.map(|t| format!("Codex-Thread: {t}"));
    let mut args = vec!["commit", "--quiet", "-m", message.subject];
    args.extend(["--trailer", &session]);
    if let Some(t) = &thread {
        args.extend(["--trailer", t]);
    }
    git(dir, &args, &format!("committing to {}", w.branch))?;
    Ok(true)
}

/// `git add -A`, then the copied files taken out of the index again.
fn stage(dir: &Path, copied_list: &Path) -> GitResult<()> {
    git(dir, &["add", "-A"], "staging the work")?;
    if copied_list.is_file() {
        let from = format!("--pathspec-from-file={}", copied_list.display());
        git(
            dir,
            &[
                "--literal-pathspecs",
                "reset",
                "--quiet",
                &from,
                "--pathspec-file-nul",
            ],
            "leaving the copied files out",
        )?;
    }
    Ok(())
}

/// What the worktree's index holds against `base`, as a diffstat.
fn diffstat(dir: &Path, base: &str) -> GitResult<Diffstat> {
    let out = git_raw(
        dir,
        &["diff", "--cached", "--numstat", "-z", "--no-renames", base],
        "counting the changes",
    )?;
    let mut d = Diffstat::default();
    for entry in out.split(|&b| b == 0).filter(|e| !e.is_empty()) {
        let text = String::from_utf8_lossy(entry);
        let mut fields = text.splitn(3, '\t');
        let (Some(add), Some(del)) = (fields.next(), fields.next()) else {
            continue;
        };
        d.files += 1;
        d.insertions += add.parse::<u64>().unwrap_or(0);
        d.deletions += del.parse::<u64>().unwrap_or(0);
    }
    Ok(d)
}

/// Whether worktree `w` holds changes that are not on its branch (the
/// copied files aside). A worktree that is gone holds none.
pub fn has_uncommitted(w: &Worktree, copied_list: &Path) -> GitResult<bool> {
    let dir = Path::new(&w.path);
    if !dir.join(".git").exists() {
        return Ok(false);
    }
    let out = git_raw(
        dir,
        &["status", "--porcelain", "-z", "--untracked-files=all"],
        "looking for uncommitted work",
    )?;
    let copied = read_copied(copied_list);
    Ok(out
        .split(|&b| b == 0)
        .filter(|e| e.len() > 3)
        .map(|e| String::from_utf8_lossy(&e[3..]).into_owned())
        .any(|path| !copied.contains(&path)))
}

/// Removes worktree `w` and git's record of it (`git worktree remove
/// --force`, which also forgets a worktree whose directory is already
/// gone). The branch stays. When the repository itself is gone there is
/// nothing to tell git: the directory is left for the caller to remove.
pub fn remove(w: &Worktree) -> GitResult<()> {
    let git_dir = Path::new(&w.git_dir);
    if !git_dir.is_dir() {
        return Ok(());
    }
    let removed = git(
        git_dir,
        &["worktree", "remove", "--force", "--force", "--", &w.path],
        &format!("removing the worktree {}", w.path),
    );
    match removed {
        Ok(_) => Ok(()),
        // Not (or no longer) a worktree of this repository: nothing to do.
        Err(_) if !is_listed(git_dir, &w.path).unwrap_or(true) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether `git worktree list` in `git_dir` names `path`.
fn is_listed(git_dir: &Path, path: &str) -> GitResult<bool> {
    let list = git(git_dir, &["worktree", "list", "--porcelain", "-z"], "")?;
    let wanted = format!("worktree {path}");
    Ok(list.split('\0').any(|e| e == wanted))
}

/// What became of a branch asked to be deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BranchFate {
    /// It was merged into its base and is deleted.
    Deleted,
    /// It no longer exists.
    Gone,
    /// It has commits its base does not: kept.
    Unmerged,
}

/// Deletes `w`'s branch if every commit of it is in its base (the branch's
/// tip is an ancestor of the base's tip: merged or fast-forwarded).
pub fn delete_branch_if_merged(w: &Worktree) -> GitResult<BranchFate> {
    let git_dir = Path::new(&w.git_dir);
    let branch_ref = format!("refs/heads/{}", w.branch);
    if !git_dir.is_dir() || !branch_exists(git_dir, &w.branch) {
        return Ok(BranchFate::Gone);
    }
    let base = format!("{}^{{commit}}", w.base);
    let (merged, _, err) = run_git(
        git_dir,
        &["merge-base", "--is-ancestor", &branch_ref, &base],
        "",
    )?;
    if !merged {
        if !err.is_empty() {
            return Err(GitError(format!(
                "checking whether {} is merged into {}: {}",
                w.branch,
                w.base,
                last_words(&err)
            )));
        }
        return Ok(BranchFate::Unmerged);
    }
    git(
        git_dir,
        &["branch", "-D", "--", &w.branch],
        &format!("deleting {}", w.branch),
    )?;
    Ok(BranchFate::Deleted)
}

/// Whether branch `branch` exists in the repository of `git_dir`.
pub fn branch_exists(git_dir: &Path, branch: &str) -> bool {
    let full = format!("refs/heads/{branch}");
    run_git(git_dir, &["rev-parse", "--verify", "--quiet", &full], "").is_ok_and(|(ok, _, _)| ok)
}

/// Deletes `branch` whatever it holds (a session that never ran).
pub fn delete_branch(git_dir: &Path, branch: &str) -> GitResult<()> {
    git(
        git_dir,
        &["branch", "-D", "--", branch],
        &format!("deleting {branch}"),
    )
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `script` with sh in `dir`, away from the user's git settings,
    /// and fails the test if it fails.
    fn run_sh(dir: &Path, script: &str) {
        let ok = std::process::Command::new("sh")
            .args(["-c", script])
            .current_dir(dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .status()
            .unwrap()
            .success();
        assert!(ok, "{script}");
    }

    #[test]
    fn diffstat_reads_like_git() {
        let d = Diffstat {
            files: 4,
            insertions: 12,
            deletions: 3,
        };
        assert_eq!(d.to_string(), "+12 -3 in 4 files");
        let one = Diffstat {
            files: 1,
            insertions: 1,
            deletions: 0,
        };
        assert_eq!(one.to_string(), "+1 -0 in 1 file");
    }

    #[test]
    fn work_statuses_are_named_as_in_the_record_and_errors_as_given() {
        use WorkStatus::*;
        for (st, name) in [
            (Creating, "creating"),
            (Active, "active"),
            (Committed, "committed"),
            (Clean, "clean"),
            (Failed, "failed"),
        ] {
            assert_eq!(st.as_str(), name);
            assert_eq!(serde_json::to_string(&st).unwrap(), format!("\"{name}\""));
        }
        assert_eq!(
            GitError("committing: no".into()).to_string(),
            "committing: no"
        );
    }

    #[test]
    fn the_copied_list_is_read_between_nuls() {
        let dir = crate::testdir::TempDir::new("worktree");
        let list = dir.path().join("copied");
        assert!(read_copied(&list).is_empty(), "no list: nothing copied");
        fs::write(&list, b"a.env\0\0dir/b c\0").unwrap();
        assert_eq!(read_copied(&list), ["a.env", "dir/b c"]);
    }

    #[test]
    fn a_commit_is_named_by_the_prompt_else_the_command_line() {
        let mut r = Record {
            prompt: Some("\n  Fix the parser  \nthen test it".into()),
            kind: Kind::Exec,
            ..Record::default()
        };
        assert_eq!(subject(&r), "Fix the parser");
        r.prompt = Some(" \n ".into());
        r.kind = Kind::Repl;
        assert_eq!(subject(&r), "codex (interactive session)");
        r.kind = Kind::Cmd;
        r.argv = ["make", "-j4", "CFLAGS=-O2", "it's here", ""]
            .into_iter()
            .map(Into::into)
            .collect();
        assert_eq!(subject(&r), r"make -j4 CFLAGS=-O2 'it'\''s here' ''");
    }

    #[test]
    fn a_worktrees_life_uncommitted_work_committed_merged_removed() {
        let t = crate::testdir::TempDir::new("worktree");
        let repo = t.path().join("repo");
        fs::create_dir(&repo).unwrap();
        let sh = run_sh;
        sh(
            &repo,
            "git init -q -b main . && git config user.email t@e && git config user.name t \
             && echo a > a && git add a && git commit -qm one",
        );
        let origin = find(&repo, None).unwrap();
        let path = t.path().join("wt");
        add(&origin, &path, "codex/t-1").unwrap();
        let mut w = Worktree {
            repo: origin.top.to_string_lossy().into_owned(),
            git_dir: origin.git_dir.to_string_lossy().into_owned(),
            path: path.to_string_lossy().into_owned(),
            branch: "codex/t-1".into(),
            base: origin.base.clone(),
            base_commit: origin.base_commit.clone(),
            ..Worktree::default()
        };
        assert!(branch_exists(&origin.git_dir, "codex/t-1"));
        assert!(!branch_exists(&origin.git_dir, "codex/none"));
        let copied = t.path().join("copied");
        assert!(!has_uncommitted(&w, &copied).unwrap(), "a fresh worktree");
        // A copied file is not work; a new one is.
        fs::write(path.join(".env"), "x").unwrap();
        fs::write(&copied, ".env\0").unwrap();
        assert!(
            !has_uncommitted(&w, &copied).unwrap(),
            "only the copied file"
        );
        fs::write(path.join("b"), "b\nc\n").unwrap();
        assert!(has_uncommitted(&w, &copied).unwrap(), "a new file");
        fs::write(path.join("a"), "").unwrap();
        // Unmerged work keeps its branch.
        let message = Message {
            subject: "add b",
            session: "t-1",
            thread: None,
        };
        commit(&mut w, &copied, &message);
        assert_eq!(w.status, WorkStatus::Committed, "{:?}", w.error);
        assert_eq!(
            w.diffstat,
            Some(Diffstat {
                files: 2,
                insertions: 2,
                deletions: 1
            })
        );
        assert!(!has_uncommitted(&w, &copied).unwrap(), "committed");
        assert_eq!(delete_branch_if_merged(&w).unwrap(), BranchFate::Unmerged);
        // Removed, then removed again (no longer listed: nothing to do).
        remove(&w).unwrap();
        assert!(!path.exists());
        assert!(
            !has_uncommitted(&w, &copied).unwrap(),
            "a worktree that is gone"
        );
        remove(&w).unwrap();
        // Merged into main, the branch goes; then it is gone.
        sh(&repo, "git merge -q --ff-only codex/t-1");
        assert_eq!(delete_branch_if_merged(&w).unwrap(), BranchFate::Deleted);
        assert!(!branch_exists(&origin.git_dir, "codex/t-1"));
        assert_eq!(delete_branch_if_merged(&w).unwrap(), BranchFate::Gone);
    }

    #[test]
    fn find_says_why_there_is_no_base_and_untracked_files_are_picked_to_copy() {
        let t = crate::testdir::TempDir::new("worktree");
        let repo = t.path().join("repo");
        fs::create_dir(&repo).unwrap();
        let sh = |script: &str| run_sh(&repo, script);
        sh("git init -q -b main . && git config user.email t@e && git config user.name t");
        let err = find(&repo, None).unwrap_err().0;
        assert!(err.ends_with("has no commit yet"), "{err}");
        let err = find(&repo.join(".git"), None).unwrap_err().0;
        assert!(err.ends_with("is not in a git working tree"), "{err}");
        sh("printf '.env\\nbuild/\\n' > .gitignore && git add .gitignore && git commit -qm one");
        let err = find(&repo, Some("nope")).unwrap_err().0;
        assert!(err.starts_with("--worktree=nope: not a commit"), "{err}");
        let origin = find(&repo, None).unwrap();
        assert_eq!(origin.base, "main");
        // Untracked files, ignored ones included, by --copy pattern or by
        // the include file; nothing without either.
        sh("echo s > .env && mkdir build && echo o > build/out && echo n > notes");
        assert!(files_to_copy(&origin, &[]).unwrap().is_empty());
        assert_eq!(files_to_copy(&origin, &[".env".into()]).unwrap(), [".env"]);
        fs::write(repo.join(INCLUDE_FILE), "build/\n").unwrap();
        let mut both = files_to_copy(&origin, &[".env".into()]).unwrap();
        both.sort();
        assert_eq!(both, [".env", "build/out"]);
    }

    #[test]
    fn git_errors_keep_the_last_lines_without_hints() {
        let err = b"hint: do this\nerror: first\n\nfatal: second\n";
        assert_eq!(last_words(err), "error: first / fatal: second");
        assert_eq!(last_words(b""), "git failed");
    }
}
