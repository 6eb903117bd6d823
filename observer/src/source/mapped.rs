//! A capture file read in place: mapped into memory instead of copied out of the page cache
//! by `read(2)`, which is the larger part of reading a cached capture (the records' bytes are
//! then touched only where a header or a parsed payload lies).
//!
//! A mapped file that another program truncates while it is being read would kill the process
//! with `SIGBUS` on the first access past the new end. A handler installed once for the
//! process turns such a fault inside a mapping of this module into a page of zeros and marks
//! the mapping [`Mapped::shrank`]. The reader asks ([`Mapped::check`]) before it hands out each
//! record, so the input ends there with a clear error and nothing read before is lost; only
//! the record being read when the file shrank can have been handed out with zeros in place of
//! its lost bytes (its header was read whole, or the check would have stopped it). A page the
//! storage fails to deliver (an I/O error, which also raises `SIGBUS`) ends the input the same
//! way. A fault anywhere else goes to the action installed before ours, as if ours were not
//! there.
//!
//! Pages behind the reader are given back ([`Mapped::release_before`]) so that the process
//! holds only a few MiB of the file at a time, whatever its size.
//!
//! Every unsafe block here is one system call on the mapping this module owns, or a read of
//! it within its length.
#![allow(unsafe_code)]

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};

/// Mappings that can be open at once (one per input being read); a file opened when all are
/// taken is read with `read(2)` instead.
const SLOTS: usize = 8;

/// Bytes behind the reader kept mapped before they are given back in one call.
const RELEASE_STEP: usize = 2 << 20;

/// Bytes of the file mapped in one call ahead of the reader (see [`Mapped::check`]).
const POPULATE_CHUNK: usize = 1 << 20;

struct Slot {
    start: AtomicUsize,
    len: AtomicUsize,
    shrank: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)] // only used to initialise `REGIONS`
const FREE: Slot = Slot {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    shrank: AtomicBool::new(false),
};

static REGIONS: [Slot; SLOTS] = [FREE; SLOTS];
static PAGE: AtomicUsize = AtomicUsize::new(4096);
static INSTALL: Once = Once::new();
static INSTALLED: AtomicBool = AtomicBool::new(false);
/// The `SIGBUS` action before ours, for faults that are not ours.
static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();

/// A read-only, private mapping of a whole file.
pub(crate) struct Mapped {
    ptr: *const u8,
    len: usize,
    slot: usize,
    /// Offset below which the pages were given back.
    released: AtomicUsize,
    /// Where the pages mapped ahead of the reader end (see [`Mapped::check`]).
    populated: AtomicUsize,
}

// SAFETY: the mapping is read-only and owned by this value; moving it to another thread moves
// the only handle to it.
unsafe impl Send for Mapped {}
// SAFETY: shared, it is only read: its bytes through `bytes` (the file's pages, or zeros where
// the file lost them, see the module's text), `released` and `populated` atomically.
unsafe impl Sync for Mapped {}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    let page = PAGE.load(Ordering::Relaxed);
    for slot in &REGIONS {
        let start = slot.start.load(Ordering::Acquire);
        let len = slot.len.load(Ordering::Relaxed);
        if start == 0 || start == usize::MAX || addr < start || addr - start >= len {
            continue;
        }
        // A page of zeros where the file's page was: the access is retried and reads zeros.
        // SAFETY: the page lies inside a mapping this module owns; replacing it leaves the
        // rest of the process untouched. mmap is a plain system call, safe in a handler.
        let p = unsafe {
            libc::mmap(
                (addr & !(page - 1)) as *mut libc::c_void,
                page,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if p != libc::MAP_FAILED {
            slot.shrank.store(true, Ordering::Release);
            return;
        }
        break;
    }
    // Not ours: the action before ours takes it, as though we had never been installed. The
    // faulting access is retried on return and faults again under that action.
    // SAFETY: PREVIOUS was set before the handler was installed; calling or reinstating the
    // action found there is what the signal would have met without us.
    unsafe {
        let prev = PREVIOUS.get().copied().unwrap_or_else(|| {
            let mut d: libc::sigaction = std::mem::zeroed();
            d.sa_sigaction = libc::SIG_DFL;
            d
        });
        if prev.sa_flags & libc::SA_SIGINFO != 0
            && prev.sa_sigaction != libc::SIG_DFL
            && prev.sa_sigaction != libc::SIG_IGN
        {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                std::mem::transmute(prev.sa_sigaction);
            f(sig, info, ctx);
        } else {
            libc::sigaction(libc::SIGBUS, &prev, std::ptr::null_mut());
        }
    }
}

fn install() -> bool {
    INSTALL.call_once(|| {
        // SAFETY: plain libc calls; PREVIOUS is set before the handler that reads it is
        // installed.
        unsafe {
            let page = libc::sysconf(libc::_SC_PAGESIZE);
            if page > 0 {
                PAGE.store(page as usize, Ordering::Relaxed);
            }
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut old) != 0 {
                return;
            }
            let _ = PREVIOUS.set(old);
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigbus as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut()) == 0 {
                INSTALLED.store(true, Ordering::Release);
            }
        }
    });
    INSTALLED.load(Ordering::Acquire)
}

impl Mapped {
    /// Maps `file` (`len` bytes, its size now), or `None` when it cannot be (not a regular
    /// file, empty, no mapping slot free, or the system refuses): then it is read instead.
    pub(crate) fn new(file: &File, len: u64) -> Option<Mapped> {
        let len = usize::try_from(len).ok().filter(|&l| l > 0)?;
        if !install() {
            return None;
        }
        let slot = REGIONS.iter().position(|s| {
            s.start
                .compare_exchange(0, usize::MAX, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        })?;
        // SAFETY: a fresh read-only private mapping of a file this process opened.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        let r = &REGIONS[slot];
        if p == libc::MAP_FAILED {
            r.start.store(0, Ordering::Release);
            return None;
        }
        // SAFETY: advice on the mapping just made.
        unsafe { libc::madvise(p, len, libc::MADV_SEQUENTIAL) };
        r.shrank.store(false, Ordering::Relaxed);
        r.len.store(len, Ordering::Relaxed);
        r.start.store(p as usize, Ordering::Release);
        Some(Mapped {
            ptr: p as *const u8,
            len,
            slot,
            released: AtomicUsize::new(0),
            populated: AtomicUsize::new(0),
        })
    }

    /// The file's bytes (as long as it was when mapped).
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: `len` readable bytes at `ptr` for the life of `self`; a page the file lost
        // reads as zeros (see the module's documentation), never as a fault.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// Whether the file has shrunk under the mapping (another program truncated it): a read
    /// past its new end has then found zeros, which must not be used. The reader asks before
    /// it hands out a record whose bytes it has read up to `to`, and asks for what follows
    /// (the next record's header and the packet headers after it) to be brought into the
    /// CPU's cache meanwhile: the file's pages are in the page cache, not in the CPU's, and
    /// without a copy pulling them in every record header would wait on memory.
    ///
    /// It also maps the pages of the next [`POPULATE_CHUNK`] ahead of `to` in one call
    /// (`MADV_POPULATE_READ`), instead of a page fault each 16 pages as the walk reaches them.
    pub(crate) fn check(&self, to: usize) -> bool {
        let b = self.bytes();
        for line in [to, to + 64, to + 128] {
            if line < b.len() {
                prefetch(b, line);
            }
        }
        let populated = self.populated.load(Ordering::Relaxed);
        if to + POPULATE_CHUNK > populated {
            // From the reader's page when a record longer than a chunk took it past what was
            // mapped ahead (what lies behind it would be mapped again and never given back).
            let page = PAGE.load(Ordering::Relaxed);
            self.populate(populated.max(to.min(self.len) & !(page - 1)));
        }
        self.shrank()
    }

    /// Maps the pages from `from` (page-aligned) on, [`POPULATE_CHUNK`] bytes of them, as a
    /// read would (from the page cache, or from storage if they are not there). A kernel older
    /// than 5.14 does not know the advice: the pages are then mapped by faults, as before. A
    /// part of the file it lost is not populated and raises nothing; the read that reaches it
    /// finds out (see [`Mapped::shrank`]).
    #[cold]
    fn populate(&self, from: usize) {
        let n = POPULATE_CHUNK.min(self.len.saturating_sub(from));
        let mut next = from + n;
        if n > 0 {
            // SAFETY: a page-aligned range inside the mapping; the advice only maps pages the
            // file has, read-only, as a read would.
            let r = unsafe {
                libc::madvise(
                    self.ptr.add(from) as *mut libc::c_void,
                    n,
                    libc::MADV_POPULATE_READ,
                )
            };
            if r != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
                next = self.len;
            }
        } else {
            next = usize::MAX;
        }
        self.populated.store(next, Ordering::Relaxed);
    }

    /// Whether the file lost pages this mapping had (another program truncated it).
    pub(crate) fn shrank(&self) -> bool {
        REGIONS[self.slot].shrank.load(Ordering::Acquire)
    }

    /// Gives back the pages wholly before `offset` (they are read again from the file if ever
    /// touched), a few MiB at a time. Called by one thread at a time (the reader's).
    pub(crate) fn release_before(&self, offset: usize) {
        let page = PAGE.load(Ordering::Relaxed);
        let upto = offset.min(self.len) & !(page - 1);
        let released = self.released.load(Ordering::Relaxed);
        if upto < released + RELEASE_STEP {
            return;
        }
        // SAFETY: a page-aligned range inside the mapping. Its pages are only unmapped from
        // this process: the file's bytes stay what they were, read again from the page cache
        // if touched, so a slice another thread still holds reads the same bytes (the reader
        // gives back only what the frames' consumer has finished with, so that it need not).
        unsafe {
            libc::madvise(
                self.ptr.add(released) as *mut libc::c_void,
                upto - released,
                libc::MADV_DONTNEED,
            )
        };
        self.released.store(upto, Ordering::Relaxed);
    }
}

/// Asks for the cache line holding `b[at]`.
#[inline(always)]
fn prefetch(b: &[u8], at: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults; `at` is inside `b` anyway.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            b.as_ptr().add(at) as *const i8
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (b, at);
}

impl Drop for Mapped {
    fn drop(&mut self) {
        let r = &REGIONS[self.slot];
        r.start.store(usize::MAX, Ordering::Release);
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
        r.len.store(0, Ordering::Relaxed);
        r.start.store(0, Ordering::Release);
    }
}
