//! The one clock of every event: the kernel's CLOCK_REALTIME in nanoseconds.
//!
//! It is the clock of the capture's frame timestamps (SO_TIMESTAMPNS), so a
//! call stamped here and a segment stamped by the kernel can be put in the
//! order in which they really happened.

/// Nanoseconds since the Unix epoch, on CLOCK_REALTIME.
pub type Stamp = u64;

/// Now, on the clock the kernel stamps captured frames with.
pub fn now() -> Stamp {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: the pointer refers to a live timespec; CLOCK_REALTIME always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut time) };
    from_timespec(time.tv_sec, time.tv_nsec)
}

/// A timespec as a stamp; times before 1970 (a clock set wrong) are 0.
pub fn from_timespec(seconds: i64, nanoseconds: i64) -> Stamp {
    (seconds.max(0) as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(nanoseconds.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_is_realtime_in_nanoseconds() {
        let system = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_nanos() as u64;
        let stamp = now();
        assert!(
            stamp.abs_diff(system) < 1_000_000_000,
            "{stamp} vs {system}"
        );
        assert_eq!(from_timespec(2, 5), 2_000_000_005);
        assert_eq!(from_timespec(-1, 5), 5);
    }
}
