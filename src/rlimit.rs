//! The open-file limit: every connection holds a descriptor, so both the
//! server and the load generator raise it before they begin.

/// Raises the soft limit on open files to the hard limit, so that 10,000
/// and more connections can be open; returns the limit now in force (0 if
/// it cannot be read).
#[cfg(unix)]
pub fn raise_nofile() -> u64 {
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        let mut limit = std::mem::zeroed::<libc::rlimit>();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur;
            }
        }
        limit.rlim_cur
    }
}

#[cfg(not(unix))]
pub fn raise_nofile() -> u64 {
    0
}
