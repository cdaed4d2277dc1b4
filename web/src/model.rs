//! The page's state, as pure Rust: protocol events in, what to show out.
//! Nothing here touches the DOM, so `cargo test` runs it natively.

use protocol::{Event, EventBody};

/// The state of the page's link to the relay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Connection {
    Connecting,
    /// The WebSocket is open; `hello` may not have arrived yet.
    Connected,
    /// The WebSocket closed; the page tries again after `retry_in_ms`.
    Lost {
        attempt: u32,
        retry_in_ms: u32,
    },
}

/// What the page knows.
#[derive(Debug)]
pub struct Model {
    pub connection: Connection,
    /// Consecutive failed attempts, reset by a successful open.
    failed_attempts: u32,
    /// The relay's version string, from `hello`.
    pub relay: Option<String>,
    /// The last `seq` applied, to notice gaps.
    pub last_seq: u64,
}

impl Default for Model {
    fn default() -> Model {
        Model {
            connection: Connection::Connecting,
            failed_attempts: 0,
            relay: None,
            last_seq: 0,
        }
    }
}

/// The first retry waits this long; each failure doubles it up to the cap.
const FIRST_RETRY_MS: u32 = 500;
const MAX_RETRY_MS: u32 = 8_000;

impl Model {
    pub fn connection_opened(&mut self) {
        self.connection = Connection::Connected;
        self.failed_attempts = 0;
    }

    /// Records a lost connection and returns how long to wait before retrying.
    pub fn connection_lost(&mut self) -> u32 {
        self.failed_attempts = self.failed_attempts.saturating_add(1);
        let retry_in_ms = FIRST_RETRY_MS
            .saturating_mul(1 << self.failed_attempts.saturating_sub(1).min(5))
            .min(MAX_RETRY_MS);
        self.connection = Connection::Lost {
            attempt: self.failed_attempts,
            retry_in_ms,
        };
        // A new session starts its own seq at 1.
        self.last_seq = 0;
        retry_in_ms
    }

    pub fn apply(&mut self, event: &Event) {
        self.last_seq = event.seq;
        if let EventBody::Hello(hello) = &event.body {
            self.relay = Some(hello.relay.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_then_caps_and_resets_on_open() {
        let mut model = Model::default();
        let delays: Vec<u32> = (0..7).map(|_| model.connection_lost()).collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 8000, 8000, 8000]);
        model.connection_opened();
        assert_eq!(model.connection, Connection::Connected);
        assert_eq!(model.connection_lost(), 500);
    }
}
