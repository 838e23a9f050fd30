//! The global allocator: a bump arena for start-up in front of a general allocator.
//!
//! A probe run is mostly start-up: building the engine registers about 400 functions, each with a
//! few small allocations that live until the process exits. A general allocator spends ~200
//! instructions on each (TLSF's free-list search and split, plus its lock); bumping a pointer
//! takes a handful. So the first [`ARENA_BYTES`] of requests are served from a static arena
//! (`.bss`, so untouched pages cost nothing), and everything after that, as well as anything
//! too big for what is left, goes to the fallback allocator.
//!
//! Memory freed inside the arena is reused only when it was the most recent allocation (the
//! common case for a growing `Vec` or `String`, which also grows in place); anything else stays
//! used until exit. The arena is fixed in size, so the most this can waste is [`ARENA_BYTES`],
//! once.
//!
//! A process that lives on (`serve`) switches, first thing in `main`, to the system allocator
//! for everything after ([`Arena::for_a_long_life`]): the arena would slowly fill with dead
//! bytes, and TLSF, which never gives memory back, fragments under bursts of concurrent
//! connections (RSS crept up for hundreds of bursts in a soak; with musl's malloc it did not).

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::UnsafeCell,
    sync::atomic::{
        AtomicBool, AtomicUsize,
        Ordering::{AcqRel, Acquire, Relaxed, Release},
    },
};

/// More than twice what the largest of the benchmark's runs claims (read at exit): a `true`
/// script 129 KiB, the article's check 161 KiB, 20 checks with loops 189 KiB, a PostgreSQL ping
/// over TLS 218 KiB. A run that needs more goes on with the fallback.
pub const ARENA_BYTES: usize = 512 * 1024;

#[repr(C, align(4096))]
struct Aligned<const N: usize>([u8; N]);

/// A bump arena of `N` bytes in front of `F`.
pub struct Arena<const N: usize, F> {
    memory: UnsafeCell<Aligned<N>>,
    /// Offset of the first free byte in `memory`.
    top: AtomicUsize,
    fallback: F,
    /// Everything outside the arena goes to [`System`] instead of `fallback`.
    long_lived: AtomicBool,
    /// `fallback` has handed out memory (so it must keep taking it back).
    fallen_back: AtomicBool,
}

// SAFETY: `memory` is only handed out in disjoint ranges, each claimed by one atomic
// compare-exchange on `top`; the fallback is itself a `GlobalAlloc` (shared across threads).
//
// Orderings: bytes given back by one thread (a `Release` store of a lower `top`) may be claimed
// next by another (an `Acquire` compare-exchange that reads it), so the first thread's writes
// to those bytes happen before the second thread's; with `Relaxed` on both sides (as before)
// nothing in Rust's memory model ordered them, though x86-64 hardware does. A failed exchange
// only reads `top` to try again and needs no ordering.
unsafe impl<const N: usize, F: Sync> Sync for Arena<N, F> {}

impl<const N: usize, F> Arena<N, F> {
    pub const fn new(fallback: F) -> Self {
        Self {
            memory: UnsafeCell::new(Aligned([0; N])),
            top: AtomicUsize::new(0),
            fallback,
            long_lived: AtomicBool::new(false),
            fallen_back: AtomicBool::new(false),
        }
    }

    /// The arena's first byte. Pointers handed out are derived from it (`wrapping_add`), so
    /// they keep its provenance; addresses are compared only to tell whether a pointer is ours.
    fn base(&self) -> *mut u8 {
        self.memory.get().cast::<u8>()
    }

    /// Where `ptr` is in the arena, if it is.
    fn offset(&self, ptr: *mut u8) -> Option<usize> {
        (ptr as usize)
            .checked_sub(self.base() as usize)
            .filter(|&at| at < N)
    }

    /// Claim `layout` from the arena, or `None` if it does not fit in what is left.
    fn bump(&self, layout: Layout) -> Option<*mut u8> {
        // `base` is 4096-aligned, so aligning the offset aligns the address (for alignments up
        // to 4096; larger ones go to the fallback).
        if layout.align() > 4096 {
            return None;
        }
        let mut top = self.top.load(Relaxed);
        loop {
            let start = top.checked_add(layout.align() - 1)? & !(layout.align() - 1);
            let end = start.checked_add(layout.size())?;
            if end > N {
                return None;
            }
            match self.top.compare_exchange_weak(top, end, Acquire, Relaxed) {
                Ok(_) => return Some(self.base().wrapping_add(start)),
                Err(now) => top = now,
            }
        }
    }

    /// How many bytes of the arena are claimed (`usize::MAX` once sealed).
    pub fn used(&self) -> usize {
        self.top.load(Acquire)
    }

    /// Claim no more of the arena: every later allocation goes elsewhere. What is freed inside
    /// the arena is not reused (unless it was the last allocation), so a process that lives on
    /// would slowly fill it with dead bytes, its RSS creeping up by as much as [`ARENA_BYTES`].
    /// Nothing claimed so far moves; no byte is claimed or given back after this (`top` can
    /// never again match an allocation's end).
    pub fn seal(&self) {
        self.top.store(usize::MAX, Release);
    }

    /// For a process that lives on: seal the arena and send every later allocation to the system
    /// allocator, which reuses and returns what is freed. Call it while the process has one
    /// thread. Returns `false`, and keeps `fallback`, when `fallback` has already handed out
    /// memory (it must then keep taking it back): what the fallback holds is never freed to
    /// another allocator.
    pub fn for_a_long_life(&self) -> bool {
        self.seal();
        if self.fallen_back.load(Acquire) {
            return false;
        }
        self.long_lived.store(true, Release);
        true
    }
}

impl<const N: usize, F: GlobalAlloc> Arena<N, F> {
    /// Where memory outside the arena comes from.
    unsafe fn outside(&self, layout: Layout) -> *mut u8 {
        if self.long_lived.load(Relaxed) {
            return System.alloc(layout);
        }
        if !self.fallen_back.load(Relaxed) {
            self.fallen_back.store(true, Release);
        }
        self.fallback.alloc(layout)
    }

    unsafe fn free_outside(&self, ptr: *mut u8, layout: Layout) {
        if self.long_lived.load(Relaxed) {
            System.dealloc(ptr, layout)
        } else {
            self.fallback.dealloc(ptr, layout)
        }
    }
}

unsafe impl<const N: usize, F: GlobalAlloc> GlobalAlloc for Arena<N, F> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.bump(layout) {
            Some(ptr) => ptr,
            None => self.outside(layout),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match self.offset(ptr) {
            // The most recent allocation: give its bytes back. Anything else stays claimed.
            Some(at) => {
                let _ = self
                    .top
                    .compare_exchange(at + layout.size(), at, Release, Relaxed);
            }
            None => self.free_outside(ptr, layout),
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(at) = self.offset(ptr) else {
            return if self.long_lived.load(Relaxed) {
                System.realloc(ptr, layout, new_size)
            } else {
                self.fallback.realloc(ptr, layout, new_size)
            };
        };
        // The most recent allocation grows or shrinks in place while it fits.
        if let Some(end) = at.checked_add(new_size).filter(|&end| end <= N) {
            // AcqRel: growing claims bytes another thread may have given back (Acquire), and
            // shrinking gives bytes back for another thread to claim (Release).
            if self
                .top
                .compare_exchange(at + layout.size(), end, AcqRel, Relaxed)
                .is_ok()
            {
                return ptr;
            }
        }
        if new_size <= layout.size() {
            return ptr;
        }
        // SAFETY: the caller guarantees `new_size`, rounded up to `layout.align()`, does not
        // overflow `isize`, which is all `Layout` requires.
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        let new = self.alloc(new_layout);
        if !new.is_null() {
            std::ptr::copy_nonoverlapping(ptr, new, layout.size());
            self.dealloc(ptr, layout);
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    fn arena() -> Box<Arena<4096, System>> {
        Box::new(Arena::new(System))
    }

    #[test]
    fn allocations_are_aligned_disjoint_and_fall_back_when_full() {
        let a = arena();
        unsafe {
            let p1 = a.alloc(layout(3, 1));
            let p2 = a.alloc(layout(8, 8));
            let p3 = a.alloc(layout(100, 64));
            for (p, align) in [(p1, 1), (p2, 8), (p3, 64)] {
                assert!(a.offset(p).is_some());
                assert_eq!(p as usize % align, 0);
            }
            assert!(p1 as usize + 3 <= p2 as usize);
            assert!(p2 as usize + 8 <= p3 as usize);
            p1.write_bytes(1, 3);
            p2.write_bytes(2, 8);
            p3.write_bytes(3, 100);
            assert_eq!(*p1.add(2), 1);
            assert_eq!(*p2.add(7), 2);

            // Too big for what is left: the fallback, which frees it too.
            let big = a.alloc(layout(8192, 8));
            assert!(a.offset(big).is_none());
            big.write_bytes(4, 8192);
            a.dealloc(big, layout(8192, 8));
            // An alignment the arena cannot promise: the fallback.
            let wide = a.alloc(layout(16, 8192));
            assert!(a.offset(wide).is_none());
            assert_eq!(wide as usize % 8192, 0);
            a.dealloc(wide, layout(16, 8192));
        }
    }

    #[test]
    fn a_sealed_arena_hands_out_and_takes_back_nothing() {
        let a = arena();
        unsafe {
            let before = a.alloc(layout(64, 8));
            assert!(a.offset(before).is_some());
            before.write_bytes(7, 64);
            a.seal();
            let after = a.alloc(layout(16, 8));
            assert!(a.offset(after).is_none(), "after seal, the fallback");
            a.dealloc(after, layout(16, 8));
            // The arena's last allocation, freed or grown, stays where it was or moves out.
            let grown = a.realloc(before, layout(64, 8), 128);
            assert!(a.offset(grown).is_none());
            assert_eq!(*grown.add(63), 7);
            a.dealloc(grown, layout(128, 8));
            assert_eq!(a.used(), usize::MAX);
            let again = a.alloc(layout(8, 8));
            assert!(a.offset(again).is_none(), "nothing was given back");
            a.dealloc(again, layout(8, 8));
        }
    }

    /// A fallback that must never be used: it fails the test if it is.
    struct Never;
    unsafe impl GlobalAlloc for Never {
        unsafe fn alloc(&self, _: Layout) -> *mut u8 {
            panic!("the fallback was asked for memory after for_a_long_life")
        }
        unsafe fn dealloc(&self, _: *mut u8, _: Layout) {
            panic!("the fallback was given memory after for_a_long_life")
        }
    }

    #[test]
    fn a_long_life_goes_to_the_system_allocator() {
        let a = Box::new(Arena::<4096, Never>::new(Never));
        unsafe {
            let early = a.alloc(layout(64, 8));
            assert!(a.offset(early).is_some());
            early.write_bytes(9, 64);
            assert!(a.for_a_long_life());
            let p = a.alloc(layout(100, 8));
            assert!(a.offset(p).is_none());
            p.write_bytes(1, 100);
            let p = a.realloc(p, layout(100, 8), 5000);
            assert_eq!(*p.add(99), 1);
            a.dealloc(p, layout(5000, 8));
            // The arena's own allocation moves out when it grows, contents kept.
            let moved = a.realloc(early, layout(64, 8), 256);
            assert!(a.offset(moved).is_none());
            assert_eq!(*moved.add(63), 9);
            a.dealloc(moved, layout(256, 8));
        }
    }

    #[test]
    fn a_long_life_keeps_a_fallback_that_holds_memory() {
        let a = arena();
        unsafe {
            let big = a.alloc(layout(8192, 8));
            assert!(a.offset(big).is_none());
            assert!(
                !a.for_a_long_life(),
                "System must not free what the fallback gave"
            );
            a.dealloc(big, layout(8192, 8));
        }
    }

    #[test]
    fn the_last_allocation_is_given_back_and_grows_in_place() {
        let a = arena();
        unsafe {
            let keep = a.alloc(layout(16, 8));
            let used = a.used();
            let last = a.alloc(layout(32, 8));
            a.dealloc(last, layout(32, 8));
            assert_eq!(a.used(), used);

            let v = a.alloc(layout(16, 8));
            v.write_bytes(7, 16);
            let grown = a.realloc(v, layout(16, 8), 1000);
            assert_eq!(grown, v);
            assert_eq!(a.used(), used + 1000);
            let shrunk = a.realloc(grown, layout(1000, 8), 10);
            assert_eq!(shrunk, v);
            assert_eq!(a.used(), used + 10);
            assert_eq!(*shrunk.add(9), 7);

            // Not the last one any more: freeing leaves it claimed, growing moves it.
            let after = a.alloc(layout(8, 8));
            a.dealloc(keep, layout(16, 8));
            let before = a.used();
            let moved = a.realloc(shrunk, layout(10, 8), 100);
            assert_ne!(moved, shrunk);
            assert_eq!(*moved.add(9), 7);
            assert!(a.used() > before);
            // Growing past the arena moves to the fallback, contents kept.
            let out = a.realloc(moved, layout(100, 8), 10_000);
            assert!(a.offset(out).is_none());
            assert_eq!(*out.add(9), 7);
            a.dealloc(out, layout(10_000, 8));
            a.dealloc(after, layout(8, 8));
        }
    }

    #[test]
    fn bytes_given_back_by_one_thread_are_claimed_whole_by_another() {
        // Two threads take turns at the arena's top: each claims a block, fills it with its own
        // pattern, checks that nothing it wrote was lost or overwritten, and gives it back, so
        // the next claim (by either thread) reuses the same bytes. A give-back that released
        // more than its block, or a claim that overlapped a live one, shows as a wrong byte.
        let a: &'static Arena<{ 64 * 1024 }, System> = Box::leak(Box::new(Arena::new(System)));
        let handles: Vec<_> = (1..=2u8)
            .map(|t| {
                std::thread::spawn(move || unsafe {
                    for round in 0..20_000usize {
                        let size = 8 + (round % 7) * 8;
                        let p = a.alloc(layout(size, 8));
                        assert!(!p.is_null());
                        for i in 0..size {
                            p.add(i).write(t);
                        }
                        std::hint::spin_loop();
                        for i in 0..size {
                            assert_eq!(p.add(i).read(), t, "round {round}: byte {i} lost");
                        }
                        // Sometimes grow it in place first (realloc at the top).
                        let (p, size) = if round % 5 == 0 {
                            let q = a.realloc(p, layout(size, 8), size + 16);
                            for i in 0..size {
                                assert_eq!(q.add(i).read(), t, "round {round}: grown byte {i}");
                            }
                            (q, size + 16)
                        } else {
                            (p, size)
                        };
                        a.dealloc(p, layout(size, 8));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        // Everything was given back or stays claimed: never more than the arena holds.
        assert!(a.used() <= 64 * 1024);
    }

    #[test]
    fn threads_never_share_a_byte() {
        let a: &'static Arena<{ 64 * 1024 }, System> = Box::leak(Box::new(Arena::new(System)));
        let handles: Vec<_> = (0..4u8)
            .map(|t| {
                std::thread::spawn(move || unsafe {
                    let mut mine = Vec::new();
                    for _ in 0..1000 {
                        let p = a.alloc(layout(24, 8));
                        p.write_bytes(t, 24);
                        mine.push(p);
                    }
                    for p in mine {
                        for i in 0..24 {
                            assert_eq!(*p.add(i), t);
                        }
                        a.dealloc(p, layout(24, 8));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    }
}
