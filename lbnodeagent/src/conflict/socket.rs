//! The packet sockets of the prober: one per interface, and a thread per socket that reads
//! the answers to probes (a blocking read with a timeout: registering a raw fd with tokio
//! would take unsafe code).

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::errno::Errno;
use nix::ifaddrs::getifaddrs;
use nix::sys::socket::{
    AddressFamily, LinkAddr, MsgFlags, SockFlag, SockProtocol, SockType, bind, recv, send,
    setsockopt, socket, sockopt,
};
use nix::sys::time::TimeVal;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::warn;

use super::packet::{self, Answer};
use super::rules::Mac;

/// A packet socket on one interface, and the thread reading answers from it (a blocking read
/// with a timeout: registering a raw fd with tokio would take unsafe code).
pub(super) struct Socket {
    fd: Arc<OwnedFd>,
    pub(super) mac: Mac,
    stop: Arc<AtomicBool>,
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// How long the reading thread blocks before it looks whether it should stop.
const READ_TIMEOUT: Duration = Duration::from_millis(200);

impl Socket {
    pub(super) fn open(interface: &str, answers: mpsc::Sender<Heard>) -> Result<Self, String> {
        let link: LinkAddr = getifaddrs()
            .map_err(|e| format!("getifaddrs: {e}"))?
            .filter(|a| a.interface_name == interface)
            .find_map(|a| a.address.and_then(|s| s.as_link_addr().copied()))
            .ok_or("no such interface, or no link-layer address")?;
        let mac = link.addr().ok_or("no MAC address")?;
        let fd = socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            Some(SockProtocol::EthAll),
        )
        .map_err(|e| format!("packet socket: {e}"))?;
        bind(fd.as_raw_fd(), &link).map_err(|e| format!("bind: {e}"))?;
        setsockopt(
            &fd,
            sockopt::ReceiveTimeout,
            &TimeVal::new(0, READ_TIMEOUT.as_micros() as _),
        )
        .map_err(|e| format!("receive timeout: {e}"))?;
        let fd = Arc::new(fd);
        let stop = Arc::new(AtomicBool::new(false));
        let (reader, stopped, name) = (fd.clone(), stop.clone(), interface.to_string());
        std::thread::Builder::new()
            .name(format!("probe-{interface}"))
            .spawn(move || read_answers(&reader, mac, &name, &stopped, &answers))
            .map_err(|e| format!("reader thread: {e}"))?;
        Ok(Self { fd, mac, stop })
    }

    pub(super) fn send(&self, frame: &[u8]) -> nix::Result<()> {
        send(self.fd.as_raw_fd(), frame, MsgFlags::empty()).map(drop)
    }

    /// The answers the kernel holds for this socket now, read without waiting: the prober
    /// reads them itself before it calls a probe unanswered, so an answer that arrived in time
    /// counts even when the reading thread has not run yet (a starved process: a loaded node,
    /// or every agent busy at once after an API server's return).
    pub(super) fn drain(&self) -> Vec<Answer> {
        // On the stack: the prober drains every step (tens of times a second).
        let mut buf = [0u8; 2048];
        let mut answers = Vec::new();
        // Bounded: a flood of frames cannot keep the prober here.
        for _ in 0..1024 {
            match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok(n) => answers.extend(packet::answer(&buf[..n], self.mac)),
                Err(Errno::EINTR) => {}
                Err(_) => break,
            }
        }
        answers
    }
}

fn read_answers(
    fd: &OwnedFd,
    mac: Mac,
    interface: &str,
    stop: &AtomicBool,
    answers: &mpsc::Sender<Heard>,
) {
    let mut buf = vec![0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        match recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(n) => {
                // Stamped on arrival: the loop may see it later than the prober's next tick.
                if let Some(answer) = packet::answer(&buf[..n], mac)
                    && answers
                        .blocking_send((interface.to_string(), answer, Instant::now()))
                        .is_err()
                {
                    return;
                }
            }
            Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(e) => {
                warn!(interface, error = %e, "reading the conflict probe socket failed");
                return;
            }
        }
    }
}

/// An answer, the interface it came on, and when it arrived.
pub(super) type Heard = (String, Answer, Instant);
