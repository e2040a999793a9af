//! A memory budget shared by many connections: the bytes they may hold
//! between them in messages still arriving and (in `switchboard-net`)
//! queued to be sent, so that no number of connections can exhaust
//! memory, however each stays within its own limits.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Bytes a holding may have before it draws on the budget: small messages
/// and short queues, the great majority, cost no shared counter.
pub const FREE_BYTES: usize = 64 << 10;

/// A budget of bytes; clones share it.
#[derive(Clone)]
pub struct MemoryBudget {
    inner: Arc<Inner>,
}

struct Inner {
    limit: usize,
    used: AtomicUsize,
    peak: AtomicUsize,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> MemoryBudget {
        MemoryBudget {
            inner: Arc::new(Inner {
                limit,
                used: AtomicUsize::new(0),
                peak: AtomicUsize::new(0),
            }),
        }
    }

    /// The bytes in use now.
    pub fn used(&self) -> usize {
        self.inner.used.load(Ordering::Relaxed)
    }

    /// The most bytes in use at once so far.
    pub fn peak(&self) -> usize {
        self.inner.peak.load(Ordering::Relaxed)
    }

    /// The budget's size.
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// Takes `bytes` if they fit; false (and nothing taken) if not.
    pub fn try_reserve(&self, bytes: usize) -> bool {
        let reserved = self
            .inner
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes)
                    .filter(|&sum| sum <= self.inner.limit)
            });
        match reserved {
            Ok(before) => {
                self.inner.peak.fetch_max(before + bytes, Ordering::Relaxed);
                true
            }
            Err(_) => false,
        }
    }

    /// Gives back bytes taken with [`MemoryBudget::try_reserve`].
    pub fn release(&self, bytes: usize) {
        self.inner.used.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// Two budgets are equal when they are the same shared budget.
impl PartialEq for MemoryBudget {
    fn eq(&self, other: &MemoryBudget) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for MemoryBudget {}

impl fmt::Debug for MemoryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemoryBudget({} of {})", self.used(), self.limit())
    }
}

/// What one message (or one connection's queue) holds of a budget, given
/// back when it shrinks or is dropped.
#[derive(Debug, Default)]
pub struct Holding {
    budget: Option<MemoryBudget>,
    bytes: usize,
}

impl Holding {
    /// A holding of nothing, on `budget` (or on none: never refused).
    pub fn new(budget: Option<&MemoryBudget>) -> Holding {
        Holding {
            budget: budget.cloned(),
            bytes: 0,
        }
    }

    /// Makes the holding `total` bytes, less the free allowance; false if
    /// the budget cannot cover it.
    pub fn grow_to(&mut self, total: usize) -> bool {
        let Some(budget) = &self.budget else {
            return true;
        };
        let wanted = total.saturating_sub(FREE_BYTES);
        if wanted <= self.bytes {
            return true;
        }
        if !budget.try_reserve(wanted - self.bytes) {
            return false;
        }
        self.bytes = wanted;
        true
    }

    /// Gives back what is held beyond `total` bytes (less the allowance).
    pub fn shrink_to(&mut self, total: usize) {
        let Some(budget) = &self.budget else {
            return;
        };
        let wanted = total.saturating_sub(FREE_BYTES);
        if wanted < self.bytes {
            budget.release(self.bytes - wanted);
            self.bytes = wanted;
        }
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        if let (Some(budget), true) = (&self.budget, self.bytes > 0) {
            budget.release(self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holdings_draw_beyond_the_free_bytes_and_give_back_on_drop() {
        let budget = MemoryBudget::new(100_000);
        let mut a = Holding::new(Some(&budget));
        assert!(a.grow_to(FREE_BYTES));
        assert_eq!(budget.used(), 0, "within the free allowance");
        assert!(a.grow_to(FREE_BYTES + 60_000));
        assert_eq!(budget.used(), 60_000);
        let mut b = Holding::new(Some(&budget));
        assert!(!b.grow_to(FREE_BYTES + 50_000), "only 40,000 are left");
        assert_eq!(budget.used(), 60_000, "a refusal takes nothing");
        drop(a);
        assert_eq!(budget.used(), 0);
        assert!(b.grow_to(FREE_BYTES + 50_000));
        b.shrink_to(FREE_BYTES + 10_000);
        assert_eq!(budget.used(), 10_000);
        let mut unlimited = Holding::new(None);
        assert!(unlimited.grow_to(usize::MAX));
    }
}
