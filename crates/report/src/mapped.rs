//! Plain log files read through a memory map: the parser threads read the page cache
//! directly, which saves the reader thread's copy of every byte (a third of the CPU time
//! on a big log).
//!
//! A map has one danger: if the file shrinks while it is read (logrotate's `copytruncate`
//! on the live `mail.log`), touching a page past the new end raises SIGBUS, which would
//! kill the process. A SIGBUS handler covers that: for an address inside one of our maps it
//! puts a zero page there and marks the map as shrunk, so the run goes on and reports the
//! file as cut; any other SIGBUS gets the default action as before.

#![allow(unsafe_code)] // mmap, madvise and the SIGBUS handler are system calls with no safe wrapper

use std::fs::File;
use std::ops::Deref;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// How many maps can be guarded at once; more are read without a map.
const SLOTS: usize = 64;

struct Slot {
    start: AtomicUsize,
    len: AtomicUsize,
    shrunk: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)] // used only to initialise the array below
const EMPTY: Slot = Slot {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    shrunk: AtomicBool::new(false),
};
static SLOTS_IN_USE: [Slot; SLOTS] = [EMPTY; SLOTS];
static PAGE: AtomicUsize = AtomicUsize::new(4096);
static INSTALL: Once = Once::new();
static INSTALLED: AtomicBool = AtomicBool::new(false);
/// The SIGBUS action before ours, for faults outside our maps.
static PREV_HANDLER: AtomicUsize = AtomicUsize::new(libc::SIG_DFL);
static PREV_SIGINFO: AtomicBool = AtomicBool::new(false);

/// The handler runs in signal context: it only reads atomics and calls mmap/sigaction,
/// which are plain system calls on Linux.
extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    for slot in &SLOTS_IN_USE {
        let start = slot.start.load(Ordering::Acquire);
        let len = slot.len.load(Ordering::Acquire);
        // `start` is usize::MAX while a slot is being filled in.
        if start != 0 && start != usize::MAX && addr.wrapping_sub(start) < len {
            let page = addr & !(PAGE.load(Ordering::Relaxed) - 1);
            // SAFETY: the page lies inside a read-only map this module owns; replacing it
            // with zeros changes what the parser reads, never memory anything else uses.
            let p = unsafe {
                libc::mmap(
                    page as *mut libc::c_void,
                    PAGE.load(Ordering::Relaxed),
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if p != libc::MAP_FAILED {
                slot.shrunk.store(true, Ordering::Release);
                return;
            }
        }
    }
    // Not ours: hand it to the handler that was there before (Rust's own, which reports a
    // stack overflow), or fall back to the default action: the faulting access runs again
    // and ends the process as it would have without this handler.
    let prev = PREV_HANDLER.load(Ordering::Acquire);
    if prev == libc::SIG_DFL || prev == libc::SIG_IGN {
        // SAFETY: a zeroed sigaction with SIG_DFL is a valid argument.
        unsafe {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(libc::SIGBUS, &dfl, std::ptr::null_mut());
        }
    } else if PREV_SIGINFO.load(Ordering::Acquire) {
        // SAFETY: the previous action was installed with SA_SIGINFO, so it has this signature.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(prev) };
        f(sig, info, ctx);
    } else {
        // SAFETY: without SA_SIGINFO a handler takes the signal number alone.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(prev) };
        f(sig);
    }
}

fn install() -> bool {
    INSTALL.call_once(|| {
        // SAFETY: sysconf has no preconditions; sigaction gets a fully initialised struct.
        unsafe {
            let page = libc::sysconf(libc::_SC_PAGESIZE);
            if page > 0 {
                PAGE.store(page as usize, Ordering::Relaxed);
            }
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut old) != 0 {
                return;
            }
            PREV_HANDLER.store(old.sa_sigaction, Ordering::Release);
            PREV_SIGINFO.store(old.sa_flags & libc::SA_SIGINFO != 0, Ordering::Release);
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_sigbus as *const () as usize;
            act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut act.sa_mask);
            if libc::sigaction(libc::SIGBUS, &act, std::ptr::null_mut()) == 0 {
                INSTALLED.store(true, Ordering::Release);
            }
        }
    });
    INSTALLED.load(Ordering::Acquire)
}

/// A read-only map of a whole file, guarded against the file shrinking under it.
pub struct Mapped {
    map: memmap2::Mmap,
    slot: usize,
    /// Where the last [`Mapped::release_through`] stopped.
    released: AtomicUsize,
}

impl Mapped {
    /// Maps `file`, or `None` when it cannot be guarded (empty file, no handler, all slots
    /// taken, map refused): the caller reads it the ordinary way then.
    pub fn new(file: &File) -> Option<Mapped> {
        let len = file.metadata().ok()?.len();
        if len == 0 || !file.metadata().ok()?.is_file() || !install() {
            return None;
        }
        // SAFETY: a shrinking file is what makes a map unsafe to read; the SIGBUS guard
        // registered below turns that into zero pages and a flag instead of a crash.
        let map = unsafe { memmap2::Mmap::map(file) }.ok()?;
        let _ = map.advise(memmap2::Advice::Sequential);
        let slot = SLOTS_IN_USE.iter().position(|s| {
            s.start
                .compare_exchange(0, usize::MAX, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        })?;
        let s = &SLOTS_IN_USE[slot];
        s.shrunk.store(false, Ordering::Release);
        s.len.store(map.len(), Ordering::Release);
        s.start.store(map.as_ptr() as usize, Ordering::Release);
        Some(Mapped {
            map,
            slot,
            released: AtomicUsize::new(0),
        })
    }

    /// Drops the pages before `end` from this process's page tables, once every chunk before
    /// `end` is parsed (call in file order); they stay in the page cache. Without it the
    /// process's resident size would grow to the file's.
    ///
    /// A fault maps its neighbours too (the kernel's fault-around, 64 KiB by default), so
    /// parsing the chunk at `end` can map again a few pages just before it: each call
    /// therefore starts that far before where the last one stopped.
    pub fn release_through(&self, end: usize) {
        const FAULT_AROUND: usize = 256 << 10;
        let page = PAGE.load(Ordering::Relaxed);
        let end = if end >= self.map.len() {
            self.map.len()
        } else {
            end & !(page - 1)
        };
        let from = self
            .released
            .load(Ordering::Relaxed)
            .saturating_sub(FAULT_AROUND);
        if end > from {
            // SAFETY: MADV_DONTNEED on a shared read-only file map only unmaps pages; the
            // next access reads the same bytes from the page cache (nothing is discarded).
            let _ = unsafe {
                self.map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    from,
                    end - from,
                )
            };
            self.released.store(end, Ordering::Relaxed);
        }
    }

    /// Whether the file shrank while mapped: bytes past its new end read as zeros.
    pub fn shrunk(&self) -> bool {
        SLOTS_IN_USE[self.slot].shrunk.load(Ordering::Acquire)
    }
}

impl Deref for Mapped {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        let s = &SLOTS_IN_USE[self.slot];
        s.len.store(0, Ordering::Release);
        s.start.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The resident size of the map starting at `addr`, from /proc/self/smaps, in KiB.
    fn resident_kib(addr: usize) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let head = format!("{addr:x}-");
        let vma = smaps
            .split_once(&format!("\n{head}"))
            .map(|(_, rest)| rest)
            .or_else(|| smaps.strip_prefix(&head))
            .expect("our map is listed");
        let rss = vma.lines().find(|l| l.starts_with("Rss:")).unwrap();
        rss.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn released_pages_leave_the_resident_set() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mail.log");
        std::fs::write(&p, vec![b'x'; 8 << 20]).unwrap();
        let m = Mapped::new(&File::open(&p).unwrap()).expect("mapped");
        let addr = m.as_ptr() as usize;
        let step = 1 << 20;
        let mut sum = 0u64;
        for start in (0..m.len()).step_by(step) {
            sum += m[start..start + step]
                .iter()
                .map(|&b| u64::from(b))
                .sum::<u64>();
            if start >= 2 * step {
                m.release_through(start - step);
            }
        }
        assert_eq!(sum, u64::from(b'x') * (8 << 20));
        // Only the last chunks (and the overlap kept for fault-around) are still mapped.
        let rss = resident_kib(addr);
        assert!(rss <= 3 * 1024 + 256, "{rss} KiB resident");
        m.release_through(m.len());
        assert_eq!(resident_kib(addr), 0);
    }

    #[test]
    fn a_file_cut_under_the_map_reads_as_zeros_and_is_flagged() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mail.log");
        let page = PAGE.load(Ordering::Relaxed).max(4096);
        std::fs::write(&p, vec![b'x'; page * 3]).unwrap();
        let f = File::open(&p).unwrap();
        let m = Mapped::new(&f).expect("mapped");
        assert_eq!(m[page * 2], b'x');
        assert!(!m.shrunk());
        // logrotate's copytruncate, while the map is read.
        File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(page as u64)
            .unwrap();
        assert_eq!(m[0], b'x');
        let past_end = std::hint::black_box(&m[page * 2 + 10]);
        assert_eq!(*past_end, 0);
        assert!(m.shrunk());
    }
}
