//! A `--worktree` session's worktree and branch at its removal: the
//! worktree goes, through git (`git worktree remove`), so that git keeps no
//! record of it; the branch stays, unless `--branch` and it is merged into
//! its base. Work that never reached the branch (the commit failed, or the
//! session was lost before its end) is not thrown away without `-f`, and
//! `-f` first commits what it can.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};

use shared::layout;
use shared::record::{Record, State};
use shared::worktree::{self, BranchFate, WorkStatus, Worktree};
use shared::Session;

/// Removes the worktree of `session` (stopped by now), if it has one, and
/// returns it, for [`delete_branch`] once the session is gone.
pub fn reclaim(session: &Session, force: bool) -> anyhow::Result<Option<Worktree>> {
    let dir = &session.dir;
    let Ok(mut record) = Record::read(dir) else {
        // No record to say where it came from: the worktree itself does.
        let Some(w) = unrecorded(dir) else {
            return Ok(None);
        };
        worktree::remove(&w)?;
        return Ok(None);
    };
    let Some(w) = record.worktree.clone() else {
        return Ok(None);
    };
    let id = &session.id;
    // Work that is not on the branch: a commit that failed, or a session
    // that never got to its end (lost). A session whose command never ran
    // has none.
    let unfinished = record.state != State::Failed
        && matches!(w.status, WorkStatus::Active | WorkStatus::Failed)
        && worktree::has_uncommitted(&w, &dir.join(layout::COPIED))?;
    if unfinished {
        let why = match (&w.status, &w.error) {
            (WorkStatus::Failed, Some(e)) => format!("its commit failed: {e}"),
            _ => "the session ended before committing it".to_string(),
        };
        if !force {
            bail!(
                "it holds work not committed to {} ({why}); commit it in {} yourself, or use -f to commit what it can and remove it",
                w.branch,
                w.path
            );
        }
        worktree::commit_session(&mut record, dir);
        if let Some(after) = &record.worktree {
            if after.status == WorkStatus::Failed {
                eprintln!(
                    "codex-rm: warning: {id}: the work in {} could not be committed ({}); removed with -f",
                    w.path,
                    after.error.as_deref().unwrap_or("unknown error")
                );
            }
        }
    }
    worktree::remove(&w)?;
    Ok(Some(w))
}

/// `--branch`: deletes the branch of worktree `w` if it is merged into its
/// base; an error when it is not (the branch is kept).
pub fn delete_branch(w: &Worktree) -> anyhow::Result<()> {
    match worktree::delete_branch_if_merged(w)? {
        BranchFate::Deleted | BranchFate::Gone => Ok(()),
        BranchFate::Unmerged => Err(anyhow!(
            "kept branch {}: it has commits not merged into {} (git branch -D {} deletes it)",
            w.branch,
            w.base,
            w.branch
        )),
    }
}

/// The worktree of a session whose record is unreadable, found from the
/// worktree's own `.git` file (`gitdir: REPO/.git/worktrees/NAME`).
fn unrecorded(dir: &Path) -> Option<Worktree> {
    let path = dir.join(layout::WORKTREE);
    let text = fs::read_to_string(path.join(".git")).ok()?;
    let admin = PathBuf::from(text.strip_prefix("gitdir:")?.trim());
    let common = admin.parent()?.parent()?;
    Some(Worktree {
        git_dir: common.to_str()?.to_string(),
        path: fs::canonicalize(&path).ok()?.to_str()?.to_string(),
        ..Worktree::default()
    })
}
