//! The human table: `#  ID  PID  TYPE  STATUS  OUT  ERR  CREATED  PROMPT`.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

use shared::agent::AgentState;
use shared::layout::Stream;
use shared::units::human_size;
use shared::worktree::{WorkStatus, Worktree};
use shared::{Kind, Session, Status};
use tabled::builder::Builder;
use tabled::settings::{Padding, Style};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// The columns, in order.
const HEADER: [&str; 9] = [
    "#", "ID", "PID", "TYPE", "STATUS", "OUT", "ERR", "CREATED", "PROMPT",
];
/// Spaces between columns (one from the style, the rest padding).
const GAP: usize = 3;
/// The PROMPT column is not cut narrower than this while other columns
/// can be left out instead.
const MIN_PROMPT: usize = 10;
/// The columns left out, in this order, when the rows would not fit the
/// terminal otherwise: ERR, OUT, CREATED, TYPE, PID.
const DROPPABLE: [usize; 5] = [6, 5, 7, 3, 2];

/// How to draw the table.
pub struct Look {
    /// Colour the STATUS column (a terminal, NO_COLOR unset).
    pub colour: bool,
    /// Cut PROMPT so that rows fit this many columns.
    pub width: Option<usize>,
}

/// Renders `rows` (row number and session) as the table, header included,
/// with a trailing newline.
///
/// With a width, rows never wrap (given ids that fit): PROMPT is cut by
/// terminal columns, and where it would get fewer than [`MIN_PROMPT`]
/// columns, the least useful columns are left out first.
pub fn render(rows: &[(usize, &Session)], look: &Look) -> String {
    let mut cells: Vec<[String; 9]> = rows.iter().map(|(i, s)| cells(*i, s)).collect();
    let mut shown = [true; 9];
    if let Some(width) = look.width {
        let column = |c: usize| {
            let widest = cells.iter().map(|r| r[c].width()).max().unwrap_or(0);
            widest.max(HEADER[c].len()) + GAP
        };
        let widths: Vec<usize> = (0..8).map(column).collect();
        let used = |shown: &[bool; 9]| (0..8).filter(|&c| shown[c]).map(|c| widths[c]).sum();
        let prompt = cells.iter().map(|r| r[8].width()).max().unwrap_or(0);
        let want = prompt.max(HEADER[8].len()).min(MIN_PROMPT);
        for c in DROPPABLE {
            if used(&shown) + want <= width {
                break;
            }
            shown[c] = false;
        }
        // Then back what fits again, the more useful first (a wide
        // CREATED may have had to go where OUT and ERR fit).
        for c in DROPPABLE.into_iter().rev() {
            if !shown[c] && used(&shown) + widths[c] + want <= width {
                shown[c] = true;
            }
        }
        let room = width.saturating_sub(used(&shown)).max(1);
        for row in &mut cells {
            row[8] = cut(&row[8], room);
        }
    }
    let pick = |row: [String; 9]| -> Vec<String> {
        row.into_iter()
            .zip(shown)
            .filter_map(|(cell, keep)| keep.then_some(cell))
            .collect()
    };
    let mut builder = Builder::with_capacity(rows.len() + 1, HEADER.len());
    builder.push_record(pick(HEADER.map(String::from)));
    for (row, (_, session)) in cells.into_iter().zip(rows) {
        let mut row = row;
        if look.colour {
            row[4] = paint(&row[4], session.status);
        }
        builder.push_record(pick(row));
    }
    let mut table = builder.build();
    table
        .with(Style::blank())
        .with(Padding::new(0, GAP - 1, 0, 0));
    let mut out = table.to_string();
    // Drop the padding at the end of each line.
    out = out
        .lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n");
    out.push('\n');
    out
}

fn cells(index: usize, s: &Session) -> [String; 9] {
    let r = s.record.as_ref().ok();
    let dash = || "-".to_string();
    [
        index.to_string(),
        s.id.to_string(),
        r.and_then(|r| r.pid).map_or_else(dash, |p| p.to_string()),
        r.map_or_else(dash, |r| r.kind.as_str().to_string()),
        status_text(s),
        human_size(s.log_bytes(Stream::Stdout)),
        human_size(s.log_bytes(Stream::Stderr)),
        s.created_at().to_rfc3339_secs(),
        // Session data: shown escaped, never interpreted by the terminal.
        ::cli::text::line(&r.map(prompt_cell).unwrap_or_default()),
    ]
}

/// The PROMPT column: for an exec session the agent's state and its last
/// message (or error, or the prompt while it has said nothing yet), after
/// the session it continues; for a repl without a prompt, where it runs;
/// for others the prompt's first line or the command line.
fn prompt_cell(r: &shared::Record) -> String {
    match r.worktree.as_ref().and_then(work_text) {
        Some(work) => format!("{work} · {}", what_cell(r)),
        None => what_cell(r),
    }
}

/// What a worktree session's work came to, once it ended: `+12 -3 in 4
/// files`, `no changes`, or `not committed: +12 -3 in 4 files`.
fn work_text(w: &Worktree) -> Option<String> {
    let stat = w.diffstat.filter(|d| d.files > 0);
    Some(match (w.status, stat) {
        (WorkStatus::Creating | WorkStatus::Active, _) => return None,
        (WorkStatus::Failed, Some(d)) => format!("not committed: {d}"),
        (WorkStatus::Failed, None) => "not committed".into(),
        (_, Some(d)) => d.to_string(),
        (_, None) => "no changes".into(),
    })
}

/// The PROMPT column without the work: what the session was asked and,
/// for an exec session, what the agent answered.
fn what_cell(r: &shared::Record) -> String {
    let first_line = |s: &str| s.lines().next().unwrap_or("").to_string();
    if let Some(agent) = &r.agent {
        let text = match agent.state {
            AgentState::Failed => agent
                .last_error
                .as_deref()
                .or(agent.last_message.as_deref()),
            _ => agent.last_message.as_deref(),
        }
        .or(r.prompt.as_deref())
        .unwrap_or("");
        let after = r
            .continues
            .as_deref()
            .map_or_else(String::new, |id| format!("after {id} · "));
        return format!("{after}{}: {}", agent.state.as_str(), first_line(text));
    }
    match &r.prompt {
        Some(p) => first_line(p),
        None if r.kind == Kind::Repl => format!(
            "interactive, in {}",
            ::cli::text::line_bytes(std::os::unix::ffi::OsStrExt::as_bytes(r.cwd.as_os_str()))
        ),
        None => shell_words(&r.argv),
    }
}
/// `running`, `exited 0`, `killed SIGTERM`, `timed out`, `lost`…
pub fn status_text(s: &Session) -> String {
    let r = s.record.as_ref().ok();
    match s.status {
        Status::Exited if r.is_some_and(|r| r.timed_out) => "timed out".into(),
        Status::Exited => match r.map(|r| (&r.signal, r.exit_code)) {
            Some((Some(sig), _)) => format!("killed {sig}"),
            Some((None, Some(code))) => format!("exited {code}"),
            _ => "exited".into(),
        },
        other => other.as_str().into(),
    }
}

fn paint(text: &str, status: Status) -> String {
    let code = match status {
        Status::Queued | Status::Starting => "36",
        Status::Running => "32",
        Status::Exited if text == "exited 0" => return text.to_string(),
        Status::Exited => "33",
        Status::Failed | Status::Lost | Status::Corrupt => "31",
    };
    format!("\x1b[{code}m{text}\x1b[39m")
}

/// The command line as one string, quoting words that need it; bytes
/// that are not UTF-8 shown as `\xHH` (see `cli::text`).
fn shell_words(argv: &[OsString]) -> String {
    argv.iter()
        .map(|w| {
            let w = ::cli::text::line_bytes(w.as_bytes());
            if !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
            {
                w
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `s` cut to `max` terminal columns, the last one `…` when cut (wide
/// characters take two columns, combining marks none).
fn cut(s: &str, max: usize) -> String {
    if s.width() <= max {
        return s.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > max.saturating_sub(1) {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_with_an_ellipsis() {
        assert_eq!(cut("hello world", 5), "hell…");
        assert_eq!(cut("hello", 5), "hello");
        assert_eq!(cut("héllo wörld", 6), "héllo…");
        // By columns: wide characters take two, combining marks none.
        assert_eq!(cut("漢字漢字漢字", 7), "漢字漢…");
        assert_eq!(cut("漢字漢字漢字", 6), "漢字…");
        assert_eq!(
            cut("e\u{301}e\u{301}e\u{301}e\u{301}", 3),
            "e\u{301}e\u{301}…"
        );
    }

    #[test]
    fn quotes_words_like_a_shell() {
        let argv = ["sh", "-c", "echo 'hi'; exit 3"].map(OsString::from);
        assert_eq!(shell_words(&argv), r"sh -c 'echo '\''hi'\''; exit 3'");
    }
}
