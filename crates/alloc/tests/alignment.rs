//! The allocator installed as this test binary's global allocator: every layout gets a block
//! aligned as asked, holding what was written, through growth and shrinking.

use std::alloc::{GlobalAlloc, Layout};

#[global_allocator]
static ALLOCATOR: keyway_alloc::Allocator = keyway_alloc::Allocator;

/// Sizes around mimalloc's size classes (24, 40 and 48 bytes are not powers of two), small and
/// large, with every alignment up to a page.
#[test]
fn blocks_are_aligned_and_keep_their_contents() {
    let sizes = [1, 3, 7, 8, 12, 16, 24, 31, 40, 48, 56, 64, 100, 1000, 4096, 70_000, 5 << 20];
    let alignments = [1, 2, 4, 8, 16, 32, 64, 4096];
    for &size in &sizes {
        for &align in &alignments {
            let layout = Layout::from_size_align(size, align).expect("a valid layout");
            // Many small ones at once, so size classes fill their pages and take their
            // slower paths.
            let count = if size <= 4096 { 64 } else { 2 };
            let blocks: Vec<*mut u8> = (0..count)
                .map(|i| {
                    let p = if i % 2 == 0 {
                        // SAFETY: the layout has a nonzero size.
                        unsafe { ALLOCATOR.alloc(layout) }
                    } else {
                        // SAFETY: the layout has a nonzero size.
                        unsafe { ALLOCATOR.alloc_zeroed(layout) }
                    };
                    assert!(!p.is_null(), "size {size}, align {align}");
                    assert_eq!(p as usize % align, 0, "size {size}, align {align}");
                    if i % 2 == 1 {
                        // SAFETY: the block holds `size` bytes.
                        assert!(unsafe { std::slice::from_raw_parts(p, size) }.iter().all(|&b| b == 0));
                    }
                    // SAFETY: the block holds `size` bytes.
                    unsafe { std::ptr::write_bytes(p, (i % 251) as u8, size) };
                    p
                })
                .collect();
            for (i, p) in blocks.into_iter().enumerate() {
                let grown = size * 3 + 5;
                // SAFETY: `p` came from `alloc` with `layout`; the new size is nonzero.
                let q = unsafe { ALLOCATOR.realloc(p, layout, grown) };
                assert!(!q.is_null());
                assert_eq!(q as usize % align, 0, "grown: size {size}, align {align}");
                // SAFETY: the first `size` bytes were kept.
                assert!(unsafe { std::slice::from_raw_parts(q, size) }.iter().all(|&b| b == (i % 251) as u8));
                let grown_layout = Layout::from_size_align(grown, align).expect("a valid layout");
                // SAFETY: `q` came from `realloc` with this size and alignment.
                unsafe { ALLOCATOR.dealloc(q, grown_layout) };
            }
        }
    }
}

/// What the workspace allocates most: strings and vectors, grown and dropped as usual.
#[test]
fn collections_work_on_it() {
    let words: Vec<String> = (0..100_000).map(|i| format!("scope.{i}.Read.All")).collect();
    let total: usize = words.iter().map(String::len).sum();
    let joined = words.join(",");
    assert_eq!(joined.len(), total + words.len() - 1);
    assert!(joined.starts_with("scope.0.Read.All,scope.1.Read.All"));
}
