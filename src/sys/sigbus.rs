//! A file that shrinks under its map turns reads of the lost pages into
//! `SIGBUS`, which kills the process. This module turns that signal into
//! an error for npyflow's own maps.
//!
//! Every map npyflow creates registers its address range here
//! ([`MapGuard`]). A process-wide handler looks the faulting address up;
//! when it lies in a registered map it maps a page of zeros over the
//! faulting page (so the interrupted read completes with zeros instead of
//! faulting again), records the fault against the map and returns. The
//! reader checks [`MapGuard::faulted`] after each batch or chunk and
//! reports the file as changed; the zero page is never handed to the user.
//! A fault anywhere else goes to whatever handler was installed before ours,
//! or to the default action (the process dies, as it would have without
//! npyflow).
//!
//! Why a handler rather than reading every row with `pread`: the handler
//! costs nothing until a file actually changes (one relaxed load per
//! checked map per batch), while a `pread` per shuffled row costs a system
//! call per sample; on 32×32 images that is a large share of a sample's
//! few microseconds.
//!
//! The handler only touches atomics and calls `mmap` and `sigaction`, both
//! plain system calls that are safe to make from a signal handler on Linux.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Maps that can be registered at once. Beyond this, further maps are not
/// protected (a warning is logged once): a process holding thousands of
/// open arrays is unusual, and the table must be a fixed array because the
/// signal handler cannot take locks or allocate.
const SLOTS: usize = 4096;

/// `end` of a slot that is free.
const FREE: usize = 0;
/// `end` of a slot being set up or torn down: the handler skips it.
const BUSY: usize = usize::MAX;

struct Slot {
    start: AtomicUsize,
    end: AtomicUsize,
    faulted: AtomicBool,
}

static TABLE: [Slot; SLOTS] = [const {
    Slot {
        start: AtomicUsize::new(0),
        end: AtomicUsize::new(FREE),
        faulted: AtomicBool::new(false),
    }
}; SLOTS];
/// Slots ever handed out: the handler scans no further.
static USED: AtomicUsize = AtomicUsize::new(0);

/// The registration of one map's address range; dropping it unregisters the
/// range (drop it before the map is unmapped).
#[derive(Debug)]
pub(crate) struct MapGuard {
    slot: Option<usize>,
}

impl MapGuard {
    /// Registers `len` bytes at `ptr` (a live map), installing the handler
    /// on first use. A guard that could not register (table full, or a
    /// system without the handler) reports no faults.
    pub(crate) fn register(ptr: *const u8, len: usize) -> MapGuard {
        if len == 0 || !handler::install() {
            return MapGuard { slot: None };
        }
        let start = ptr as usize;
        let end = start.saturating_add(len);
        for (i, slot) in TABLE.iter().enumerate() {
            if slot
                .end
                .compare_exchange(FREE, BUSY, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                slot.faulted.store(false, Ordering::Relaxed);
                slot.start.store(start, Ordering::Relaxed);
                USED.fetch_max(i + 1, Ordering::AcqRel);
                slot.end.store(end, Ordering::Release);
                return MapGuard { slot: Some(i) };
            }
        }
        static WARNED: AtomicBool = AtomicBool::new(false);
        if !WARNED.swap(true, Ordering::Relaxed) {
            log::warn!(
                "more than {SLOTS} files mapped at once: further maps are not protected against files shrinking under them"
            );
        }
        MapGuard { slot: None }
    }

    /// Whether a read of this map has faulted on a page the file no longer
    /// has (the file shrank under the map). Once true, stays true: the
    /// faulted pages read as zeros for the life of the map.
    pub(crate) fn faulted(&self) -> bool {
        self.slot
            .is_some_and(|i| TABLE[i].faulted.load(Ordering::Acquire))
    }
}

impl Drop for MapGuard {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            let slot = &TABLE[i];
            slot.end.store(BUSY, Ordering::Release);
            slot.start.store(0, Ordering::Relaxed);
            slot.faulted.store(false, Ordering::Relaxed);
            slot.end.store(FREE, Ordering::Release);
        }
    }
}

/// Whether a fault at `addr` falls in a registered map; if so, marks it and
/// returns true. Called from the signal handler: atomics only.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn claim(addr: usize) -> bool {
    let used = USED.load(Ordering::Acquire).min(SLOTS);
    for slot in &TABLE[..used] {
        let end = slot.end.load(Ordering::Acquire);
        if end == FREE || end == BUSY {
            continue;
        }
        let start = slot.start.load(Ordering::Relaxed);
        if (start..end).contains(&addr) {
            slot.faulted.store(true, Ordering::Release);
            return true;
        }
    }
    false
}

#[cfg(target_os = "linux")]
mod handler {
    use std::cell::UnsafeCell;
    use std::mem::MaybeUninit;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::OnceLock;

    /// The action that was installed before ours: faults outside our maps go there.
    struct Previous(UnsafeCell<MaybeUninit<libc::sigaction>>);
    // SAFETY: written once inside `install`'s `OnceLock` initialiser, before
    // our handler (the only reader) is installed; never written again.
    unsafe impl Sync for Previous {}

    static PREVIOUS: Previous = Previous(UnsafeCell::new(MaybeUninit::uninit()));
    static PAGE: AtomicUsize = AtomicUsize::new(4096);

    /// Installs the handler once per process; false if the system refused.
    pub(super) fn install() -> bool {
        static INSTALLED: OnceLock<bool> = OnceLock::new();
        *INSTALLED.get_or_init(|| {
            PAGE.store(super::super::page_size(), Ordering::Relaxed);
            let mut action = MaybeUninit::<libc::sigaction>::zeroed();
            // SAFETY: `action` is zeroed (a valid empty sigaction: no
            // flags, empty mask) and then filled field by field;
            // `sigemptyset` initialises its mask. `sigaction` reads our
            // action and writes the previous one into `PREVIOUS`, which no
            // one reads until our handler is installed by this very call.
            unsafe {
                let a = action.as_mut_ptr();
                (*a).sa_sigaction = on_sigbus as *const () as usize;
                (*a).sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
                libc::sigemptyset(&mut (*a).sa_mask);
                libc::sigaction(libc::SIGBUS, a, (*PREVIOUS.0.get()).as_mut_ptr()) == 0
            }
        })
    }

    extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        // SAFETY: the kernel passes a valid siginfo for a SA_SIGINFO handler;
        // for SIGBUS `si_addr` is the faulting address.
        let addr = unsafe { (*info).si_addr() } as usize;
        if super::claim(addr) {
            let page = PAGE.load(Ordering::Relaxed);
            let base = addr & !(page - 1);
            // SAFETY: the page lies inside a registered, live read-only map
            // of ours (`claim` checked it), so replacing it with a private
            // zero page only changes what our own readers see there — zeros
            // instead of a fault — and the map's owner unmaps the whole range
            // later as usual. Nothing else lives at that address.
            let p = unsafe {
                libc::mmap(
                    base as *mut libc::c_void,
                    page,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if p != libc::MAP_FAILED {
                return;
            }
        }
        // SAFETY: `PREVIOUS` was initialised before this handler could run.
        let prev = unsafe { (*PREVIOUS.0.get()).assume_init_ref() };
        let handler = prev.sa_sigaction;
        if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
            // The default action: restore it and return, so that the faulting
            // instruction runs again and the process dies of the signal as it
            // would have without us (core dump included). An ignored SIGBUS
            // from a fault cannot be ignored either: the kernel kills.
            let mut dfl = MaybeUninit::<libc::sigaction>::zeroed();
            // SAFETY: a zeroed sigaction is SIG_DFL with an empty mask.
            unsafe {
                libc::sigaction(libc::SIGBUS, dfl.as_mut_ptr(), std::ptr::null_mut());
            }
        } else if prev.sa_flags & libc::SA_SIGINFO != 0 {
            // SAFETY: the previous handler was installed with SA_SIGINFO, so
            // it has this signature; we pass it what the kernel passed us.
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                unsafe { std::mem::transmute(handler) };
            f(sig, info, ctx);
        } else {
            // SAFETY: a handler installed without SA_SIGINFO takes the signal number.
            let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
            f(sig);
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod handler {
    /// No handler on this system: maps are not protected (the crate docs say so).
    pub(super) fn install() -> bool {
        false
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    /// A read past the end of a file that shrank under its map completes
    /// (reading zeros) and is recorded against that map only.
    #[test]
    fn a_read_past_a_truncation_is_recorded_not_fatal() {
        use std::io::Write;
        let page = super::super::page_size();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(&vec![7u8; 4 * page]).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        // `map_readonly` registers each map in its own slot.
        let map = super::super::map_readonly(&file).unwrap();
        let other = super::super::map_readonly(&file).unwrap();
        assert!(!map.faulted());
        assert_eq!(map[3 * page], 7);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(page as u64)
            .unwrap();
        // The first page is still the file's; the last is gone.
        assert_eq!(map[0], 7);
        let past = unsafe_free_read(&map, 3 * page + 5);
        assert_eq!(past, 0);
        assert!(map.faulted());
        assert!(!other.faulted());
        drop(map);
        // A new registration in the freed slot starts clean.
        let again = super::super::map_readonly(&file).unwrap();
        assert!(!again.faulted());
        drop(other);
    }

    /// A volatile read, so the compiler cannot assume the map's bytes.
    fn unsafe_free_read(map: &[u8], i: usize) -> u8 {
        std::hint::black_box(map)[std::hint::black_box(i)]
    }
}
