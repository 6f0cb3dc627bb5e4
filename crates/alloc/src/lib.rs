//! The global allocator of keyway's binaries (`keyway`, `xtask`): mimalloc, called the way
//! its fast paths expect.
//!
//! Loading a catalogue makes and frees hundreds of thousands of small strings and maps, and
//! mimalloc does that in a fraction of the system allocator's time (`docs/startup-bench.md`).
//! The `mimalloc` crate's `GlobalAlloc` passes every request to `mi_malloc_aligned`, whose fast
//! path only holds while a free block of the size class is at hand; otherwise, for a size
//! class that is not a power of two (24, 40, 48 bytes: most strings and small structs), it
//! over-allocates into the next class, and keeps doing so. [`Allocator`] calls plain
//! `mi_malloc` whenever plain blocks are aligned enough: 2% fewer instructions for a whole
//! catalogue load (callgrind).
//!
//! ```no_run
//! #[global_allocator]
//! static ALLOCATOR: keyway_alloc::Allocator = keyway_alloc::Allocator;
//! ```

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// mimalloc as a Rust global allocator.
#[derive(Debug, Clone, Copy, Default)]
pub struct Allocator;

/// The alignment every mimalloc block has: block sizes are multiples of a machine word, and
/// pages start aligned to more than that.
const PLAIN_ALIGN: usize = std::mem::size_of::<usize>();

/// Whether plain `mi_malloc` satisfies `align` (a power of two, as `Layout` guarantees).
fn plain(align: usize) -> bool {
    align <= PLAIN_ALIGN
}

// SAFETY: every method hands mimalloc a request it accepts and returns what mimalloc returned
// (null on failure, as `GlobalAlloc` wants): blocks of at least the size asked for, aligned as
// asked (plain blocks are word-aligned; larger alignments go through the aligned calls).
// Blocks are freed and resized only through mimalloc, which finds a block's page from its
// address, so the plain and aligned calls may be mixed.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if plain(layout.align()) {
            // SAFETY: any size is accepted.
            unsafe { mi::mi_malloc(layout.size()).cast() }
        } else {
            // SAFETY: the alignment is a power of two.
            unsafe { mi::mi_malloc_aligned(layout.size(), layout.align()).cast() }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if plain(layout.align()) {
            // SAFETY: as in `alloc`.
            unsafe { mi::mi_zalloc(layout.size()).cast() }
        } else {
            // SAFETY: as in `alloc`.
            unsafe { mi::mi_zalloc_aligned(layout.size(), layout.align()).cast() }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (the caller's promise), so from mimalloc.
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if plain(layout.align()) {
            // SAFETY: `ptr` came from mimalloc; the alignment it needs is plain.
            unsafe { mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast() }
        } else {
            // SAFETY: `ptr` came from mimalloc; the alignment is a power of two.
            unsafe { mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast() }
        }
    }
}
