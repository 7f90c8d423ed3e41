//! What the static (musl) build replaces in the C library, for speed.
//!
//! - The allocator: dlmalloc (musl's own returns every freed group to the
//!   kernel at once, and a scrape then pays for mmap/munmap and page faults
//!   again and again), behind std's futex mutex. The dlmalloc crate's own
//!   global wrapper locks a pthread mutex, and musl's `pthread_mutex_unlock`
//!   took about 45 instructions a call, a twentieth of a scrape's.
//! - `memcmp` and `bcmp`: musl's compare byte by byte; every string key
//!   looked up in a hash map (netstat, vmstat and meminfo fields, metric
//!   names) went through them, another twentieth of a scrape. These compare
//!   eight bytes at a time. Statically linked, ours are the only ones: the
//!   linker takes a C library member only for a symbol still undefined.

#[cfg(target_env = "musl")]
pub use musl::Allocator;

#[cfg(target_env = "musl")]
mod musl {
    use std::alloc::{GlobalAlloc, Layout};
    use std::sync::Mutex;

    pub struct Allocator;

    struct Heap(dlmalloc::Dlmalloc);

    // SAFETY: the heap is only ever used under the mutex below.
    unsafe impl Send for Heap {}

    static HEAP: Mutex<Heap> = Mutex::new(Heap(dlmalloc::Dlmalloc::new()));

    fn heap() -> std::sync::MutexGuard<'static, Heap> {
        // Nothing panics while holding it; a poisoned heap is still whole.
        HEAP.lock().unwrap_or_else(|e| e.into_inner())
    }

    // SAFETY: dlmalloc upholds GlobalAlloc's contract; the mutex serialises it.
    // Not inlined: LTO would copy the lock into every allocation site (half
    // a MiB of code).
    unsafe impl GlobalAlloc for Allocator {
        #[inline(never)]
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            heap().0.malloc(layout.size(), layout.align())
        }

        #[inline(never)]
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            heap().0.free(ptr, layout.size(), layout.align())
        }

        #[inline(never)]
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            heap().0.calloc(layout.size(), layout.align())
        }

        #[inline(never)]
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            heap()
                .0
                .realloc(ptr, layout.size(), layout.align(), new_size)
        }
    }

    /// # Safety
    /// Both pointers must be valid for reads of `n` bytes.
    // Not inlined: LTO would copy the loop into every string compare.
    #[inline(never)]
    #[no_mangle]
    pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
        super::compare(a, b, n)
    }

    /// # Safety
    /// Both pointers must be valid for reads of `n` bytes.
    #[inline(never)]
    #[no_mangle]
    pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
        i32::from(!super::equal(a, b, n))
    }
}

/// `memcmp`: the sign of the first difference of `a` and `b` over `n`
/// bytes, as unsigned bytes.
///
/// # Safety
/// Both pointers must be valid for reads of `n` bytes.
#[cfg(any(target_env = "musl", test))]
#[inline(always)]
unsafe fn compare(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i + 8 <= n {
        // Big-endian: the first differing byte decides, as in memcmp.
        let x = u64::from_be(std::ptr::read_unaligned(a.add(i).cast::<u64>()));
        let y = u64::from_be(std::ptr::read_unaligned(b.add(i).cast::<u64>()));
        if x != y {
            return if x < y { -1 } else { 1 };
        }
        i += 8;
    }
    while i < n {
        let (x, y) = (*a.add(i), *b.add(i));
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// `bcmp`: whether the `n` bytes at `a` and `b` are equal (what `==` on
/// slices and strings calls).
///
/// # Safety
/// Both pointers must be valid for reads of `n` bytes.
#[cfg(any(target_env = "musl", test))]
#[inline(always)]
unsafe fn equal(a: *const u8, b: *const u8, n: usize) -> bool {
    let mut i = 0;
    while i + 8 <= n {
        if std::ptr::read_unaligned(a.add(i).cast::<u64>())
            != std::ptr::read_unaligned(b.add(i).cast::<u64>())
        {
            return false;
        }
        i += 8;
    }
    while i < n {
        if *a.add(i) != *b.add(i) {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_as_the_c_library_does() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b""),
            (b"a", b"b"),
            (b"abcdefgh", b"abcdefgh"),
            (b"abcdefghi", b"abcdefghj"),
            (b"abcdefgh\xff", b"abcdefgh\x01"),
            (b"\x01bcdefgh", b"\xffbcdefgh"),
            (b"node_netstat_Tcp_InSegs", b"node_netstat_Tcp_InSeGs"),
        ];
        for (a, b) in cases {
            let sign = |v: i32| v.signum();
            let want = a.cmp(b) as i32;
            // SAFETY: equal lengths, both valid.
            let (m, e) = unsafe {
                (
                    compare(a.as_ptr(), b.as_ptr(), a.len()),
                    equal(a.as_ptr(), b.as_ptr(), a.len()),
                )
            };
            assert_eq!(sign(m), want, "memcmp {a:?} {b:?}");
            assert_eq!(e, a == b, "bcmp {a:?} {b:?}");
        }
    }
}
