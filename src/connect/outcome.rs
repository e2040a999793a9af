//! How a run ends: the [`Outcome`] (the exit status), and the count of
//! incoming messages against `--wait`.

/// How a run ended, as the process exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Got what it waited for (or stdin ended and the connection closed cleanly).
    Done = 0,
    /// Could not connect.
    ConnectFailed = 1,
    /// `--timeout` passed first.
    TimedOut = 2,
    /// The server closed the connection before the wait was over.
    ServerClosed = 3,
}

/// Counts incoming messages against `--wait`.
pub(crate) struct WaitCounter {
    target: Option<u64>,
    seen: u64,
}

impl WaitCounter {
    pub fn new(target: Option<u64>) -> Self {
        WaitCounter { target, seen: 0 }
    }

    /// Counts one message; returns true when the wait is over.
    pub fn count(&mut self) -> bool {
        self.seen += 1;
        self.target.is_some_and(|target| self.seen >= target)
    }

    pub fn is_waiting(&self) -> bool {
        self.target.is_some_and(|target| self.seen < target)
    }

    pub fn done_immediately(&self) -> bool {
        self.target == Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_counter() {
        let mut counter = WaitCounter::new(Some(2));
        assert!(counter.is_waiting());
        assert!(!counter.count());
        assert!(counter.count());
        assert!(!counter.is_waiting());
        assert!(!WaitCounter::new(None).is_waiting());
    }
}
