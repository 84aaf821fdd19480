//! Ids, names and selectors as users type them: parsing never panics, and
//! whatever is accepted names a directory directly inside the root (no
//! `/`, no `..`, nothing hidden), so no selector ever reaches outside it.
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use shared::select::{find_id, Selector};
use shared::SessionId;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let mut parts = text.split('\n');
    let input = parts.next().unwrap_or_default();
    let ids: Vec<&str> = parts.collect();

    if let Ok(id) = SessionId::parse(input) {
        let root = Path::new("/root-of-sessions");
        let dir = root.join(id.as_str());
        assert_eq!(dir.parent(), Some(root), "{input:?} escapes the root");
        assert!(matches!(
            Path::new(id.as_str()).components().collect::<Vec<_>>()[..],
            [Component::Normal(_)]
        ));
        assert!(!id.as_str().starts_with('.'), "{input:?} is hidden");
    }
    for allow_rows in [false, true] {
        if let Ok(Selector::Id(s)) = Selector::parse(input, allow_rows) {
            assert!(SessionId::parse(&s).is_ok(), "{s:?} is not an id");
        }
    }
    if let Ok(i) = find_id(input, &ids) {
        assert!(ids[i].starts_with(input));
    }
});
