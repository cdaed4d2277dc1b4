//! The labs of one relay: the slots that bound how many run at once, the lab
//! ports they share, the capture they all read, and opening one for a browser.

use std::sync::Arc;

use protocol::{ErrorCode, Refusal};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::capture::Capture;
use crate::config::Config;
use crate::engine::{self, LabHandle, LabSettings, PortPool};

pub(crate) struct Labs {
    config: Config,
    /// One permit per lab, so that a relay never runs more labs than its limit.
    slots: Arc<Semaphore>,
    /// The lab ports in use, shared so that two labs never pick the same one.
    ports: Arc<PortPool>,
    /// The packet capture every lab shares, or why the relay has none.
    capture: Result<Arc<Capture>, String>,
}

/// A running lab and the slot it holds until it is dropped.
pub(crate) struct OpenLab {
    pub handle: LabHandle,
    _slot: OwnedSemaphorePermit,
}

impl Labs {
    pub fn new(config: &Config, capture: Result<Arc<Capture>, String>) -> Labs {
        Labs {
            slots: Arc::new(Semaphore::new(config.labs_per_relay as usize)),
            ports: Arc::new(PortPool::new(
                config.lab_ports.clone(),
                config.ports_per_lab as usize,
            )),
            capture,
            config: config.clone(),
        }
    }

    /// Starts a lab, or says why the relay has no room for one.
    pub fn open(&self) -> Result<OpenLab, Refusal> {
        let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else {
            return Err(Refusal::new(
                None,
                ErrorCode::Limit,
                format!(
                    "This relay already runs its limit of {} labs. Close another tab, or ask the \
                     teacher to raise --max-labs.",
                    self.config.labs_per_relay
                ),
            ));
        };
        let settings =
            LabSettings::from_config(&self.config, Arc::clone(&self.ports), self.capture.clone());
        Ok(OpenLab {
            handle: engine::spawn_lab(settings),
            _slot: slot,
        })
    }
}
