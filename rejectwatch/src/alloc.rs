//! The global allocator: mimalloc, asked for plain blocks whenever a plain
//! block is aligned enough.
//!
//! The `mimalloc` crate sends every allocation through
//! `mi_malloc_aligned`, even a string's (alignment 1). In mimalloc 3 that
//! path takes a block only when the size's page already has a free one;
//! otherwise, for any size whose block is not a power of two (48, 80,
//! 112 … bytes), it over-allocates by the alignment and pads, a slow path
//! that also wastes memory. In `bench-detect` one allocation in ten took
//! it. Every mimalloc block is a multiple of 8 bytes from a 16-byte aligned
//! start, so for alignments up to 8 the plain entry points are exact.
//!
//! [`tune`] sets the one option the core's pattern of allocation wants
//! changed from mimalloc's defaults.

use std::{
    alloc::{GlobalAlloc, Layout},
    ffi::{c_int, c_long, c_void},
};

use libmimalloc_sys as mi;

/// What every mimalloc block is aligned to, whatever its size.
const BLOCK_ALIGN: usize = 8;

/// mimalloc 3's options by their place in its `mi_option_t`, which the
/// `libmimalloc-sys` bindings (written for mimalloc 2, whose places
/// differ) do not name. A test pins the places by the defaults of the
/// options on either side.
mod option {
    use std::ffi::c_int;

    pub const PAGE_RECLAIM_ON_FREE: c_int = 35;
    // Its neighbours, for the test.
    #[cfg(test)]
    pub const GENERIC_COLLECT: c_int = 34;
    #[cfg(test)]
    pub const PAGE_FULL_RETAIN: c_int = 36;
    #[cfg(test)]
    pub const PAGE_MAX_CANDIDATES: c_int = 37;
}

unsafe extern "C" {
    #[cfg(test)]
    fn mi_option_get(option: c_int) -> c_long;
    fn mi_option_set_default(option: c_int, value: c_long);
}

/// Once the process has run a while, the core frees, one at a time, blocks
/// that live long (an actor's lists and texts, as they grow or go) among
/// the short-lived ones of every exchange. mimalloc 3 sets a full page of
/// blocks aside, and by default takes it back on the first such free into
/// it; the next allocation fills it again, and it is set aside again: a
/// page moved back and forth for single blocks, ~170 instructions an
/// exchange of `bench-detect`'s mix once its clients are a few dozen
/// requests old (9 882 -> 9 709 over 3 M exchanges; nothing at 300 000).
/// Not taking pages back on a free leaves their free blocks to later
/// allocations, which look for such pages anyway; the memory per tracked
/// client is unchanged (247 bytes). A default: `MIMALLOC_PAGE_RECLAIM_ON_FREE`
/// in the environment still decides. Call at the start of `main`.
pub fn tune() {
    // SAFETY: sets an option's value by its index, which mimalloc checks
    // against its table; safe at any time.
    unsafe { mi_option_set_default(option::PAGE_RECLAIM_ON_FREE, -1) }
}

pub struct Mimalloc;

// SAFETY: each call is passed to mimalloc, plain when the alignment asked
// for is one every block has, aligned otherwise; `dealloc` and `realloc`
// take either kind (mimalloc frees any block with `mi_free`).
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe {
            if layout.align() <= BLOCK_ALIGN {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe {
            if layout.align() <= BLOCK_ALIGN {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        unsafe {
            if layout.align() <= BLOCK_ALIGN {
                mi::mi_realloc(ptr.cast(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
            }
        }
    }
}

/// The same allocator, counting the allocations each thread makes: the
/// benches report allocations per exchange, a figure that, unlike time on a
/// shared VM, does not move between runs. Only the benches enable it.
#[cfg(feature = "alloc-count")]
pub mod count {
    use std::{
        alloc::{GlobalAlloc, Layout},
        cell::Cell,
    };

    use super::Mimalloc;

    thread_local! {
        // Const-initialised and without a destructor, so the allocator may
        // touch it at any point of a thread's life.
        static COUNT: Cell<u64> = const { Cell::new(0) };
    }

    pub struct Counting;

    fn count() {
        let _ = COUNT.try_with(|c| c.set(c.get() + 1));
    }

    /// Allocations (growing reallocations included) made by this thread.
    pub fn allocations() -> u64 {
        COUNT.try_with(Cell::get).unwrap_or(0)
    }

    // SAFETY: every call is passed straight to [`Mimalloc`].
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            count();
            unsafe { Mimalloc.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            count();
            unsafe { Mimalloc.alloc_zeroed(layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            count();
            unsafe { Mimalloc.realloc(ptr, layout, new_size) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { Mimalloc.dealloc(ptr, layout) }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::alloc::{GlobalAlloc, Layout};

    use super::{Mimalloc, mi_option_get, option};

    #[test]
    fn the_options_are_where_this_mimalloc_keeps_them() {
        // The neighbours' defaults (mimalloc 3's options.c): were the enum
        // renumbered, `tune` would set some other option.
        let get = |o| unsafe { mi_option_get(o) };
        assert_eq!(
            (get(option::GENERIC_COLLECT), get(option::PAGE_FULL_RETAIN), get(option::PAGE_MAX_CANDIDATES)),
            (10_000, 2, 4)
        );
        super::tune();
        assert_eq!(get(option::PAGE_RECLAIM_ON_FREE), -1);
    }

    #[test]
    fn blocks_have_the_alignment_asked_for() {
        // Sizes across mimalloc's small bins, each alignment up to a page;
        // written to the end (under Miri or a sanitizer, a short block shows).
        let mut held = Vec::new();
        for size in (1..=600).step_by(7).chain([4096, 70_000]) {
            for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
                let layout = Layout::from_size_align(size, align).expect("layout");
                unsafe {
                    let p = if size % 2 == 0 { Mimalloc.alloc_zeroed(layout) } else { Mimalloc.alloc(layout) };
                    assert!(!p.is_null(), "{size} {align}");
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    if size % 2 == 0 {
                        assert!(std::slice::from_raw_parts(p, size).iter().all(|b| *b == 0), "{size} {align}");
                    }
                    p.add(size - 1).write(0xa5);
                    let q = Mimalloc.realloc(p, layout, size * 3);
                    assert_eq!(q as usize % align, 0, "realloc: size {size} align {align}");
                    assert_eq!(q.add(size - 1).read(), 0xa5, "realloc kept the contents");
                    held.push((q, Layout::from_size_align(size * 3, align).expect("layout")));
                }
            }
        }
        for (p, layout) in held {
            unsafe { Mimalloc.dealloc(p, layout) };
        }
    }
}
