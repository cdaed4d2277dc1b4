//! The lab ports in use across the relay. A lab-range port belongs to one
//! lab at a time, on every address: another lab may not bind it anywhere,
//! so one lab's server can never sit beside another's on 127.0.0.2 and
//! catch its traffic. A `bind` without an address gets a port no lab holds.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::Mutex;

use crate::capture::LabId;

#[derive(Debug)]
pub struct PortPool {
    range: RangeInclusive<u16>,
    /// The most lab ports one lab may hold at once.
    per_lab: usize,
    /// Each held port's lab, and how many of its sockets hold it.
    taken: Mutex<BTreeMap<u16, (LabId, u32)>>,
}

/// Why a lab may not have a port.
#[derive(Debug, PartialEq, Eq)]
pub enum Denied {
    /// Another lab holds it.
    OtherLab,
    /// This lab holds as many ports as it may.
    LabFull(usize),
    /// Every port of the range is held.
    RangeFull,
}

impl PortPool {
    pub fn new(range: RangeInclusive<u16>, per_lab: usize) -> PortPool {
        PortPool {
            range,
            per_lab,
            taken: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn contains(&self, port: u16) -> bool {
        self.range.contains(&port)
    }

    /// Reserves for `lab` the lowest port of the range that no lab holds and
    /// that is not in `skip`.
    pub(super) fn reserve(&self, lab: LabId, skip: &[u16]) -> Result<u16, Denied> {
        let mut taken = self.taken.lock().map_err(|_| Denied::RangeFull)?;
        self.check_lab(&taken, lab, None)?;
        let port = self
            .range
            .clone()
            .find(|port| !taken.contains_key(port) && !skip.contains(port))
            .ok_or(Denied::RangeFull)?;
        taken.insert(port, (lab, 1));
        Ok(port)
    }

    /// Claims a port a lab named, before its bind: free, or already this
    /// lab's. Ports outside the range are not the pool's to give.
    pub(super) fn claim(&self, lab: LabId, port: u16) -> Result<(), Denied> {
        if !self.contains(port) {
            return Ok(());
        }
        let mut taken = self.taken.lock().map_err(|_| Denied::RangeFull)?;
        match taken.get_mut(&port) {
            Some((owner, count)) if *owner == lab => {
                *count += 1;
                Ok(())
            }
            Some(_) => Err(Denied::OtherLab),
            None => {
                self.check_lab(&taken, lab, Some(port))?;
                taken.insert(port, (lab, 1));
                Ok(())
            }
        }
    }

    /// Gives back one hold of a port.
    pub(super) fn release(&self, port: u16) {
        if let Ok(mut taken) = self.taken.lock() {
            if let Some((_, count)) = taken.get_mut(&port) {
                *count -= 1;
                if *count == 0 {
                    taken.remove(&port);
                }
            }
        }
    }

    fn check_lab(
        &self,
        taken: &BTreeMap<u16, (LabId, u32)>,
        lab: LabId,
        port: Option<u16>,
    ) -> Result<(), Denied> {
        let held = taken
            .iter()
            .filter(|(held, (owner, _))| *owner == lab && Some(**held) != port)
            .count();
        if held >= self.per_lab {
            return Err(Denied::LabFull(self.per_lab));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_is_one_labs_on_every_address() {
        let pool = PortPool::new(7001..=7003, 2);
        assert_eq!(pool.reserve(1, &[]), Ok(7001));
        assert_eq!(pool.claim(2, 7001), Err(Denied::OtherLab));
        assert_eq!(
            pool.claim(1, 7001),
            Ok(()),
            "the same lab may bind it again"
        );
        assert_eq!(pool.reserve(2, &[]), Ok(7002));
        assert_eq!(pool.reserve(1, &[]), Ok(7003));
        assert_eq!(pool.claim(1, 7002), Err(Denied::OtherLab));
        assert_eq!(pool.reserve(2, &[]), Err(Denied::RangeFull));
        pool.release(7003);
        assert_eq!(pool.claim(1, 9000), Ok(()), "outside the range");
        pool.release(7001);
        pool.release(7001);
        assert_eq!(pool.claim(2, 7001), Ok(()));
        assert_eq!(pool.claim(2, 7003), Err(Denied::LabFull(2)));
    }
}
