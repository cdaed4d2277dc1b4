//! The whole lesson and the error scenarios, as lists of clicks, and the
//! player that makes them one after another. Every action is a real call
//! through the relay; the player only decides when to click.

use crate::i18n::Lang;
use crate::model::{Action, LaneId, Model, SERVER_LANE, Step};

const CLIENT: LaneId = 1;
/// The client's TCP_LINGER2 in the never-close scenario.
const NEVER_CLOSE_FIN_WAIT2_SECONDS: i32 = 5;

/// What "Run" can play.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// The course material's whole flow.
    Lesson,
    ConnectBeforeListen,
    /// A server restarted while its old connection waits in TIME_WAIT.
    BindInUse,
    /// The same restart, with SO_REUSEADDR before bind.
    BindReuseAddr,
    ReadAfterPeerClosed,
    LingerZero,
    NeverClose,
    ReadListening,
}

impl Scenario {
    pub const MENU: [Scenario; 7] = [
        Scenario::ConnectBeforeListen,
        Scenario::BindInUse,
        Scenario::BindReuseAddr,
        Scenario::ReadAfterPeerClosed,
        Scenario::LingerZero,
        Scenario::NeverClose,
        Scenario::ReadListening,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Scenario::Lesson => "lesson",
            Scenario::ConnectBeforeListen => "connect-before-listen",
            Scenario::BindInUse => "bind-in-use",
            Scenario::BindReuseAddr => "bind-reuseaddr",
            Scenario::ReadAfterPeerClosed => "read-after-close",
            Scenario::LingerZero => "linger-zero",
            Scenario::NeverClose => "never-close",
            Scenario::ReadListening => "read-listening",
        }
    }

    pub fn from_key(key: &str) -> Option<Scenario> {
        std::iter::once(Scenario::Lesson)
            .chain(Scenario::MENU)
            .find(|scenario| scenario.key() == key)
    }

    pub fn title(self, lang: Lang) -> &'static str {
        match self {
            Scenario::Lesson => lang.pick("The whole lesson", "完整流程"),
            Scenario::ConnectBeforeListen => lang.pick(
                "connect before listen → ECONNREFUSED",
                "先 connect 后 listen → ECONNREFUSED",
            ),
            Scenario::BindInUse => lang.pick(
                "restart the server while TIME_WAIT holds its port → EADDRINUSE",
                "端口还在 TIME_WAIT 时重启服务端 → EADDRINUSE",
            ),
            Scenario::BindReuseAddr => lang.pick(
                "the same restart with SO_REUSEADDR → bind succeeds",
                "同样的重启，设置 SO_REUSEADDR → bind 成功",
            ),
            Scenario::ReadAfterPeerClosed => lang.pick(
                "read after the peer closed → 0 (EOF)",
                "对方关闭后 read → 0（EOF）",
            ),
            Scenario::LingerZero => lang.pick(
                "close with linger 0 → RST, ECONNRESET",
                "linger 0 关闭 → RST、ECONNRESET",
            ),
            Scenario::NeverClose => lang.pick(
                "the server never closes → CLOSE_WAIT stays, FIN_WAIT2 expires",
                "服务端从不 close → CLOSE_WAIT 一直存在，FIN_WAIT2 超时消失",
            ),
            Scenario::ReadListening => lang.pick(
                "the material's read on the listening socket → ENOTCONN",
                "原文在监听套接字上 read → ENOTCONN",
            ),
        }
    }

    /// The clicks, starting from a fresh lab.
    pub fn actions(self) -> Vec<Action> {
        use Action::Step as S;
        let server_up = [
            S(SERVER_LANE, Step::Socket),
            S(SERVER_LANE, Step::Bind),
            S(SERVER_LANE, Step::Listen),
        ];
        let connected = [
            S(CLIENT, Step::Socket),
            S(CLIENT, Step::Connect),
            S(SERVER_LANE, Step::Accept),
        ];
        let mut actions = vec![Action::Reset];
        match self {
            Scenario::Lesson => {
                actions.extend(server_up);
                // accept first: it waits in the kernel until a client connects.
                actions.push(S(SERVER_LANE, Step::Accept));
                actions.extend([
                    S(CLIENT, Step::Socket),
                    S(CLIENT, Step::Connect),
                    S(CLIENT, Step::Send),
                    S(SERVER_LANE, Step::Read),
                    S(SERVER_LANE, Step::Send),
                    S(CLIENT, Step::Read),
                    S(CLIENT, Step::Close),
                    // The client's FIN: the server's read returns 0.
                    S(SERVER_LANE, Step::Read),
                    // The connection, then the listening socket.
                    S(SERVER_LANE, Step::Close),
                    S(SERVER_LANE, Step::Close),
                ]);
            }
            Scenario::ConnectBeforeListen => actions.extend([
                S(SERVER_LANE, Step::Socket),
                S(SERVER_LANE, Step::Bind),
                S(CLIENT, Step::Socket),
                Action::ConnectToServerPort(CLIENT),
            ]),
            Scenario::BindInUse | Scenario::BindReuseAddr => {
                // Servers that want to restart at once set SO_REUSEADDR
                // before each bind: Linux shares a port with TIME_WAIT only
                // when the old socket asked for it too.
                let reuse = self == Scenario::BindReuseAddr;
                actions.push(S(SERVER_LANE, Step::Socket));
                if reuse {
                    actions.push(Action::ReuseAddr(SERVER_LANE));
                }
                actions.extend([S(SERVER_LANE, Step::Bind), S(SERVER_LANE, Step::Listen)]);
                actions.extend(connected);
                actions.extend([
                    // The server closes first, so its end waits in TIME_WAIT
                    // on the server's port once the client closes too.
                    S(SERVER_LANE, Step::Close),
                    S(CLIENT, Step::Close),
                    // The listening socket: the server has stopped.
                    S(SERVER_LANE, Step::Close),
                    // It starts again on the same port.
                    S(SERVER_LANE, Step::Socket),
                ]);
                if reuse {
                    actions.push(Action::ReuseAddr(SERVER_LANE));
                }
                actions.push(Action::RebindServer);
            }
            Scenario::ReadAfterPeerClosed => {
                actions.extend(server_up);
                actions.extend(connected);
                actions.extend([S(CLIENT, Step::Close), S(SERVER_LANE, Step::Read)]);
            }
            Scenario::LingerZero => {
                actions.extend(server_up);
                actions.extend(connected);
                actions.extend([
                    Action::LingerZero,
                    S(SERVER_LANE, Step::Close),
                    S(CLIENT, Step::Read),
                ]);
            }
            Scenario::NeverClose => {
                actions.extend(server_up);
                actions.extend(connected);
                // Short, so the client's orphaned FIN_WAIT2 visibly expires.
                actions.push(Action::FinWait2Timeout(
                    CLIENT,
                    NEVER_CLOSE_FIN_WAIT2_SECONDS,
                ));
                actions.push(S(CLIENT, Step::Close));
            }
            Scenario::ReadListening => {
                actions.extend(server_up);
                actions.push(Action::ReadListening);
            }
        }
        actions
    }
}

/// Plays a scenario: one action, wait for the kernel's answer, pause, next.
#[derive(Debug)]
pub struct Player {
    pub scenario: Scenario,
    actions: Vec<Action>,
    pub index: usize,
    pub paused: bool,
    /// The command whose answer the player waits for.
    waiting_for: Option<u64>,
    /// When the next action is due, in page milliseconds.
    next_at_ms: f64,
    /// The first event of this run: its summary looks from here on.
    pub started_at_seq: u64,
}

impl Player {
    pub fn new(scenario: Scenario, now_ms: f64, started_at_seq: u64) -> Player {
        Player {
            scenario,
            actions: scenario.actions(),
            index: 0,
            paused: false,
            waiting_for: None,
            next_at_ms: now_ms,
            started_at_seq,
        }
    }

    pub fn len(&self) -> usize {
        self.actions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    pub fn finished(&self) -> bool {
        self.index >= self.actions.len() && self.waiting_for.is_none()
    }

    /// The next action, if it is due: the previous one has its answer
    /// (a blocked call counts: the lesson goes on while accept waits) and
    /// `delay_ms` has passed since.
    pub fn due(&mut self, now_ms: f64, delay_ms: f64, model: &Model) -> Option<Action> {
        if self.paused {
            return None;
        }
        if let Some(id) = self.waiting_for {
            if model.is_outstanding(id) {
                return None;
            }
            self.waiting_for = None;
            self.next_at_ms = now_ms + delay_ms;
        }
        if now_ms < self.next_at_ms {
            return None;
        }
        let action = self.actions.get(self.index)?.clone();
        self.index += 1;
        Some(action)
    }

    /// The command that the last due action became. Every command has an
    /// answer, a reset too (its `reset` event), so the player awaits each.
    pub fn sent(&mut self, id: u64) {
        self.waiting_for = Some(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_starts_fresh_and_keys_round_trip() {
        for scenario in std::iter::once(Scenario::Lesson).chain(Scenario::MENU) {
            assert_eq!(scenario.actions().first(), Some(&Action::Reset));
            assert_eq!(Scenario::from_key(scenario.key()), Some(scenario));
        }
    }

    #[test]
    fn the_player_waits_for_each_answer() {
        let mut model = Model::new(Lang::En);
        let mut player = Player::new(Scenario::ReadListening, 0.0, 1);
        assert_eq!(player.due(0.0, 100.0, &model), Some(Action::Reset));
        let reset = model.command_for(&Action::Reset).expect("reset");
        player.sent(reset.id);
        let done = protocol::Event {
            seq: 2,
            t_us: 1,
            body: protocol::EventBody::Reset(protocol::ResetDone {
                id: reset.id,
                closed: 0,
            }),
        };
        model.apply(&done);
        assert_eq!(
            player.due(1.0, 100.0, &model),
            None,
            "the reset's answer, then a pause"
        );
        let action = player.due(200.0, 100.0, &model).expect("socket is due");
        let command = model.command_for(&action).expect("socket");
        player.sent(command.id);
        assert_eq!(
            player.due(600.0, 100.0, &model),
            None,
            "waits for the answer"
        );
        player.paused = true;
        assert_eq!(player.due(900.0, 100.0, &model), None);
        assert!(!player.finished());
        assert_eq!(player.len(), 5);
    }
}
