//! The labs of one relay: the slots that bound how many run at once, in all
//! and per browser address, the lab ports they share, the capture they all
//! read, opening one for a browser, finding a lab's saved frames and its
//! audience by its code, and closing them all at shutdown.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::audience::{Audience, HISTORY_BYTES, SHARED_HISTORY_BYTES};
use crate::capture::Capture;
use crate::config::Config;
use crate::engine::{self, CaptureRing, LabHandle, LabRun, LabSettings, PortPool};

/// Each open lab's frames and audience, by the lab's code.
type Codes = Arc<Mutex<HashMap<String, Known>>>;

/// What a code finds.
struct Known {
    ring: Weak<Mutex<CaptureRing>>,
    audience: Weak<Audience>,
}

pub(crate) struct Labs {
    config: Config,
    /// One permit per lab, so that a relay never runs more labs than its limit.
    slots: Arc<Semaphore>,
    /// Labs open per browser address, so that one client cannot take them all.
    per_ip: Arc<Mutex<HashMap<IpAddr, u32>>>,
    /// The lab ports in use, shared so that two labs never pick the same one.
    ports: Arc<PortPool>,
    /// The packet capture every lab shares, or why the relay has none.
    capture: Result<Arc<Capture>, String>,
    /// Becomes true when the relay shuts down; every session watches it.
    shutdown: watch::Sender<bool>,
    codes: Codes,
    /// The classroom's shared lab, while its presenter has it open.
    presented: Mutex<Weak<Audience>>,
    /// One permit per follower, so that followers cannot grow without bound.
    followers: Arc<Semaphore>,
}

/// A running lab and the slots it holds until it is dropped.
pub(crate) struct OpenLab {
    pub handle: LabHandle,
    /// The lab's loop, for the session to drive.
    pub run: LabRun,
    /// Tells the session when the relay shuts down.
    pub shutdown: watch::Receiver<bool>,
    /// Who follows the lab; the session publishes every frame to it.
    pub audience: Arc<Audience>,
    _slot: OwnedSemaphorePermit,
    _per_ip: PerIpSlot,
    _code: CodeEntry,
}

impl OpenLab {
    /// The lab's code, by which it is followed.
    pub fn code(&self) -> &str {
        &self._code.code
    }
}

/// A lab's entry among the codes, until dropped.
struct CodeEntry {
    codes: Codes,
    code: String,
}

impl Drop for CodeEntry {
    fn drop(&mut self) {
        if let Ok(mut codes) = self.codes.lock() {
            codes.remove(&self.code);
        }
    }
}

/// One lab counted against its browser's address, until dropped.
struct PerIpSlot {
    counts: Arc<Mutex<HashMap<IpAddr, u32>>>,
    ip: IpAddr,
}

impl Drop for PerIpSlot {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.counts.lock() {
            if let Some(count) = counts.get_mut(&self.ip) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(&self.ip);
                }
            }
        }
    }
}

impl Labs {
    pub fn new(config: &Config, capture: Result<Arc<Capture>, String>) -> Labs {
        Labs {
            slots: Arc::new(Semaphore::new(config.labs_per_relay as usize)),
            per_ip: Arc::new(Mutex::new(HashMap::new())),
            ports: Arc::new(PortPool::new(
                config.lab_ports.clone(),
                config.ports_per_lab as usize,
            )),
            capture,
            shutdown: watch::Sender::new(false),
            config: config.clone(),
            codes: Codes::default(),
            presented: Mutex::new(Weak::new()),
            followers: Arc::new(Semaphore::new(config.followers_per_relay as usize)),
        }
    }

    /// A follower's place, or why the relay has none.
    pub fn follower_slot(&self) -> Result<OwnedSemaphorePermit, String> {
        Arc::clone(&self.followers)
            .try_acquire_owned()
            .map_err(|_| {
                format!(
                    "This relay already has its limit of {} screens following labs.",
                    self.config.followers_per_relay
                )
            })
    }

    /// Tells its holder when the relay shuts down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Whether the relay captures, or why not.
    pub fn capture_reason(&self) -> Result<(), String> {
        self.capture.as_ref().map(|_| ()).map_err(Clone::clone)
    }

    /// The frames of the open lab whose code this is, as pcapng; None for
    /// a code no open lab has.
    pub fn capture_file(&self, code: &str) -> Option<Result<Vec<u8>, String>> {
        let ring = self.codes.lock().ok()?.get(code)?.ring.upgrade()?;
        let ring = ring.lock().ok()?;
        Some(crate::pcapng::write(ring.frames()))
    }

    /// The audience of the open lab whose code this is.
    pub fn audience(&self, code: &str) -> Option<Arc<Audience>> {
        self.codes.lock().ok()?.get(code)?.audience.upgrade()
    }

    /// The audience of the classroom's shared lab, while it is open.
    pub fn presented(&self) -> Option<Arc<Audience>> {
        self.presented.lock().ok()?.upgrade()
    }

    /// Starts a lab for a browser at `ip`, its own or (as `Presenter`) the
    /// classroom's shared one, or says why the relay has no room for one.
    pub fn open(&self, ip: IpAddr, seat: protocol::Seat) -> Result<OpenLab, String> {
        let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else {
            return Err(format!(
                "This relay already runs its limit of {} labs. Close another tab, or ask the \
                 teacher to raise --max-labs.",
                self.config.labs_per_relay
            ));
        };
        let per_ip = {
            let mut counts = self
                .per_ip
                .lock()
                .map_err(|_| "the relay is failing".to_string())?;
            let count = counts.entry(ip).or_insert(0);
            if *count >= self.config.labs_per_ip {
                return Err(format!(
                    "This computer ({ip}) already has {} labs open, the most one computer may \
                     have. Close another tab, or ask the teacher to raise --labs-per-ip.",
                    self.config.labs_per_ip
                ));
            }
            *count += 1;
            PerIpSlot {
                counts: Arc::clone(&self.per_ip),
                ip,
            }
        };
        let mut settings =
            LabSettings::from_config(&self.config, Arc::clone(&self.ports), self.capture.clone());
        settings.seat = seat;
        let code = CodeEntry {
            codes: Arc::clone(&self.codes),
            code: settings.code.clone(),
        };
        let (ring, viewers, lab_code) = (
            Arc::downgrade(&settings.ring),
            Arc::clone(&settings.viewers),
            settings.code.clone(),
        );
        let (handle, run) = engine::new_lab(settings);
        let budget = match seat {
            protocol::Seat::Presenter => SHARED_HISTORY_BYTES,
            _ => HISTORY_BYTES,
        };
        let audience = Arc::new(Audience::new(budget, viewers, handle.inputs.downgrade()));
        if let Ok(mut codes) = self.codes.lock() {
            let known = Known {
                ring,
                audience: Arc::downgrade(&audience),
            };
            codes.insert(lab_code, known);
        }
        if seat == protocol::Seat::Presenter {
            if let Ok(mut presented) = self.presented.lock() {
                *presented = Arc::downgrade(&audience);
            }
        }
        Ok(OpenLab {
            handle,
            run,
            shutdown: self.shutdown.subscribe(),
            audience,
            _slot: slot,
            _per_ip: per_ip,
            _code: code,
        })
    }

    /// Tells every session to close, and waits, for at most `within`, until
    /// every lab has closed its sockets and every follower has been told.
    pub async fn close_all(&self, within: Duration) {
        self.shutdown.send_replace(true);
        // Every lab, and every follower: each has its close frame sent
        // before the relay exits, not cut off by the runtime's end.
        let all_free = async {
            let labs = Arc::clone(&self.slots).acquire_many_owned(self.config.labs_per_relay);
            let followers =
                Arc::clone(&self.followers).acquire_many_owned(self.config.followers_per_relay);
            let _ = tokio::join!(labs, followers);
        };
        if tokio::time::timeout(within, all_free).await.is_err() {
            tracing::warn!("some labs or followers were still closing when the relay stopped");
        }
    }
}

/// Hands the memory a lab that ended freed back to the system, at most once
/// a second. The allocator keeps freed memory for reuse otherwise, so a
/// flood a browser caused would stay in the relay's footprint after it left.
pub(crate) fn give_memory_back() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST_SECOND: AtomicU64 = AtomicU64::new(0);
    let second = crate::engine::clock::now() / 1_000_000_000;
    if LAST_SECOND.swap(second, Ordering::Relaxed) != second {
        // SAFETY: malloc_trim only returns free memory to the system.
        unsafe { libc::malloc_trim(0) };
    }
}
