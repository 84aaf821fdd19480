//! Giving back the pages of code the supervisor ran only to start.
//!
//! An idle supervisor waits in `poll`; the code that started the session
//! (reading and writing the record, the handoff, setting up the logs and
//! the socket) is not needed again for a long time, if ever. Its pages
//! stay mapped all the same, and the kernel maps whole 64 KiB windows
//! around each page touched: while this is the only process running this
//! program, they count as its private memory (most of an idle session's
//! USS). Once the session runs, the supervisor drops its mappings of its
//! program's read-only segments (code and constants). The pages stay in
//! the page cache, shared with every other process running the program;
//! the code the loop runs is mapped back by its next page faults (minor
//! faults, no I/O). Writable segments are never touched: they hold
//! relocated pointers and data that exist nowhere else.

use std::ffi::{c_int, c_void};

use nix::libc;

/// Drops this program's mappings of its read-only segments.
pub fn start_up_code() {
    // Safety: dl_iterate_phdr calls `each` with valid program headers and
    // gives it the null data pointer we pass; `each` only reads them.
    unsafe { libc::dl_iterate_phdr(Some(each), std::ptr::null_mut()) };
}

/// Called for each loaded object, the program first: drops the program's
/// read-only segments, then stops.
unsafe extern "C" fn each(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    _data: *mut c_void,
) -> c_int {
    // Safety: the loader hands us a valid, live dl_phdr_info.
    let info = unsafe { &*info };
    let page = 4096usize;
    for i in 0..usize::from(info.dlpi_phnum) {
        // Safety: dlpi_phdr points at dlpi_phnum program headers.
        let ph = unsafe { &*info.dlpi_phdr.add(i) };
        if ph.p_type != libc::PT_LOAD || ph.p_flags & libc::PF_W != 0 {
            continue;
        }
        let start = (info.dlpi_addr as usize + ph.p_vaddr as usize) & !(page - 1);
        let end =
            (info.dlpi_addr as usize + (ph.p_vaddr + ph.p_memsz) as usize + page - 1) & !(page - 1);
        // Safety: a segment mapped read-only from the program's file was
        // never written: dropping its mappings loses nothing, and the next
        // access maps the same bytes back from the page cache.
        unsafe { libc::madvise(start as *mut c_void, end - start, libc::MADV_DONTNEED) };
    }
    1
}
