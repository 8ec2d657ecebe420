//! Memory a caller wants in the CPU caches soon (the next sample's row),
//! handed to a kernel that issues its prefetches while it works.

use std::cell::Cell;

use crate::sys;

/// Bytes per cache line: one prefetch each.
const LINE: usize = 64;

/// Lines to prefetch, and how many of them are issued so far. A shuffled
/// batch's next row is a DRAM miss, so the pipeline asks for it while the
/// current sample is processed. Issuing its lines all at once fills the
/// core's miss buffers and stalls the core on the prefetches themselves;
/// a kernel with a loop of its own spreads them out instead (the edge
/// copy's resampling issues a few per output row), and other paths issue
/// them all when they start reading. Whoever holds it last issues what is
/// left ([`Prefetch::issue_all`]).
///
/// Shared by reference between the caller and the kernel (the count is a
/// [`Cell`]), so that each issues only what the other has not.
#[derive(Debug, Default)]
pub(crate) struct Prefetch<'a> {
    bytes: &'a [u8],
    /// Bytes of `bytes` issued so far.
    issued: Cell<usize>,
}

impl<'a> Prefetch<'a> {
    /// The lines of `bytes`, none issued yet.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Prefetch {
            bytes,
            issued: Cell::new(0),
        }
    }

    /// Lines not issued yet.
    pub(crate) fn lines_left(&self) -> usize {
        (self.bytes.len() - self.issued.get()).div_ceil(LINE)
    }

    /// Issues up to `lines` of the lines left.
    #[inline]
    pub(crate) fn issue(&self, lines: usize) {
        let from = self.issued.get();
        let to = from
            .saturating_add(lines.saturating_mul(LINE))
            .min(self.bytes.len());
        sys::prefetch_lines(&self.bytes[from..to]);
        self.issued.set(to);
    }

    /// Issues every line left.
    pub(crate) fn issue_all(&self) {
        self.issue(usize::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_issued_once_in_portions() {
        let row = vec![0u8; 3000]; // 46.9 lines: the last one partial
        let next = Prefetch::new(&row);
        assert_eq!(next.lines_left(), 47);
        next.issue(2);
        assert_eq!(next.lines_left(), 45);
        // ⌈45 / 32⌉ = 2 per output row of a 32-row image covers them all.
        for _ in 0..32 {
            next.issue(45usize.div_ceil(32));
        }
        assert_eq!(next.lines_left(), 0);
        next.issue_all();
        assert_eq!(next.lines_left(), 0);
        let none = Prefetch::default();
        none.issue_all();
        assert_eq!(none.lines_left(), 0);
    }
}
