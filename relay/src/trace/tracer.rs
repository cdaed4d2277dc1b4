//! The ptrace loop: runs a program as a traced child, follows its forks and
//! threads, and reports each socket call it makes, with its arguments read
//! from its memory (`process_vm_readv`) and each socket it makes copied for
//! the lab (`pidfd_getfd`).
//!
//! The kernel stops the program at each system call's entry and exit
//! (`PTRACE_SYSCALL`); `PTRACE_GET_SYSCALL_INFO` says which stop it is and
//! gives the call's number and arguments on any architecture. A second
//! thread watches the calls in flight and reports any still in the kernel
//! after [`SLEEPS_AFTER_US`]: the thread really sleeps there.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::io::{self, IoSliceMut};
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::sys::ptrace::{self, Event, Options};
use nix::sys::signal::Signal;
use nix::sys::uio::{RemoteIoVec, process_vm_readv};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use protocol::Role;

use super::link::Link;
use super::report::{Message, Report, SLEEPS_AFTER_US, TracedCall};
use super::syscalls::{self, AtEntry, Memory, Sys};
use crate::engine::clock;

/// How the traced program ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    Exited(i32),
    Killed(Signal),
}

/// A call the program is in, from its entry stop to its exit stop.
struct InCall {
    sys: Sys,
    args: [u64; 6],
    entry: AtEntry,
    entered: u64,
    process: u32,
}

/// A process (thread group): its lane and the socket fds it holds.
struct Process {
    lane: String,
    sockets: HashSet<i32>,
}

/// The calls in the kernel now, for the timer that reports the sleeping ones.
#[derive(Default)]
struct InFlight {
    calls: HashMap<Pid, Flight>,
    done: bool,
}

struct Flight {
    call: TracedCall,
    due: Instant,
    reported: bool,
}

struct Tracer {
    link: Arc<Link>,
    role: Role,
    threads: HashMap<Pid, u32>,
    processes: HashMap<u32, Process>,
    in_call: HashMap<Pid, Option<InCall>>,
    flight: Arc<(Mutex<InFlight>, Condvar)>,
    /// Children reported by a fork event whose first stop has not come yet,
    /// and first stops that came before their fork event.
    expected: HashSet<Pid>,
    early: HashSet<Pid>,
    /// Reports stop once the relay has gone; the program runs on.
    lost: bool,
}

/// Runs `program` under ptrace until every process of it has ended,
/// reporting to `link`. Must run on the thread that stays its tracer.
pub fn trace(
    program: &OsString,
    args: &[OsString],
    link: Arc<Link>,
    role: Role,
) -> io::Result<Ending> {
    let mut command = std::process::Command::new(program);
    command.args(args);
    // SAFETY: ptrace(PTRACE_TRACEME) is async-signal-safe, which is all a
    // pre_exec hook may call.
    unsafe {
        command.pre_exec(|| ptrace::traceme().map_err(io::Error::from));
    }
    let child = command
        .spawn()
        .map_err(|error| explain_spawn(program, error))?;
    let main = Pid::from_raw(child.id() as i32);
    // The child stops with SIGTRAP once exec has replaced it with the program.
    match waitpid(main, Some(WaitPidFlag::__WALL))? {
        WaitStatus::Stopped(_, Signal::SIGTRAP) => {}
        other => {
            return Err(io::Error::other(format!(
                "the program did not start: {other:?}"
            )));
        }
    }
    ptrace::setoptions(
        main,
        Options::PTRACE_O_TRACESYSGOOD
            | Options::PTRACE_O_TRACEFORK
            | Options::PTRACE_O_TRACEVFORK
            | Options::PTRACE_O_TRACECLONE
            | Options::PTRACE_O_TRACEEXEC
            | Options::PTRACE_O_EXITKILL,
    )?;
    let flight = Arc::new((Mutex::new(InFlight::default()), Condvar::new()));
    let timer = {
        let (flight, link) = (Arc::clone(&flight), Arc::clone(&link));
        std::thread::Builder::new()
            .name("trace-timer".into())
            .spawn(move || report_sleepers(&flight, &link))?
    };
    let mut tracer = Tracer {
        link,
        role,
        threads: HashMap::new(),
        processes: HashMap::new(),
        in_call: HashMap::new(),
        flight: Arc::clone(&flight),
        expected: HashSet::new(),
        early: HashSet::new(),
        lost: false,
    };
    tracer.add_process(main, None);
    ptrace::syscall(main, None)?;
    let ending = tracer.run(main);
    if let Ok(mut flight) = flight.0.lock() {
        flight.done = true;
    }
    flight.1.notify_all();
    let _ = timer.join();
    ending
}

fn explain_spawn(program: &OsString, error: io::Error) -> io::Error {
    // A process has one tracer: under a debugger or `strace -f`, the child
    // is already traced by it when it asks for relay trace.
    if let (Some(libc::EPERM), Some(tracer)) = (error.raw_os_error(), own_tracer()) {
        return io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "relay trace is itself being traced (by process {tracer}, a debugger or \
                 `strace -f`), and a program can have only one tracer, so {} cannot be \
                 traced here. Run relay trace outside it.",
                program.to_string_lossy()
            ),
        );
    }
    if error.raw_os_error() == Some(libc::EPERM) {
        return io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "the kernel does not let this user trace {}: ptrace is not permitted here. \
                 On a desktop, `sudo sysctl kernel.yama.ptrace_scope=1` allows a program to \
                 trace its own children (0 allows more); in a container, run it with \
                 --cap-add=SYS_PTRACE and a seccomp profile that allows ptrace.",
                program.to_string_lossy()
            ),
        );
    }
    io::Error::new(
        error.kind(),
        format!("could not start {}: {error}", program.to_string_lossy()),
    )
}

/// The process tracing this one, if one is (`TracerPid` in /proc).
fn own_tracer() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let tracer: u32 = status
        .lines()
        .find_map(|line| line.strip_prefix("TracerPid:"))?
        .trim()
        .parse()
        .ok()?;
    (tracer != 0).then_some(tracer)
}

/// The timer thread: reports each call in the kernel past its due time, once.
fn report_sleepers(flight: &(Mutex<InFlight>, Condvar), link: &Link) {
    let Ok(mut state) = flight.0.lock() else {
        return;
    };
    loop {
        if state.done {
            return;
        }
        let now = Instant::now();
        let mut next_due: Option<Instant> = None;
        for entry in state.calls.values_mut().filter(|entry| !entry.reported) {
            if entry.due <= now {
                entry.reported = true;
                // Sent under the lock: the call's return, which takes the
                // lock first, can only be reported after this.
                let mut sleeping = entry.call.clone();
                sleeping.at = clock::now();
                let _ = link.send(&Message::Report(Report::Sleeps(sleeping)), None);
            } else {
                next_due = Some(next_due.map_or(entry.due, |due| due.min(entry.due)));
            }
        }
        state = match next_due {
            Some(due) => match flight
                .1
                .wait_timeout(state, due.saturating_duration_since(now))
            {
                Ok((state, _)) => state,
                Err(_) => return,
            },
            None => match flight.1.wait(state) {
                Ok(state) => state,
                Err(_) => return,
            },
        };
    }
}

/// `PTRACE_GET_SYSCALL_INFO`, with the size of the buffer the kernel may
/// fill: nix's `syscall_info` passes none, and the kernel then copies
/// nothing into it.
fn syscall_info(pid: Pid) -> Option<libc::ptrace_syscall_info> {
    // SAFETY: the struct is plain data, for which all zeroes is valid.
    let mut info: libc::ptrace_syscall_info = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::ptrace_syscall_info>();
    // SAFETY: the kernel writes at most `size` bytes into `info`.
    let copied = unsafe {
        libc::ptrace(
            libc::PTRACE_GET_SYSCALL_INFO,
            pid.as_raw(),
            size as *mut libc::c_void,
            (&mut info as *mut libc::ptrace_syscall_info).cast::<libc::c_void>(),
        )
    };
    (copied > 0).then_some(info)
}

/// A traced process's memory.
struct Tracee(Pid);

impl Memory for Tracee {
    fn read(&self, address: u64, length: usize) -> Option<Vec<u8>> {
        if address == 0 || length == 0 {
            return (length == 0).then(Vec::new);
        }
        let mut buffer = vec![0u8; length];
        let remote = [RemoteIoVec {
            base: address as usize,
            len: length,
        }];
        let read = process_vm_readv(self.0, &mut [IoSliceMut::new(&mut buffer)], &remote).ok()?;
        buffer.truncate(read);
        Some(buffer)
    }
}

/// The program's name, as the kernel knows it (`/proc/PID/comm`).
fn program_name(pid: Pid) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|name| name.trim_end().to_string())
        .unwrap_or_else(|_| "program".to_string())
}

/// The thread group a thread belongs to.
fn thread_group(pid: Pid) -> u32 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Tgid:"))
                .and_then(|tgid| tgid.trim().parse().ok())
        })
        .unwrap_or(pid.as_raw() as u32)
}

/// A copy of another process's fd, as the lab keeps it (`pidfd_getfd`).
fn copy_fd(process: u32, fd: i32) -> Option<OwnedFd> {
    // SAFETY: plain system calls; each fd they return is checked and owned.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, process as libc::pid_t, 0);
        if pidfd < 0 {
            return None;
        }
        let pidfd = OwnedFd::from_raw_fd(pidfd as i32);
        let copy = libc::syscall(
            libc::SYS_pidfd_getfd,
            std::os::fd::AsRawFd::as_raw_fd(&pidfd),
            fd,
            0,
        );
        (copy >= 0).then(|| OwnedFd::from_raw_fd(copy as i32))
    }
}

impl Tracer {
    fn add_process(&mut self, pid: Pid, parent: Option<u32>) {
        let process = pid.as_raw() as u32;
        let lane = format!("{}[{process}]", program_name(pid));
        let sockets = parent
            .and_then(|parent| self.processes.get(&parent))
            .map(|parent| parent.sockets.clone())
            .unwrap_or_default();
        if let Some(parent) = parent {
            self.report(
                Report::Forked {
                    parent,
                    child: process,
                    lane: lane.clone(),
                },
                None,
            );
        }
        self.processes.insert(process, Process { lane, sockets });
        self.threads.insert(pid, process);
    }

    /// Holds the program, in the stop it is in, until the relay answers that
    /// the lab has handled the report just sent; a relay that answers
    /// anything else, or is gone, is lost, and the program runs on untraced.
    fn wait_until_handled(&mut self) {
        if !self.lost && !matches!(self.link.reply(), Ok(super::report::Reply::Handled)) {
            self.lost = true;
        }
    }

    fn report(&mut self, report: Report, passing: Option<&OwnedFd>) {
        if self.lost {
            return;
        }
        let passing = passing.map(AsFd::as_fd);
        if let Err(error) = self.link.send(&Message::Report(report), passing) {
            tracing::warn!(%error, "lost the relay; the program runs on untraced");
            self.lost = true;
        }
    }

    fn run(&mut self, main: Pid) -> io::Result<Ending> {
        let mut ending = Ending::Exited(0);
        loop {
            let status = match waitpid(None, Some(WaitPidFlag::__WALL)) {
                Ok(status) => status,
                Err(nix::errno::Errno::ECHILD) => return Ok(ending),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(error) => return Err(error.into()),
            };
            // A tracee that vanished (killed) may refuse a restart: ESRCH.
            let _ = match status {
                WaitStatus::PtraceSyscall(pid) => {
                    self.syscall_stop(pid);
                    ptrace::syscall(pid, None)
                }
                WaitStatus::PtraceEvent(pid, _, event) => {
                    self.event(pid, event);
                    ptrace::syscall(pid, None)
                }
                WaitStatus::Stopped(pid, signal) => {
                    if !self.threads.contains_key(&pid) || self.expected.remove(&pid) {
                        // A new thread or child's first stop: not a signal
                        // for the program.
                        if !self.threads.contains_key(&pid) {
                            self.early.insert(pid);
                        }
                        ptrace::syscall(pid, None)
                    } else {
                        ptrace::syscall(pid, Some(signal))
                    }
                }
                WaitStatus::Exited(pid, code) => {
                    if pid == main {
                        ending = Ending::Exited(code);
                    }
                    self.ended(pid, Some(code), None);
                    Ok(())
                }
                WaitStatus::Signaled(pid, signal, _) => {
                    if pid == main {
                        ending = Ending::Killed(signal);
                    }
                    self.ended(pid, None, Some(signal));
                    Ok(())
                }
                _ => Ok(()),
            };
        }
    }

    fn event(&mut self, pid: Pid, event: i32) {
        let Some(&process) = self.threads.get(&pid) else {
            return;
        };
        let forked =
            event == Event::PTRACE_EVENT_FORK as i32 || event == Event::PTRACE_EVENT_VFORK as i32;
        if forked || event == Event::PTRACE_EVENT_CLONE as i32 {
            let Ok(child) = ptrace::getevent(pid).map(|child| Pid::from_raw(child as i32)) else {
                return;
            };
            if !self.early.remove(&child) {
                self.expected.insert(child);
            }
            if !forked && thread_group(child) == process {
                self.threads.insert(child, process);
            } else {
                self.add_process(child, Some(process));
            }
        } else if event == Event::PTRACE_EVENT_EXEC as i32 {
            if let Some(entry) = self.processes.get_mut(&process) {
                entry.lane = format!("{}[{process}]", program_name(pid));
            }
            self.in_call.remove(&pid);
        }
    }

    fn ended(&mut self, pid: Pid, status: Option<i32>, signal: Option<Signal>) {
        self.in_call.remove(&pid);
        let Some(process) = self.threads.remove(&pid) else {
            return;
        };
        if pid.as_raw() as u32 != process {
            return;
        }
        if let Some(entry) = self.processes.remove(&process) {
            self.report(
                Report::Exited {
                    process,
                    ending: protocol::Exited {
                        lane: entry.lane,
                        status,
                        signal: signal.map(|signal| signal.as_str().to_string()),
                    },
                    at: clock::now(),
                },
                None,
            );
        }
    }

    fn syscall_stop(&mut self, pid: Pid) {
        let Some(info) = syscall_info(pid) else {
            return;
        };
        match info.op {
            libc::PTRACE_SYSCALL_INFO_ENTRY => {
                // SAFETY: op says the entry member is the one filled in.
                let entry = unsafe { info.u.entry };
                let call = self.entered(pid, entry.nr, entry.args);
                self.in_call.insert(pid, call);
            }
            libc::PTRACE_SYSCALL_INFO_EXIT => {
                // SAFETY: op says the exit member is the one filled in.
                let value = unsafe { info.u.exit.sval };
                if let Some(Some(call)) = self.in_call.remove(&pid) {
                    self.returned(pid, call, value);
                }
            }
            _ => {}
        }
    }

    /// A call's entry: is it one the lesson shows, and what did it hand
    /// the kernel?
    fn entered(&mut self, pid: Pid, number: u64, args: [u64; 6]) -> Option<InCall> {
        let sys = Sys::from_call(number, &args)?;
        let process = *self.threads.get(&pid)?;
        let known = self.processes.get(&process)?;
        let shown = match sys {
            Sys::Socket => syscalls::is_tcp_socket(&args),
            // A dup2 of another file onto a socket's fd closes the socket.
            _ => {
                known.sockets.contains(&(args[0] as i32))
                    || sys
                        .closes(&args)
                        .is_some_and(|fd| known.sockets.contains(&fd))
            }
        };
        if !shown {
            return None;
        }
        let entered = clock::now();
        let entry = syscalls::at_entry(sys, &args, &Tracee(pid));
        let call = InCall {
            sys,
            args,
            entry,
            entered,
            process,
        };
        let closes = sys.closes(&args).filter(|fd| known.sockets.contains(fd));
        if let (Some(fd), false) = (closes, self.lost) {
            // The lab lets go of its copy before the program's close runs
            // (or the dup2 that closes the fd it reuses).
            let closing = Report::Closing { process, fd };
            self.report(closing, None);
            self.wait_until_handled();
        }
        if sys.may_sleep() {
            let sleeping = self.traced_call(pid, &call, None);
            if let Ok(mut flight) = self.flight.0.lock() {
                flight.calls.insert(
                    pid,
                    Flight {
                        call: sleeping,
                        due: Instant::now() + Duration::from_micros(SLEEPS_AFTER_US),
                        reported: false,
                    },
                );
            }
            self.flight.1.notify_all();
        }
        Some(call)
    }

    fn traced_call(&self, pid: Pid, call: &InCall, result: Option<i64>) -> TracedCall {
        let written = syscalls::written(call.sys, &call.args, &call.entry, result, &Tracee(pid));
        let lane = self
            .processes
            .get(&call.process)
            .map(|process| process.lane.clone())
            .unwrap_or_default();
        let (ret, errno) = match result.map(syscalls::as_result) {
            Some(Ok(value)) => (value, None),
            Some(Err(error)) => (-1, error.raw_os_error()),
            None => (0, None),
        };
        TracedCall {
            process: call.process,
            lane,
            role: self.role,
            op: call.sys.op(),
            fd: if call.sys.on_fd() {
                call.args[0] as i32
            } else {
                ret as i32
            },
            c: written.c,
            ret,
            errno,
            entered: call.entered,
            at: call.entered,
            addr: written.addr,
            data: written.data,
            new_fd: None,
        }
    }

    fn returned(&mut self, pid: Pid, call: InCall, value: i64) {
        // Taken under the timer's lock: a sleep it reports comes first.
        let at = match self.flight.0.lock() {
            Ok(mut flight) => {
                flight.calls.remove(&pid);
                clock::now()
            }
            Err(_) => clock::now(),
        };
        let mut traced = self.traced_call(pid, &call, Some(value));
        traced.at = at;
        let made = (value >= 0).then_some(value as i32);
        let mut copy = None;
        match call.sys {
            Sys::Socket | Sys::Accept | Sys::Accept4 => {
                if let Some(fd) = made {
                    if let Some(process) = self.processes.get_mut(&call.process) {
                        process.sockets.insert(fd);
                    }
                    copy = copy_fd(call.process, fd);
                    if call.sys != Sys::Socket {
                        traced.new_fd = Some(fd);
                    }
                }
            }
            Sys::Close => {
                if let Some(process) = self.processes.get_mut(&call.process) {
                    process.sockets.remove(&(call.args[0] as i32));
                }
            }
            // The copy is the same socket under another fd.
            Sys::Dup | Sys::Dup2 | Sys::Dup3 | Sys::FcntlDup => {
                if let (Some(fd), Some(process)) = (made, self.processes.get_mut(&call.process)) {
                    if process.sockets.contains(&(call.args[0] as i32)) {
                        process.sockets.insert(fd);
                    } else {
                        // Another file took the socket's fd.
                        process.sockets.remove(&fd);
                    }
                    traced.new_fd = Some(fd);
                }
            }
            _ => {}
        }
        let made_socket = copy.is_some();
        self.report(Report::Returned(traced), copy.as_ref());
        // Held until the lab has the socket: its first segment, a connect's
        // SYN, must find it there (see `Report::Returned`).
        if made_socket {
            self.wait_until_handled();
        }
    }
}
