//! codex-attach (not yet implemented).

fn main() {
    eprintln!("codex-attach: not yet implemented");
    std::process::exit(1);
}
