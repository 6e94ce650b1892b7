//! The server's allocator setting: after startup, memory freed is kept for
//! reuse (see `net::server::keep_freed_memory`). Its own test binary, so
//! nothing else allocates in the process while RSS is compared.

use std::time::Duration;

fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

const TOTAL: usize = 256 << 20;

/// Allocates `TOTAL` bytes from mimalloc in `piece`-byte blocks, touches
/// and frees them, lets the allocator purge, and returns how much RSS grew.
fn churn(piece: usize) -> usize {
    let before = rss();
    // SAFETY: mimalloc's own malloc and free, each block written within
    // its size and freed once.
    unsafe {
        let blocks: Vec<*mut u8> = (0..TOTAL / piece)
            .map(|_| {
                let p = libmimalloc_sys::mi_malloc(piece).cast::<u8>();
                assert!(!p.is_null());
                std::ptr::write_bytes(p, 1, piece);
                p
            })
            .collect();
        for p in blocks {
            libmimalloc_sys::mi_free(p.cast());
        }
        libmimalloc_sys::mi_collect(true);
        std::thread::sleep(Duration::from_millis(50));
        libmimalloc_sys::mi_collect(true);
    }
    rss().saturating_sub(before)
}

#[test]
fn after_startup_freed_memory_is_kept_and_reused() {
    // Small blocks, 4 MiB blocks (a snapshot's vectors), and one block of
    // the whole size (a snapshot's file image).
    for piece in [64 << 10, 4 << 20, TOTAL] {
        // mimalloc purging at once: the memory goes back. This also shows
        // that the option number is the purge delay.
        // SAFETY: sets an allocator option.
        unsafe { libmimalloc_sys::mi_option_set(net::server::MI_OPTION_PURGE_DELAY, 0) };
        let grew = churn(piece);
        assert!(
            grew < TOTAL / 4,
            "{piece}-byte blocks, purging: RSS grew {grew}"
        );

        net::server::keep_freed_memory();
        let grew = churn(piece);
        assert!(
            grew > TOTAL / 2,
            "{piece}-byte blocks, kept: RSS grew {grew}"
        );
        // Kept, and reused by the next round: no new pages.
        let grew = churn(piece);
        assert!(
            grew < TOTAL / 4,
            "{piece}-byte blocks, reused: RSS grew {grew}"
        );

        // Back to purging, to start the next size from nothing kept.
        // SAFETY: as above.
        unsafe { libmimalloc_sys::mi_option_set(net::server::MI_OPTION_PURGE_DELAY, 0) };
        churn(piece);
    }
}
