//! How each event from the relay changes the model: calls become cards and
//! rows, states move sockets, segments become arrows.

use std::collections::BTreeMap;

use protocol::{Call, Event, EventBody, OpName, Phase, Role, Segment, SockId, SockState, TcpState};

use crate::i18n::Lang;
use crate::notes;
use crate::spoken;

use super::*;

impl Model {
    /// Applies one event from the relay, keeping the frame it came in.
    pub fn apply_frame(&mut self, event: &Event, frame: &str) {
        self.apply(event);
        if let Some(entry) = self.log.last_mut().filter(|entry| entry.seq == event.seq) {
            entry.frame = Some(frame.to_string());
        }
    }

    /// Applies one event from the relay.
    pub fn apply(&mut self, event: &Event) {
        if event.seq == 0 {
            // The follower's own session speaks, not the lab: the history's
            // start, or a command refused because this screen only follows.
            self.apply_own(event);
            return;
        }
        if event.seq == 1 {
            // A new session: the relay made a new, empty lab.
            self.last_seq = 0;
            self.clear_lab();
            self.log.clear();
            self.log_let_go = 0;
        }
        if event.seq != self.last_seq + 1 {
            self.out_of_order += 1;
        }
        self.last_seq = self.last_seq.max(event.seq);
        let (kind, sock, summary) = self.summarise(event);
        if self.log.len() >= MAX_LOG {
            // The oldest block goes; the page says how many.
            self.log.drain(..LOG_TRIM_BLOCK);
            self.log_let_go += LOG_TRIM_BLOCK;
        }
        self.log.push(LogEntry {
            seq: event.seq,
            kind,
            sock,
            summary,
            event: event.clone(),
            frame: None,
        });
        match &event.body {
            EventBody::Hello(hello) => self.hello = Some(hello.clone()),
            EventBody::Call(call) => self.apply_call(event.seq, call),
            EventBody::State(state) => self.apply_state(event.seq, state),
            EventBody::Segment(segment) => self.apply_segment(event.seq, segment),
            EventBody::Error(error) => {
                if let Some(id) = error.id {
                    self.issued.remove(&id);
                }
                self.last_error = Some(error.message.clone());
                self.announce(error.message.clone());
            }
            EventBody::Gap(gap) => {
                let label = notes::gap(gap.segments, self.lang);
                self.announce(label.clone());
                self.rows.push(Row::Divider {
                    seq: event.seq,
                    label,
                });
            }
            EventBody::Viewers(viewers) => {
                self.viewers = viewers.count;
                self.announce(notes::viewers(viewers.count, self.lang));
            }
            // Only ever with seq 0, handled above.
            EventBody::History(_) => {}
            EventBody::Exited(ending) => {
                let label = notes::exited(ending, self.lang);
                self.announce(label.clone());
                self.rows.push(Row::Divider {
                    seq: event.seq,
                    label,
                });
            }
            EventBody::Reset(done) => {
                self.issued.remove(&done.id);
                self.generation += 1;
                let label = notes::reset_divider(done.closed, self.lang);
                self.announce(label.clone());
                self.rows.push(Row::Divider {
                    seq: event.seq,
                    label,
                });
            }
        }
        if self.rows.len() > MAX_ROWS {
            // Let go of a block at a time: the note that says so changes
            // once a block, not once an event. The block ends on a chunk's
            // edge, so the page lets whole chunks go.
            let excess = self.rows.len() - (MAX_ROWS - TRIM_BLOCK);
            let past_edge = (self.trimmed_rows + excess) % ROW_CHUNK;
            let excess = excess + (ROW_CHUNK - past_edge) % ROW_CHUNK;
            self.rows.drain(..excess);
            self.trimmed_rows += excess;
            self.rows_let_go += excess;
            self.revealed = self.revealed.saturating_sub(excess);
        }
    }

    fn summarise(&self, event: &Event) -> (&'static str, Option<SockId>, String) {
        match &event.body {
            EventBody::Hello(hello) => {
                ("hello", None, format!("hello: protocol {}", hello.protocol))
            }
            EventBody::Call(call) => ("call", call.sock, call.c.clone()),
            EventBody::State(state) => (
                "state",
                Some(state.sock),
                format!("sock {} → {}", state.sock, state_label(state, self.lang)),
            ),
            EventBody::Segment(segment) => (
                "segment",
                segment.src_sock.or(segment.dst_sock),
                segment_label(segment),
            ),
            EventBody::Error(error) => (
                "error",
                None,
                format!("{}: {}", error.code.as_str(), error.message),
            ),
            EventBody::Reset(done) => ("reset", None, notes::reset_divider(done.closed, self.lang)),
            EventBody::Gap(gap) => ("gap", None, notes::gap(gap.segments, self.lang)),
            EventBody::Viewers(viewers) => {
                ("viewers", None, notes::viewers(viewers.count, self.lang))
            }
            EventBody::History(history) => (
                "history",
                None,
                notes::history(history.resync, history.let_go, self.lang),
            ),
            EventBody::Exited(ending) => ("exited", None, notes::exited(ending, self.lang)),
        }
    }

    /// An event of a follower's own session (`seq` 0).
    fn apply_own(&mut self, event: &Event) {
        match &event.body {
            EventBody::History(history) => {
                // The lab's hello comes next and draws it afresh; the page
                // remembers that it follows, and what the history lacks.
                self.following = Some(history.let_go);
                self.announce(notes::history(history.resync, history.let_go, self.lang));
            }
            EventBody::Error(error) => {
                if let Some(id) = error.id {
                    self.issued.remove(&id);
                }
                self.last_error = Some(error.message.clone());
                self.announce(error.message.clone());
            }
            _ => {}
        }
    }

    fn lane_of_sock(&self, sock: SockId) -> Option<LaneId> {
        self.sockets.get(&sock).map(|view| view.lane)
    }

    fn apply_call(&mut self, seq: u64, call: &Call) {
        let issued = call.id.and_then(|id| self.issued.get(&id).copied());
        let lane = issued
            .map(|issued| issued.lane)
            .or_else(|| call.sock.and_then(|sock| self.lane_of_sock(sock)))
            .or_else(|| match call.role {
                // A socket this page did not ask for (another tab's command
                // replayed, say): a client goes to the first free client lane.
                Some(Role::Client) => Some(self.free_client_lane()),
                _ => None,
            })
            .unwrap_or(SERVER_LANE);
        // The bind the relay makes first for an unbound socket's listen or
        // connect shares that command's id; the command's own call follows.
        let bound_first = matches!(
            call.note,
            Some(protocol::Note::BoundBeforeListen | protocol::Note::BoundBeforeConnect)
        );
        let step = if bound_first {
            Some(Step::Bind)
        } else {
            issued
                .and_then(|issued| issued.step)
                .or_else(|| call.op.and_then(Step::from_op))
        };
        let phase = call.phase.unwrap_or(Phase::Done);
        if issued.is_some_and(|issued| issued.quiet) {
            if let Some(view) = call.sock.and_then(|sock| self.sockets.get_mut(&sock)) {
                view.fd_open = false;
                view.fd = None;
            }
            // The reset's teardown, on the lifeline of the socket it closed.
            let lane = call
                .sock
                .and_then(|sock| self.lane_of_sock(sock))
                .unwrap_or(lane);
            self.rows.push(Row::Call {
                seq,
                lane,
                label: format!(
                    "{} · {}",
                    short_call(call, self.lang),
                    self.lang.pick("reset", "重置")
                ),
                phase: call.phase.unwrap_or(Phase::Done),
            });
            let who = self.lane_name(lane);
            self.announce(spoken::call(&who, call, self.lang));
            return;
        }
        if phase != Phase::Blocked && !bound_first {
            if let Some(id) = call.id {
                self.issued.remove(&id);
            }
        }

        if phase == Phase::Done {
            match call.op {
                Some(OpName::Bind) if lane == SERVER_LANE => {
                    self.last_server_addr = call.local.clone();
                }
                Some(OpName::Socket) => {
                    if let (Some(sock), Some(lane_entry)) = (call.sock, self.lanes.get_mut(lane)) {
                        // A new socket starts the lane's steps again: the
                        // cards of the one before (a restarted server's
                        // listen, say) are not this socket's, and the
                        // timeline keeps them.
                        lane_entry.cards.clear();
                        lane_entry.extra.clear();
                        lane_entry.sock = Some(sock);
                        lane_entry.program = call.lane.clone();
                        let mut view =
                            new_sock_view(sock, call.role.unwrap_or(Role::Client), lane, call.fd);
                        view.generation = self.generation;
                        self.sockets.insert(sock, view);
                    }
                }
                Some(OpName::Accept) => {
                    if let Some(new_sock) = call.new_sock {
                        let mut view =
                            new_sock_view(new_sock, Role::Conn, SERVER_LANE, call.new_fd);
                        view.peer = call.peer.clone();
                        view.local = call.local.clone();
                        view.generation = self.generation;
                        self.sockets.insert(new_sock, view);
                        let server = &mut self.lanes[SERVER_LANE];
                        server.conns.push(new_sock);
                        server.selected_conn = Some(new_sock);
                    }
                }
                Some(OpName::Read) => {
                    if let Some(view) = call.sock.and_then(|sock| self.sockets.get_mut(&sock)) {
                        view.last_read = Some(match (&call.data, &call.hex, call.ret) {
                            (Some(text), _, _) => text.clone(),
                            (None, Some(hex), _) => format!("0x{hex}"),
                            _ => String::new(),
                        });
                    }
                }
                Some(OpName::Close) => {
                    if let Some(view) = call.sock.and_then(|sock| self.sockets.get_mut(&sock)) {
                        view.fd_open = false;
                        view.fd = None;
                    }
                    let server = &mut self.lanes[SERVER_LANE];
                    if server.selected_conn == call.sock {
                        server.selected_conn = server.conns.iter().rev().copied().find(|conn| {
                            Some(*conn) != call.sock
                                && self.sockets.get(conn).is_some_and(|view| view.fd_open)
                        });
                    }
                }
                _ => {}
            }
        }

        let card = Card {
            seq,
            call: call.clone(),
        };
        if let Some(lane_entry) = self.lanes.get_mut(lane) {
            match step.filter(|step| lane_entry.side.steps().contains(step)) {
                Some(step) => {
                    lane_entry.cards.insert(step, card);
                }
                None => {
                    lane_entry.extra.retain(|old| old.call.id != call.id);
                    lane_entry.extra.push(card);
                }
            }
            let closes_listener = call.op == Some(OpName::Close)
                && call
                    .sock
                    .and_then(|sock| self.sockets.get(&sock))
                    .is_some_and(|view| view.role == Role::Server);
            self.code = code_focus(lane_entry.side, step, call, closes_listener, &self.code);
        }
        self.rows.push(Row::Call {
            seq,
            lane,
            label: short_call(call, self.lang),
            phase,
        });
        let who = self.lane_name(lane);
        self.announce(spoken::call(&who, call, self.lang));
    }

    /// A lane's name, as headings and the live region say it.
    fn lane_name(&self, lane: LaneId) -> String {
        self.lanes
            .get(lane)
            .map(|entry| entry.label(self.lang))
            .unwrap_or_default()
    }

    /// A diagram column's name, as the live region says it.
    fn column_name(&self, column: Column) -> String {
        match column {
            Column::Lane(lane) => self.lane_name(lane),
            Column::Outside => self
                .lang
                .pick("a peer outside the lab", "实验外的对端")
                .to_string(),
        }
    }

    fn apply_state(&mut self, seq: u64, state: &SockState) {
        let lane = self.lane_of_sock(state.sock).unwrap_or(match state.role {
            Role::Client => 1,
            _ => SERVER_LANE,
        });
        let generation = self.generation;
        let view = self.sockets.entry(state.sock).or_insert_with(|| {
            let mut view = new_sock_view(state.sock, state.role, lane, state.fd);
            view.generation = generation;
            view
        });
        let changed = view.tcp != Some(state.tcp) || view.fd_open != state.fd_open;
        view.tcp = Some(state.tcp);
        view.fd = state.fd;
        view.fd_open = state.fd_open;
        view.local = state.local.clone().or(view.local.take());
        view.peer = state.peer.clone().or(view.peer.take());
        view.queue = state.queue;
        view.backlog = state.backlog;
        if changed {
            let mut label = format!("{} {}", sock_name(view), state_label(state, self.lang));
            if view.generation < self.generation {
                label = format!("{label} {}", notes::before_reset(self.lang));
            }
            let said = spoken::state(&self.lane_name(lane), state.fd, state.tcp, self.lang);
            self.rows.push(Row::State { seq, lane, label });
            self.announce(said);
        }
    }

    fn apply_segment(&mut self, seq: u64, segment: &Segment) {
        let column = |sock: Option<SockId>| {
            sock.and_then(|sock| self.lane_of_sock(sock))
                .map(Column::Lane)
                .unwrap_or(Column::Outside)
        };
        let (from, to) = (column(segment.src_sock), column(segment.dst_sock));
        let said = spoken::segment(
            &self.column_name(from),
            &self.column_name(to),
            segment,
            self.lang,
        );
        self.announce(said);
        self.rows.push(Row::Segment {
            seq,
            from,
            to,
            label: segment_label(segment),
            detail: segment_detail(segment, self.lang),
        });
    }
}

fn new_sock_view(sock: SockId, role: Role, lane: LaneId, fd: Option<i32>) -> SockView {
    SockView {
        sock,
        role,
        lane,
        fd,
        tcp: None,
        fd_open: true,
        local: None,
        peer: None,
        queue: None,
        backlog: None,
        last_read: None,
        generation: 0,
    }
}

/// `fd 5` while open, `sock 3` once the fd is gone.
pub fn sock_name(view: &SockView) -> String {
    match view.fd {
        Some(fd) if view.fd_open => format!("fd {fd}"),
        _ => format!("sock {}", view.sock),
    }
}

/// `LISTEN 0/5`, `TIME_WAIT (kernel, fd closed)`.
pub fn state_label(state: &SockState, lang: Lang) -> String {
    let mut label = state.tcp.name().to_string();
    if let (Some(queue), Some(backlog)) = (state.queue, state.backlog) {
        label.push_str(&format!(" {queue}/{backlog}"));
    }
    if !state.fd_open {
        label.push_str(if state.tcp == TcpState::Close {
            lang.pick(" (fd closed)", "（fd 已关闭）")
        } else {
            lang.pick(" (kernel only, fd closed)", "（仅内核持有，fd 已关闭）")
        });
    }
    label
}

/// `connect() = 0`, `read() = 5`, `accept() … EAGAIN`.
fn short_call(call: &Call, lang: Lang) -> String {
    let op = call.op.map(|op| op.as_str()).unwrap_or("?");
    match (call.phase, &call.errno, call.ret) {
        (Some(Phase::Blocked), errno, _) => format!(
            "{op}() … {} {}",
            errno.as_deref().unwrap_or("blocked"),
            notes::waiting(lang)
        ),
        (Some(Phase::Cancelled), _, _) => format!("{op}() {}", notes::cancelled(lang)),
        (_, Some(errno), _) => format!("{op}() = -1 {errno}"),
        (_, None, Some(ret)) => format!("{op}() = {ret}"),
        _ => format!("{op}()"),
    }
}

pub fn segment_label(segment: &Segment) -> String {
    let mut label = segment.flags.join("+");
    if let Some(count) = segment.coalesced {
        label.push_str(&format!(" ×{count}"));
    }
    label.push_str(&format!(" seq={}", segment.rel_seq));
    // Without the ACK flag the acknowledgement field means nothing (a SYN's
    // is 0): Wireshark leaves it out, and so does the arrow.
    if segment.has("ACK") {
        label.push_str(&format!(" ack={}", segment.rel_ack));
    }
    if segment.len > 0 {
        label.push_str(&format!(" len={}", segment.len));
    }
    label
}

fn segment_detail(segment: &Segment, lang: Lang) -> String {
    let mut lines = vec![
        format!("{} → {}", segment.src, segment.dst),
        format!("flags: {}", segment.flags.join(", ")),
        format!("seq {} (relative {})", segment.tcp_seq, segment.rel_seq),
        format!("ack {} (relative {})", segment.tcp_ack, segment.rel_ack),
        format!("len {}  win {}", segment.len, segment.win),
    ];
    if let Some(payload) = segment.payload.as_ref().or(segment.payload_hex.as_ref()) {
        lines.push(format!("payload: {payload}"));
    }
    lines.push(match (segment.cause, segment.id) {
        (protocol::Cause::Call, Some(id)) => notes::cause(Some(id), lang),
        _ => notes::cause(None, lang),
    });
    lines.join("\n")
}

/// The listing line of the call just made, with the values it produced.
fn code_focus(
    side: Side,
    step: Option<Step>,
    call: &Call,
    closes_listener: bool,
    previous: &CodeFocus,
) -> CodeFocus {
    let mut values = if previous.side == Some(side) {
        previous.values.clone()
    } else {
        BTreeMap::new()
    };
    let shown = match (call.phase, &call.errno, call.ret) {
        (Some(Phase::Blocked), _, _) => Some("…".to_string()),
        (_, Some(errno), _) => Some(format!("-1 ({errno})")),
        (_, None, Some(ret)) => Some(ret.to_string()),
        _ => None,
    };
    let variable = match (side, step) {
        (_, Some(Step::Socket)) => Some("sockfd"),
        (Side::Server, Some(Step::Accept)) => Some("new_socket"),
        (_, Some(Step::Read)) => Some("valread"),
        (_, Some(Step::Bind)) => Some("bind"),
        (_, Some(Step::Listen)) => Some("listen"),
        (_, Some(Step::Connect)) => Some("connect"),
        (_, Some(Step::Send)) => Some("send"),
        (Side::Server, Some(Step::Close)) if closes_listener => Some("close_listener"),
        (_, Some(Step::Close)) => Some("close"),
        _ => None,
    };
    if let (Some(variable), Some(shown)) = (variable, shown) {
        values.insert(variable, shown);
    }
    CodeFocus {
        side: Some(side),
        step,
        values,
        variable,
    }
}
