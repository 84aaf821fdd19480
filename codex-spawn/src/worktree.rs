//! `--worktree`: what codex-spawn does for it. Before the session exists,
//! the repository is found and BASE resolved (a mistake there is a usage
//! error) and the files to copy are listed; once the session is published
//! (its id, and so its branch, known), the branch and its worktree are made
//! in the session directory, the files copied in, and the record pointed
//! at the worktree. The supervisor runs `--setup` and, at the end, commits
//! (see `shared::worktree`).

use std::fs;
use std::path::Path;

use anyhow::{anyhow, bail, Context};

use ::cli::Failure;
use shared::create::Created;
use shared::layout;
use shared::record::{Durability, Kind, Record};
use shared::worktree::{self, Origin, WorkStatus, Worktree, BRANCH_PREFIX};
use shared::Root;

/// What a `--worktree` session will be made from.
pub struct Plan {
    origin: Origin,
    /// Untracked files of the user's checkout to copy in.
    copy: Vec<String>,
    setup: Option<String>,
}

/// Finds the repository of `cwd` and BASE for `--worktree[=BASE]`; `None`
/// without `--worktree`.
pub fn plan(
    base: Option<&str>,
    copy: &[String],
    setup: Option<&str>,
    cwd: &std::ffi::OsStr,
) -> Result<Option<Plan>, Failure> {
    let Some(base) = base else { return Ok(None) };
    let origin = worktree::find(Path::new(cwd), Some(base)).map_err(Failure::usage)?;
    let copy = worktree::files_to_copy(&origin, copy).map_err(|e| anyhow!(e))?;
    Ok(Some(Plan {
        origin,
        copy,
        setup: setup.map(str::to_string),
    }))
}

/// Refuses a session root inside the repository's working tree: the
/// worktree would be there too, in the user's `git status`.
pub fn check_root(plan: &Plan, root: &Root) -> Result<(), Failure> {
    let at = fs::canonicalize(root.path()).unwrap_or_else(|_| root.path().to_path_buf());
    let top = fs::canonicalize(&plan.origin.top).unwrap_or_else(|_| plan.origin.top.clone());
    if at.starts_with(&top) {
        return Err(Failure::usage(format!(
            "--worktree: the session root {} is inside the repository's working tree {}, where the worktree would show in git status; use a root outside it (--root)",
            at.display(),
            top.display()
        )));
    }
    Ok(())
}

/// Makes the branch and the worktree of the session just `created`, copies
/// the files in and points the record (working directory, codex's
/// `--cd`) at the worktree. On failure, undoes what it made (see
/// [`discard`]).
pub fn prepare(created: &Created, plan: &Plan) -> anyhow::Result<()> {
    let dir = fs::canonicalize(&created.dir).unwrap_or_else(|_| created.dir.clone());
    let mut record = Record::read(&dir).context("reading the record")?;
    let path = dir.join(layout::WORKTREE);
    let path_str = utf8(&path)?;
    let branch = format!("{BRANCH_PREFIX}{}", created.id);
    let o = &plan.origin;
    if worktree::branch_exists(&o.git_dir, &branch) {
        bail!("branch {branch} already exists in {} (from an earlier session of that name?): delete it, or choose another --name", o.top.display());
    }
    let cwd = if o.prefix.is_empty() {
        path.clone()
    } else {
        path.join(&o.prefix)
    };
    let cwd_str = utf8(&cwd)?;
    record.worktree = Some(Worktree {
        repo: utf8(&o.top)?,
        git_dir: utf8(&o.git_dir)?,
        path: path_str.clone(),
        branch: branch.clone(),
        base: o.base.clone(),
        base_commit: o.base_commit.clone(),
        copied: plan.copy.len() as u64,
        setup: plan.setup.clone(),
        ..Worktree::default()
    });
    record.cwd = cwd_str.clone().into();
    // codex's sandbox: the worktree is its workspace, writable, and
    // nothing else of the repository is.
    let mut codex = vec![format!("--cd={cwd_str}")];
    if cwd != path {
        codex.push(format!("--add-dir={path_str}"));
    }
    match record.kind {
        Kind::Exec => {
            let at = 3.min(record.argv.len()); // after `codex exec --json`
            record
                .argv
                .splice(at..at, codex.into_iter().map(Into::into));
        }
        Kind::Repl => {
            let at = 1.min(record.argv.len());
            record
                .argv
                .splice(at..at, codex.into_iter().map(Into::into));
        }
        Kind::Cmd => {}
    }
    // Recorded before the worktree exists: whoever finds this session
    // half made (codex-spawn killed) knows what to remove.
    record
        .write(&dir, Durability::default())
        .context("recording the worktree")?;
    let made = (|| {
        worktree::add(o, &path, &branch)?;
        fs::create_dir_all(&cwd).with_context(|| format!("creating {cwd_str}"))?;
        if !plan.copy.is_empty() {
            worktree::copy_files(&o.top, &path, &plan.copy)
                .context("copying the files asked for into the worktree")?;
            let mut list = plan.copy.join("\0").into_bytes();
            list.push(0);
            let copied = dir.join(layout::COPIED);
            shared::files::create_private(&copied)
                .and_then(|mut f| {
                    std::io::Write::write_all(&mut f, &list)
                        .map_err(|e| shared::Error::io("writing", &copied, e))
                })
                .context("listing the copied files")?;
        }
        if let Some(w) = record.worktree.as_mut() {
            w.status = WorkStatus::Active;
        }
        record
            .write(&dir, Durability::default())
            .context("recording the worktree")
    })();
    if made.is_err() {
        discard(&dir);
    }
    made
}

/// Undoes [`prepare`] for a session that never ran: the worktree and its
/// branch, made by this codex-spawn (an existing branch of that name is
/// refused before anything is made).
pub fn discard(dir: &Path) {
    let Some(w) = Record::read(dir).ok().and_then(|r| r.worktree) else {
        return;
    };
    let _ = worktree::remove(&w);
    if worktree::branch_exists(Path::new(&w.git_dir), &w.branch) {
        let _ = worktree::delete_branch(Path::new(&w.git_dir), &w.branch);
    }
}

fn utf8(p: &Path) -> anyhow::Result<String> {
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("the path {} is not UTF-8", p.display()))
}
