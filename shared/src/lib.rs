//! The session-directory format shared by the `codex-*` tools.
//!
//! A session root holds one directory per background session (see
//! [`layout`]). This crate owns everything about that format: where the
//! root is and whether it is safe ([`root`]), ids ([`id`]), the record
//! ([`record`]), the liveness lock ([`lock`]), the derived status
//! ([`status`]), creation ([`create`]), listing ([`list`]), selectors
//! ([`select`]) and the output index ([`index`]). It never prints and never
//! exits: the binaries decide what to tell the user, and what makes them
//! command-line tools lives in the workspace's `cli` crate.

#![deny(missing_docs)]

pub mod agent;
pub mod bytes;
pub mod create;
pub mod error;
pub mod files;
pub mod hooks;
pub mod host;
pub mod id;
pub mod index;
pub mod launch;
pub mod layout;
pub mod list;
pub mod lock;
pub mod logs;
pub mod output;
pub mod protocol;
pub mod queue;
pub mod record;
pub mod remove;
pub mod render;
pub mod root;
pub mod select;
pub mod status;
pub mod stop;
pub mod termstate;
pub mod time;
pub mod units;
pub mod view;
pub mod worktree;

#[cfg(test)]
mod testdir;

pub use error::{Error, Result};
pub use id::SessionId;
pub use list::Session;
pub use record::{Kind, Record, State};
pub use root::{Access, Root};
pub use select::Selector;
pub use status::Status;
pub use time::Timestamp;
