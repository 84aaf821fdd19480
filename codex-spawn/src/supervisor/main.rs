//! codex-supervisor: the small process that runs one background session
//! (see the library, `lib.rs`).

fn main() {
    supervisor::main()
}
