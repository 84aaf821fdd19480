//! codex-rm (not yet implemented).

fn main() {
    eprintln!("codex-rm: not yet implemented");
    std::process::exit(1);
}
