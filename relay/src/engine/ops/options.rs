//! setsockopt(): the options a lesson turns (SO_REUSEADDR, SO_LINGER,
//! TCP_NODELAY, TCP_LINGER2).

use std::os::fd::AsRawFd;
use std::time::Duration;

use protocol::{ErrorCode, Note, Refusal, SockOptName, SockOptValue};

use super::{CallContext, refuse, timed};
use crate::engine::lab::Lab;
use crate::engine::render;
use crate::engine::sys;

/// The longest TCP_LINGER2 a lab may set: the kernel caps it at
/// net.ipv4.tcp_fin_timeout's maximum anyway, and a lesson needs seconds.
const MAX_LINGER2_SECONDS: i32 = 120;

impl Lab {
    pub(in crate::engine) fn setsockopt(
        &mut self,
        call: CallContext,
        name: SockOptName,
        value: SockOptValue,
    ) -> Result<(), Refusal> {
        let Some(socket) = self.sockets.open.get(&call.sock) else {
            return Ok(());
        };
        let flag = |value: SockOptValue| match value {
            SockOptValue::Flag(flag) => flag,
            SockOptValue::Number(number) => number != 0,
        };
        let inner = &socket.socket;
        let ((result, c_args), at) = match name {
            SockOptName::ReuseAddr => {
                let on = flag(value);
                timed(|| {
                    (
                        inner.set_reuse_address(on),
                        format!("SOL_SOCKET, SO_REUSEADDR, [{}], 4", on as i32),
                    )
                })
            }
            SockOptName::NoDelay => {
                let on = flag(value);
                timed(|| {
                    (
                        inner.set_tcp_nodelay(on),
                        format!("IPPROTO_TCP, TCP_NODELAY, [{}], 4", on as i32),
                    )
                })
            }
            SockOptName::Linger => match value {
                SockOptValue::Flag(false) => timed(|| {
                    (
                        inner.set_linger(None),
                        "SOL_SOCKET, SO_LINGER, {l_onoff=0, l_linger=0}, 8".to_string(),
                    )
                }),
                SockOptValue::Number(seconds) if seconds >= 0 => timed(|| {
                    (
                        inner.set_linger(Some(Duration::from_secs(seconds as u64))),
                        format!("SOL_SOCKET, SO_LINGER, {{l_onoff=1, l_linger={seconds}}}, 8"),
                    )
                }),
                _ => {
                    return Err(refuse(
                        call.id,
                        ErrorCode::BadArgs,
                        "SO_LINGER takes the linger time in seconds (0 makes close send RST), or false to turn it off.",
                    ));
                }
            },
            SockOptName::Linger2 => match value {
                SockOptValue::Number(seconds) if (1..=MAX_LINGER2_SECONDS).contains(&seconds) => {
                    timed(|| {
                        (
                            sys::set_linger2(inner.as_raw_fd(), seconds),
                            format!("IPPROTO_TCP, TCP_LINGER2, [{seconds}], 4"),
                        )
                    })
                }
                _ => {
                    return Err(refuse(
                        call.id,
                        ErrorCode::BadArgs,
                        format!(
                            "TCP_LINGER2 takes the FIN_WAIT2 timeout in seconds, from 1 to {MAX_LINGER2_SECONDS}."
                        ),
                    ));
                }
            },
        };
        let result = result.map(|()| 0);
        let mut event = call.answered(
            &result,
            format!(
                "setsockopt({}, {c_args}){}",
                call.fd,
                render::result(&result)
            ),
            at,
        );
        if result.is_ok() {
            event.note = match (name, value) {
                (SockOptName::Linger, SockOptValue::Number(0)) => Some(Note::AbortiveClose),
                (SockOptName::Linger2, SockOptValue::Number(seconds)) => {
                    Some(Note::FinWait2Timeout { seconds })
                }
                (SockOptName::ReuseAddr, value) if flag(value) => Some(Note::ReuseAddress),
                _ => None,
            };
        }
        self.emit(at, event);
        Ok(())
    }
}
