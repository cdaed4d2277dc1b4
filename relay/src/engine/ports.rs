//! The lab ports in use across the relay, so that a `bind` without an
//! address gets a port no other lab holds.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;
use std::sync::Mutex;

#[derive(Debug)]
pub struct PortPool {
    range: RangeInclusive<u16>,
    taken: Mutex<BTreeSet<u16>>,
}

impl PortPool {
    pub fn new(range: RangeInclusive<u16>) -> PortPool {
        PortPool {
            range,
            taken: Mutex::new(BTreeSet::new()),
        }
    }

    pub fn contains(&self, port: u16) -> bool {
        self.range.contains(&port)
    }

    /// Reserves the lowest free port of the range that is not in `skip`.
    pub(super) fn reserve(&self, skip: &[u16]) -> Option<u16> {
        let mut taken = self.taken.lock().ok()?;
        let port = self
            .range
            .clone()
            .find(|port| !taken.contains(port) && !skip.contains(port))?;
        taken.insert(port);
        Some(port)
    }

    /// Marks a port as held, for binds that named their port.
    pub(super) fn hold(&self, port: u16) {
        if let Ok(mut taken) = self.taken.lock() {
            taken.insert(port);
        }
    }

    pub(super) fn release(&self, port: u16) {
        if let Ok(mut taken) = self.taken.lock() {
            taken.remove(&port);
        }
    }
}
