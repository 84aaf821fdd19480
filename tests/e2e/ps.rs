//! End-to-end tests of codex-ps.

#[allow(unused_imports)]
use crate::util::*;
