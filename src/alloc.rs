//! The global allocator's tuning around start-up.
//!
//! Start-up parses every manifest and builds every index at once, freeing as much as it keeps
//! along the way. mimalloc (the `claw` binary's allocator, feature `mimalloc`) holds freed
//! pages for a purge delay (1 s by default) before giving them back to the OS, so on 100,000
//! resources that garbage stacks up under the peak RSS: start-up returns freed pages at once,
//! and the default delay, which keeps hot pages for the request path, comes back after it.

// The allocator crate, linked in for the symbols below even where it is not the global allocator.
#[cfg(feature = "mimalloc")]
use mimalloc as _;

/// mimalloc's `mi_option_purge_delay` (index in `mi_option_t`, mimalloc v3).
#[cfg(feature = "mimalloc")]
const MI_OPTION_PURGE_DELAY: std::os::raw::c_int = 15;

#[cfg(feature = "mimalloc")]
extern "C" {
    fn mi_option_get(option: std::os::raw::c_int) -> std::os::raw::c_long;
    fn mi_option_set(option: std::os::raw::c_int, value: std::os::raw::c_long);
}

/// Servers started in this process that hold [`purge_at_once`] (tests start several at once):
/// the first sets the purge delay to zero, the last restores it.
#[cfg(feature = "mimalloc")]
static HOLDERS: std::sync::Mutex<(usize, std::os::raw::c_long)> = std::sync::Mutex::new((0, 0));

/// Makes freed memory go back to the OS at once until the returned guard is dropped (then,
/// once no other guard is held, the purge delay in force before is restored). Without
/// mimalloc it does nothing.
pub fn purge_at_once() -> PurgeGuard {
    #[cfg(feature = "mimalloc")]
    {
        let mut holders = HOLDERS.lock().unwrap_or_else(|e| e.into_inner());
        if holders.0 == 0 {
            // SAFETY: mimalloc's option setters are plain stores into its option table, safe
            // from any thread; the symbols are linked in with the allocator.
            holders.1 = unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) };
            unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
        }
        holders.0 += 1;
    }
    PurgeGuard { _private: () }
}

/// Restores the purge delay when the last one is dropped (see [`purge_at_once`]).
pub struct PurgeGuard {
    _private: (),
}

impl Drop for PurgeGuard {
    fn drop(&mut self) {
        #[cfg(feature = "mimalloc")]
        {
            let mut holders = HOLDERS.lock().unwrap_or_else(|e| e.into_inner());
            holders.0 = holders.0.saturating_sub(1);
            if holders.0 == 0 {
                // SAFETY: as in `purge_at_once`.
                unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, holders.1) };
            }
        }
    }
}

#[cfg(all(test, feature = "mimalloc"))]
mod tests {
    use super::*;

    #[test]
    fn the_delay_comes_back_when_the_last_overlapping_guard_is_dropped() {
        // SAFETY: as in `purge_at_once`.
        let before = unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) };
        let first = purge_at_once();
        let second = purge_at_once();
        drop(first);
        assert_eq!(unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }, 0);
        drop(second);
        assert_eq!(unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) }, before);
    }
}
