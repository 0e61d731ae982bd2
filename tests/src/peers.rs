//! Misbehaving TCP peers against a real kernel TCP server, and the kernel's
//! own view of the victim's sockets (`ss -tino`) to prove what each peer did.
//!
//! The victim is a [`TcpServer`](crate::lab::TcpServer) in
//! [`OnAccept::Write`](crate::lab::OnAccept::Write) mode
//! ([`Lab::victim_server`]): it writes a large response to every connection
//! and never reads. Against it:
//!
//! - [`KernelPeer::slow_reader`]: a kernel socket with a tiny `SO_RCVBUF`
//!   that never reads. Its window closes the honest way (the right edge never
//!   moves left), everything sent gets acknowledged, and the victim sits in
//!   the persist timer sending zero-window probes (RFC 9293 §3.8.6.1;
//!   `tcp_probe_timer()`, `tcp_send_probe0()`).
//! - [`RawPeer`] with [`Misbehaviour::ShrinkWindow`]: "treason uncloaked".
//!   It acknowledges only part of the data in flight and advertises a zero
//!   window, moving the right edge left: RFC 9293 §3.8.6 says a receiver
//!   SHOULD NOT shrink the window (SHLD-14) and a sender MUST be robust
//!   against it (MUST-34; RFC 7323 §2.4). The victim's retransmission timer
//!   then fires with `snd_wnd == 0` and data in flight, which
//!   `tcp_retransmit_timer()` (net/ipv4/tcp_timer.c) handles in its
//!   `!tp->snd_wnd && !SOCK_DEAD` branch: retransmits become zero-window
//!   probes that back off but never time the connection out.
//! - [`RawPeer`] with [`Misbehaviour::ZeroWindowHandshake`]: sockstress. The
//!   final ACK of the handshake advertises window 0, and every probe is
//!   answered with window 0: the victim's socket is pinned in the persist
//!   timer from its first byte.
//! - [`KernelPeer::reader`]: a normal client, the control.
//!
//! Raw peers speak for an address that no kernel in the lab owns (e.g.
//! [`RAW_PEER_V4`]), with their own MAC address, through an `AF_PACKET`
//! socket on the client's veth. The client kernel sees the victim's frames as
//! addressed to another host (`PACKET_OTHERHOST`) and drops them before IP,
//! so it never answers with RSTs or ICMP, and needs no firewall rule; the
//! victim reaches the peer's MAC through a static neighbour entry, which goes
//! with the server namespace. `AF_PACKET` works the same for IPv4 and IPv6
//! (raw IPv6 sockets do not take `IP_HDRINCL`).

use std::{
    collections::BTreeMap,
    ffi::CString,
    io,
    net::{IpAddr, SocketAddr},
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TcpOptionElement, TransportSlice};

use crate::lab::{Lab, NetNs, connect, enter, sh};

/// An IPv4 address in the lab's client subnet that no kernel owns: raw peers
/// use it.
pub const RAW_PEER_V4: &str = "198.18.0.10";
/// The IPv6 counterpart of [`RAW_PEER_V4`].
pub const RAW_PEER_V6: &str = "2001:db8::10";

/// Sequence-space order (RFC 9293 §3.4: arithmetic modulo 2^32).
fn seq_before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

// ---------------------------------------------------------------------------
// Kernel-socket peers
// ---------------------------------------------------------------------------

/// `SO_RCVBUF` of the slow reader. The kernel doubles it and raises it to
/// `SOCK_MIN_RCVBUF`; a few KiB close the window after a handful of segments.
pub const SLOW_READER_RCVBUF: usize = 4096;

/// How a [`KernelPeer`] behaves.
#[derive(Clone, Copy, Debug)]
pub struct KernelPeerOptions {
    /// `SO_RCVBUF`, set before `connect` so that it also sizes the window
    /// offered in the SYN and the window scale (`tcp_select_initial_window()`)
    /// and turns off receive-buffer autotuning. `None`: kernel defaults.
    pub rcvbuf: Option<usize>,
    /// Read everything (a normal client), or never read (a slow reader).
    pub read: bool,
    /// Close the connection after this long, even if not dropped before.
    pub hold: Duration,
}

/// A client built on a kernel TCP socket in a namespace. Drop (or
/// [`KernelPeerOptions::hold`] running out) closes the socket; unread data
/// make that close a RST (RFC 2525 §2.17, `tcp_close()`), which frees the
/// victim's socket at once.
pub struct KernelPeer {
    local: SocketAddr,
    read: Arc<AtomicU64>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl KernelPeer {
    /// A slow reader: [`SLOW_READER_RCVBUF`], never reads, holds the
    /// connection for at most 20 s.
    pub fn slow_reader(ns: &NetNs, src: IpAddr, server: SocketAddr) -> Self {
        Self::start(
            ns,
            src,
            server,
            KernelPeerOptions {
                rcvbuf: Some(SLOW_READER_RCVBUF),
                read: false,
                hold: Duration::from_secs(20),
            },
        )
    }

    /// A normal client: default buffers, reads everything, holds the
    /// connection for at most 20 s.
    pub fn reader(ns: &NetNs, src: IpAddr, server: SocketAddr) -> Self {
        Self::start(
            ns,
            src,
            server,
            KernelPeerOptions {
                rcvbuf: None,
                read: true,
                hold: Duration::from_secs(20),
            },
        )
    }

    /// Connects from `src` (an address of `ns`) to `server`; panics unless
    /// the connection is established within 2 s.
    pub fn start(ns: &NetNs, src: IpAddr, server: SocketAddr, opts: KernelPeerOptions) -> Self {
        let path = ns.path();
        let read = Arc::new(AtomicU64::new(0));
        let read2 = read.clone();
        let (local_tx, local_rx) = mpsc::channel();
        let (stop, stop_rx) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            enter(&path);
            let deadline = Instant::now() + opts.hold;
            let sock = match connect(src, server, Duration::from_secs(2), opts.rcvbuf) {
                Ok(s) => s,
                Err(e) => {
                    let _ = local_tx.send(Err(e));
                    return;
                }
            };
            let local = sock.local_addr().ok().and_then(|a| a.as_socket());
            let _ = local_tx.send(local.ok_or_else(|| io::Error::other("no local address")));
            if !opts.read {
                let _ = stop_rx.recv_timeout(opts.hold);
                return;
            }
            sock.set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            let mut reader = &sock;
            while Instant::now() < deadline
                && matches!(stop_rx.try_recv(), Err(mpsc::TryRecvError::Empty))
            {
                match io::Read::read(&mut reader, &mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        read2.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => break,
                }
            }
            // Keep the (idle) connection until stopped, so that the victim's
            // side stays inspectable.
            let _ = stop_rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        });
        let local = local_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("kernel peer thread answers")
            .unwrap_or_else(|e| panic!("connect {src} -> {server}: {e}"));
        Self {
            local,
            read,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The peer's address and port: the victim's `ss` shows it as the peer.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// Bytes read so far (0 for a slow reader).
    pub fn bytes_read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    /// Waits until at least `bytes` have been read; false on timeout.
    pub fn wait_read(&self, bytes: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.bytes_read() < bytes {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }
}

impl Drop for KernelPeer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------
// Raw peers
// ---------------------------------------------------------------------------

/// What a [`RawPeer`] does once connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Open a window, take the data the victim sends into it without
    /// acknowledging, then acknowledge about half with window 0 and answer
    /// every retransmission with the same zero-window ACK.
    ShrinkWindow,
    /// Advertise window 0 in the handshake's final ACK and answer every
    /// zero-window probe with window 0 (sockstress).
    ZeroWindowHandshake,
}

/// How a [`RawPeer`] behaves. Every run is bounded by `duration` and
/// `max_packets`.
#[derive(Clone, Debug)]
pub struct RawPeerOptions {
    pub behaviour: Misbehaviour,
    /// Window in the SYN (0 also makes it a zero-window SYN, which blocker's
    /// XDP program counts).
    pub syn_window: u16,
    /// Window opened after the handshake ([`Misbehaviour::ShrinkWindow`]):
    /// how much the victim may put in flight before the shrink.
    pub window: u16,
    /// MSS option of the SYN: small segments make "part of the data in
    /// flight" several segments.
    pub mss: u16,
    /// Sent after the handshake, like a request (may be empty).
    pub request: Vec<u8>,
    /// The peer stops (and resets the connection) after this long.
    pub duration: Duration,
    /// The peer stops after sending this many segments.
    pub max_packets: u32,
}

impl RawPeerOptions {
    pub fn window_shrinker() -> Self {
        Self {
            behaviour: Misbehaviour::ShrinkWindow,
            syn_window: 8000,
            window: 8000,
            mss: 1000,
            request: b"GET / HTTP/1.0\r\n\r\n".to_vec(),
            duration: Duration::from_secs(15),
            max_packets: 200,
        }
    }

    pub fn zero_window_handshake() -> Self {
        Self {
            behaviour: Misbehaviour::ZeroWindowHandshake,
            window: 0,
            ..Self::window_shrinker()
        }
    }
}

/// How far a [`RawPeer`] has got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Sending the SYN, waiting for the SYN-ACK.
    #[default]
    Handshake,
    /// Established, window open, taking data ([`Misbehaviour::ShrinkWindow`]).
    Receiving,
    /// The window is closed: from the handshake's final ACK
    /// ([`Misbehaviour::ZeroWindowHandshake`]) or the shrinking ACK.
    WindowClosed,
    /// Finished (stopped, out of time or packets, reset, or failed).
    Stopped,
}

/// What a [`RawPeer`] saw and did; a snapshot.
#[derive(Clone, Debug, Default)]
pub struct RawStats {
    pub phase: Phase,
    /// Segments sent / received on this connection (frames of other hosts
    /// on the veth are not counted).
    pub sent: u32,
    pub received: u32,
    /// Distinct bytes of the victim's response received in order.
    pub data_bytes: u32,
    /// Bytes of the response acknowledged in the shrinking ACK.
    pub acked_bytes: u32,
    /// Bytes left in flight, unacknowledged, when the window closed.
    pub in_flight: u32,
    /// Data segments the victim sent again (seq below what was received):
    /// with the window closed these are its retransmission timer's probes.
    pub retransmissions: u32,
    /// Zero-length segments one below the acknowledged sequence number: the
    /// persist timer's zero-window probes (`tcp_xmit_probe_skb()`).
    pub zero_window_probes: u32,
    /// The victim reset the connection.
    pub reset_by_victim: bool,
    /// Why the peer stopped early, if it failed.
    pub error: Option<String>,
}

struct Shared {
    stats: Mutex<RawStats>,
    changed: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn update(&self, f: impl FnOnce(&mut RawStats)) {
        f(&mut self.stats.lock().unwrap());
        self.changed.notify_all();
    }
}

/// A user-space TCP peer on an `AF_PACKET` socket in the client namespace;
/// see the module documentation. Drop stops it: the thread resets the
/// connection (so the victim frees its socket) and is joined.
pub struct RawPeer {
    local: SocketAddr,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl RawPeer {
    /// Treason: see [`Misbehaviour::ShrinkWindow`].
    pub fn window_shrinker(lab: &Lab, src: IpAddr, server: SocketAddr) -> Self {
        Self::start(lab, src, server, RawPeerOptions::window_shrinker())
    }

    /// Sockstress: see [`Misbehaviour::ZeroWindowHandshake`].
    pub fn zero_window_handshake(lab: &Lab, src: IpAddr, server: SocketAddr) -> Self {
        Self::start(lab, src, server, RawPeerOptions::zero_window_handshake())
    }

    /// Starts a peer speaking for `src` towards `server` across `lab`'s
    /// veth. `src` must be in the lab's subnet and owned by no interface of
    /// the client namespace (e.g. [`RAW_PEER_V4`], [`RAW_PEER_V6`]).
    pub fn start(lab: &Lab, src: IpAddr, server: SocketAddr, opts: RawPeerOptions) -> Self {
        let owned = sh(&[
            "ip",
            "-n",
            &lab.client.name,
            "-br",
            "addr",
            "show",
            "to",
            &src.to_string(),
        ]);
        assert!(
            owned.trim().is_empty(),
            "{src} is an address of the client namespace, whose kernel would reset the raw peer's connection; use an unowned one such as {RAW_PEER_V4}"
        );
        let mac = peer_mac(src);
        let mac_text = mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        // A static entry instead of answering ARP/ND ourselves: the victim
        // then never has to resolve the peer, whatever the timing.
        sh(&[
            "ip",
            "-n",
            &lab.server.name,
            "neigh",
            "replace",
            &src.to_string(),
            "lladdr",
            &mac_text,
            "dev",
            &lab.server_if,
            "nud",
            "permanent",
        ]);
        let server_mac = lab.server.mac(&lab.server_if);
        let local = SocketAddr::new(src, next_port());
        let shared = Arc::new(Shared {
            stats: Mutex::new(RawStats::default()),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let (ready_tx, ready_rx) = mpsc::channel();
        let path = lab.client.path();
        let iface = lab.client_if.clone();
        let shared2 = shared.clone();
        let thread = std::thread::spawn(move || {
            enter(&path);
            let sock = match PacketSocket::open(&iface) {
                Ok(s) => s,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            let mut conn = Conn {
                wire: Wire {
                    sock,
                    mac,
                    server_mac,
                    local,
                    remote: server,
                    buf: vec![0; 1 << 17],
                },
                shared: shared2.clone(),
                deadline: Instant::now() + opts.duration,
                opts,
                iss: isn(),
                snd_nxt: 0,
                rcv_nxt: 0,
                synchronized: false,
            };
            let result = conn.run();
            if conn.synchronized && !conn.stats().reset_by_victim {
                // RFC 9293 §3.10.7.4: a RST at SND.NXT, which is exactly what
                // the victim expects next, is accepted and frees its socket.
                let _ = conn.wire.send(conn.snd_nxt, None, RST, 0, None, &[]);
            }
            shared2.update(|s| {
                s.phase = Phase::Stopped;
                if let Err(e) = result {
                    s.error = Some(e);
                }
            });
        });
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("raw peer thread answers")
            .unwrap_or_else(|e| panic!("AF_PACKET socket on {}: {e}", lab.client_if));
        Self {
            local,
            shared,
            thread: Some(thread),
        }
    }

    /// The peer's address and port: the victim's `ss` shows it as the peer.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    pub fn stats(&self) -> RawStats {
        self.shared.stats.lock().unwrap().clone()
    }

    /// Waits until `pred` holds for the stats or the peer stops; returns the
    /// stats, `Err` if `pred` did not hold in `timeout`.
    pub fn wait_until(
        &self,
        timeout: Duration,
        pred: impl Fn(&RawStats) -> bool,
    ) -> Result<RawStats, RawStats> {
        let deadline = Instant::now() + timeout;
        let mut s = self.shared.stats.lock().unwrap();
        loop {
            if pred(&s) {
                return Ok(s.clone());
            }
            let now = Instant::now();
            if s.phase == Phase::Stopped || now >= deadline {
                return Err(s.clone());
            }
            s = self
                .shared
                .changed
                .wait_timeout(s, deadline - now)
                .unwrap()
                .0;
        }
    }

    /// Waits until the peer has closed its window; panics with its stats if
    /// it does not within `timeout`.
    pub fn wait_window_closed(&self, timeout: Duration) -> RawStats {
        self.wait_until(timeout, |s| s.phase == Phase::WindowClosed)
            .unwrap_or_else(|s| panic!("raw peer did not close its window in {timeout:?}: {s:?}"))
    }

    /// Stops the peer (it resets the connection) and returns its final stats.
    pub fn stop(mut self) -> RawStats {
        self.join();
        self.stats()
    }

    fn join(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RawPeer {
    fn drop(&mut self) {
        self.join();
    }
}

/// A locally administered MAC for the host that `addr` names, so that each
/// raw peer is a distinct host on the wire.
fn peer_mac(addr: IpAddr) -> [u8; 6] {
    let tail = match addr {
        IpAddr::V4(a) => a.octets(),
        IpAddr::V6(a) => {
            let o = a.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
    [0x02, 0x00, tail[0], tail[1], tail[2], tail[3]]
}

/// A source port unique within this process. Nothing else allocates ports
/// for an address that no kernel owns.
fn next_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    40_000 + NEXT.fetch_add(1, Ordering::Relaxed) % 20_000
}

/// An initial sequence number from the clock (RFC 9293 §3.4.1 wants ISNs
/// that differ between connections; nothing here needs them unguessable).
fn isn() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32).rotate_left(16))
        .unwrap_or(0x1234_5678)
}

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;

/// One TCP segment of the victim, as far as the peer cares.
#[derive(Clone, Copy, Debug)]
struct Segment {
    seq: u32,
    ack: Option<u32>,
    syn: bool,
    fin: bool,
    rst: bool,
    /// Payload length (a GSO frame from the victim's veth may carry many
    /// MSS-sized segments).
    len: u32,
}

/// An `AF_PACKET` socket bound to one interface, receiving every frame on
/// it with a short timeout.
struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    fn open(iface: &str) -> io::Result<Self> {
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket(2); the descriptor is owned right below.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(proto),
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let name = CString::new(iface).map_err(io::Error::other)?;
        // SAFETY: NUL-terminated name; looks the name up in this thread's
        // network namespace.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is a valid sockaddr_ll of the length passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const sll).cast(),
                size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 20_000,
        };
        // SAFETY: SO_RCVTIMEO takes a timeval of the length passed.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const tv).cast(),
                size_of::<libc::timeval>() as u32,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { fd })
    }

    fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: `frame` is valid for its length; the socket is bound to an
        // interface, so no address is needed.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// One frame into `buf`: its full length (larger than `buf` when
    /// truncated), or `None` when the timeout passed first.
    fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        // SAFETY: `buf` is valid for writes of its length. MSG_TRUNC makes
        // the result the frame's real length.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_TRUNC,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(n as usize))
    }
}

/// The peer's end of the wire: builds its frames and picks the victim's
/// segments of this connection out of everything on the veth.
struct Wire {
    sock: PacketSocket,
    mac: [u8; 6],
    server_mac: [u8; 6],
    local: SocketAddr,
    remote: SocketAddr,
    buf: Vec<u8>,
}

impl Wire {
    /// Sends one segment. No options but MSS on a SYN: without window scale
    /// (RFC 7323 §2.2), SACK-permitted (RFC 2018) and timestamps the victim
    /// uses none of them, so the 16-bit window we send is the window in bytes
    /// and every acknowledgment is cumulative. etherparse computes the IP and
    /// TCP checksums: frames from a packet socket get no offload.
    fn send(
        &self,
        seq: u32,
        ack: Option<u32>,
        flags: u8,
        window: u16,
        mss: Option<u16>,
        payload: &[u8],
    ) -> io::Result<()> {
        let eth = PacketBuilder::ethernet2(self.mac, self.server_mac);
        let ip = match (self.local.ip(), self.remote.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
            (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
            _ => return Err(io::Error::other("address families differ")),
        };
        let mut tcp = ip.tcp(self.local.port(), self.remote.port(), seq, window);
        if let Some(a) = ack {
            tcp = tcp.ack(a);
        }
        if flags & SYN != 0 {
            tcp = tcp.syn();
        }
        if flags & FIN != 0 {
            tcp = tcp.fin();
        }
        if flags & RST != 0 {
            tcp = tcp.rst();
        }
        if flags & PSH != 0 {
            tcp = tcp.psh();
        }
        if let Some(m) = mss {
            tcp = tcp
                .options(&[TcpOptionElement::MaximumSegmentSize(m)])
                .map_err(io::Error::other)?;
        }
        let mut frame = Vec::with_capacity(tcp.size(payload.len()));
        tcp.write(&mut frame, payload).map_err(io::Error::other)?;
        self.sock.send(&frame)
    }

    /// The next frame if it is a segment of this connection from the victim.
    fn recv(&mut self) -> io::Result<Option<Segment>> {
        let Some(n) = self.sock.recv(&mut self.buf)? else {
            return Ok(None);
        };
        // Our own frames (outgoing) and other hosts' frames share the veth.
        if n > self.buf.len() || n < 14 || self.buf[..6] != self.mac {
            return Ok(None);
        }
        let Ok(p) = SlicedPacket::from_ethernet(&self.buf[..n]) else {
            return Ok(None);
        };
        let (src, dst): (IpAddr, IpAddr) = match &p.net {
            Some(NetSlice::Ipv4(s)) => (
                s.header().source_addr().into(),
                s.header().destination_addr().into(),
            ),
            Some(NetSlice::Ipv6(s)) => (
                s.header().source_addr().into(),
                s.header().destination_addr().into(),
            ),
            _ => return Ok(None),
        };
        let Some(TransportSlice::Tcp(t)) = &p.transport else {
            return Ok(None);
        };
        if SocketAddr::new(src, t.source_port()) != self.remote
            || SocketAddr::new(dst, t.destination_port()) != self.local
        {
            return Ok(None);
        }
        Ok(Some(Segment {
            seq: t.sequence_number(),
            ack: t.ack().then(|| t.acknowledgment_number()),
            syn: t.syn(),
            fin: t.fin(),
            rst: t.rst(),
            len: t.payload().len() as u32,
        }))
    }
}

/// One connection's state (RFC 9293 §3.3.1 names), driven by its thread.
struct Conn {
    wire: Wire,
    shared: Arc<Shared>,
    opts: RawPeerOptions,
    deadline: Instant,
    iss: u32,
    snd_nxt: u32,
    rcv_nxt: u32,
    synchronized: bool,
}

impl Conn {
    fn stats(&self) -> RawStats {
        self.shared.stats.lock().unwrap().clone()
    }

    fn running(&self) -> bool {
        !self.shared.stop.load(Ordering::Relaxed) && Instant::now() < self.deadline
    }

    fn send(
        &mut self,
        seq: u32,
        ack: Option<u32>,
        flags: u8,
        window: u16,
        payload: &[u8],
    ) -> Result<(), String> {
        if self.stats().sent >= self.opts.max_packets {
            return Err(format!(
                "packet budget of {} segments used up",
                self.opts.max_packets
            ));
        }
        let mss = (flags & SYN != 0).then_some(self.opts.mss);
        self.wire
            .send(seq, ack, flags, window, mss, payload)
            .map_err(|e| format!("send: {e}"))?;
        self.shared.update(|s| s.sent += 1);
        Ok(())
    }

    /// The victim's next segment before `until`, `None` when `until`, the
    /// deadline or a stop comes first.
    fn next(&mut self, until: Instant) -> Result<Option<Segment>, String> {
        while self.running() && Instant::now() < until {
            if let Some(seg) = self.wire.recv().map_err(|e| format!("recv: {e}"))? {
                self.shared.update(|s| {
                    s.received += 1;
                    s.reset_by_victim |= seg.rst;
                });
                if seg.rst {
                    return Err("the victim reset the connection".into());
                }
                return Ok(Some(seg));
            }
        }
        Ok(None)
    }

    fn run(&mut self) -> Result<(), String> {
        self.handshake()?;
        if !self.opts.request.is_empty() {
            let request = std::mem::take(&mut self.opts.request);
            let window = self.open_window();
            self.send(self.snd_nxt, Some(self.rcv_nxt), PSH, window, &request)?;
            self.snd_nxt = self.snd_nxt.wrapping_add(request.len() as u32);
        }
        let ack = match self.opts.behaviour {
            Misbehaviour::ZeroWindowHandshake => self.rcv_nxt,
            Misbehaviour::ShrinkWindow => self.fill_and_shrink()?,
        };
        self.hold_closed(ack)
    }

    /// The window after the handshake: 0 for sockstress.
    fn open_window(&self) -> u16 {
        match self.opts.behaviour {
            Misbehaviour::ZeroWindowHandshake => 0,
            Misbehaviour::ShrinkWindow => self.opts.window,
        }
    }

    /// RFC 9293 §3.5 three-way handshake from our side, SYN sent up to three
    /// times. The final ACK carries [`Self::open_window`].
    fn handshake(&mut self) -> Result<(), String> {
        for _ in 0..3 {
            self.send(self.iss, None, SYN, self.opts.syn_window, &[])?;
            let until = Instant::now() + Duration::from_secs(1);
            while let Some(seg) = self.next(until)? {
                if seg.syn && seg.ack == Some(self.iss.wrapping_add(1)) {
                    self.snd_nxt = self.iss.wrapping_add(1);
                    self.rcv_nxt = seg.seq.wrapping_add(1);
                    self.synchronized = true;
                    let window = self.open_window();
                    self.send(self.snd_nxt, Some(self.rcv_nxt), 0, window, &[])?;
                    let phase = if window == 0 {
                        Phase::WindowClosed
                    } else {
                        Phase::Receiving
                    };
                    self.shared.update(|s| s.phase = phase);
                    return Ok(());
                }
            }
            if !self.running() {
                break;
            }
        }
        Err("no SYN-ACK from the victim".into())
    }

    /// Takes the victim's data into the open window without acknowledging
    /// it, then acknowledges about half (whole segments where possible) with
    /// window 0: the right edge moves from `start + window` back to the
    /// acknowledgment. Returns the acknowledged sequence number.
    fn fill_and_shrink(&mut self) -> Result<u32, String> {
        let start = self.rcv_nxt;
        let give_up = Instant::now() + Duration::from_secs(2);
        // The victim sends the whole window at once; a short quiet gap after
        // some data means it has sent what it will.
        let quiet = Duration::from_millis(100);
        let mut last = None;
        loop {
            let received = self.rcv_nxt.wrapping_sub(start);
            if received >= u32::from(self.opts.window) {
                break;
            }
            let until = last.map_or(give_up, |t: Instant| (t + quiet).min(give_up));
            let Some(seg) = self.next(until)? else {
                break;
            };
            if seg.len > 0 && seg.seq == self.rcv_nxt {
                self.rcv_nxt = self.rcv_nxt.wrapping_add(seg.len);
                last = Some(Instant::now());
                let total = self.rcv_nxt.wrapping_sub(start);
                self.shared.update(|s| s.data_bytes = total);
            }
        }
        let received = self.rcv_nxt.wrapping_sub(start);
        if received < 2 {
            return Err(format!(
                "the victim sent {received} bytes into a {} byte window: nothing in flight to strand",
                self.opts.window
            ));
        }
        let mss = u32::from(self.opts.mss);
        let mut acked = received / 2 / mss * mss;
        if acked == 0 {
            acked = received / 2;
        }
        let ack = start.wrapping_add(acked);
        self.send(self.snd_nxt, Some(ack), 0, 0, &[])?;
        self.shared.update(|s| {
            s.acked_bytes = acked;
            s.in_flight = received - acked;
            s.phase = Phase::WindowClosed;
        });
        Ok(ack)
    }

    /// Keeps the window at 0 with `ack` as the acknowledgment until stopped.
    /// RFC 9293 §3.10.7.4: with a zero receive window no segment carrying
    /// data is acceptable, and an unacceptable segment is answered with an
    /// ACK, so the victim's probes and retransmissions each get one ACK with
    /// window 0; acceptable pure ACKs get none.
    fn hold_closed(&mut self, ack: u32) -> Result<(), String> {
        // Everything below `seen` has been received once already.
        let seen = self.rcv_nxt;
        while self.running() {
            let Some(seg) = self.next(self.deadline)? else {
                continue;
            };
            if seg.len > 0 && seq_before(seg.seq, seen) {
                self.shared.update(|s| s.retransmissions += 1);
            } else if seg.len == 0 && seg.seq == ack.wrapping_sub(1) {
                self.shared.update(|s| s.zero_window_probes += 1);
            }
            if seg.len > 0 || seg.syn || seg.fin || seg.seq != ack {
                self.send(self.snd_nxt, Some(ack), 0, 0, &[])?;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The victim's view: `ss -tino`
// ---------------------------------------------------------------------------

/// The timer `ss -o` shows: `timer:(KIND,EXPIRES,COUNT)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SsTimer {
    /// `on` (retransmission, also tail-loss probe and reordering timers),
    /// `persist` (zero-window probe timer), `keepalive`, `timewait`.
    pub kind: String,
    pub expires: String,
    /// `icsk_retransmits` for `on`, `icsk_probes_out` for `persist`
    /// (`inet_sk_diag_fill()`).
    pub count: u32,
}

/// One TCP socket as `ss -tino` prints it.
#[derive(Clone, Debug)]
pub struct SsSocket {
    pub state: String,
    pub recv_q: u64,
    pub send_q: u64,
    pub local: SocketAddr,
    pub peer: SocketAddr,
    pub timer: Option<SsTimer>,
    /// The `key:value` fields of the `-i` line (`snd_wnd`, `backoff`,
    /// `unacked`, `retrans`, `rto`, ...).
    pub info: BTreeMap<String, String>,
    /// The lines as printed, for assertion messages.
    pub raw: String,
}

impl SsSocket {
    fn number(&self, key: &str) -> Option<u64> {
        self.info.get(key).and_then(|v| v.parse().ok())
    }

    /// `tcpi_snd_wnd`: the peer's last advertised window (scaled), which
    /// `ss` omits when it is 0, like the other counters here. That absence
    /// means 0 only where kernel and `ss` report the field at all (Linux 6.2+
    /// with iproute2 6.2+): [`Self::is_clean`] needs it printed, so a control
    /// connection proves the reporting works.
    pub fn snd_wnd(&self) -> u64 {
        self.number("snd_wnd").unwrap_or(0)
    }

    /// `tcpi_backoff` (`icsk_backoff`): exponential backoff steps of the
    /// retransmission or persist timer; `ss` omits 0.
    pub fn backoff(&self) -> u64 {
        self.number("backoff").unwrap_or(0)
    }

    /// `tcpi_unacked` (`packets_out`): segments in flight; `ss` omits 0.
    pub fn unacked(&self) -> u64 {
        self.number("unacked").unwrap_or(0)
    }

    /// `tcpi_total_retrans`, the second number of `retrans:X/Y`; `ss` omits
    /// the field when both are 0.
    pub fn total_retrans(&self) -> u64 {
        self.info
            .get("retrans")
            .and_then(|v| v.split('/').nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    pub fn timer_kind(&self) -> Option<&str> {
        self.timer.as_ref().map(|t| t.kind.as_str())
    }

    /// A peer holds the window closed with nothing in flight: `snd_wnd` 0
    /// and the persist timer (RFC 9293 §3.8.6.1), queued data waiting.
    pub fn is_zero_window_persist(&self) -> bool {
        self.snd_wnd() == 0
            && self.timer_kind() == Some("persist")
            && self.unacked() == 0
            && self.send_q > 0
    }

    /// The treason state: `snd_wnd` 0 with data in flight under the
    /// retransmission timer, so that `tcp_retransmit_timer()` takes its
    /// zero-window branch when it fires.
    pub fn is_zero_window_retransmit(&self) -> bool {
        self.snd_wnd() == 0 && self.timer_kind() == Some("on") && self.unacked() > 0
    }

    /// None of the above: the window is open, no persist or retransmission
    /// timer is pending and nothing is backed off. Retransmissions are not
    /// counted: over veth on a loaded machine a normal reader sees spurious
    /// ones (`retrans:0/6 dsack_dups:6`: the original arrived, the RTO fired
    /// early, the receiver reported the duplicates with D-SACK), and they say
    /// nothing about a peer holding the window closed.
    pub fn is_clean(&self) -> bool {
        self.snd_wnd() > 0
            && !matches!(self.timer_kind(), Some("on" | "persist"))
            && self.backoff() == 0
    }
}

/// The TCP sockets of `ns` as `ss -tino` reports them.
pub fn ss(ns: &NetNs) -> Vec<SsSocket> {
    let out = ns.output("ss", &["-H", "-t", "-i", "-n", "-o"]);
    assert!(out.status.success(), "ss: {}", crate::describe(&out));
    parse_ss(&String::from_utf8_lossy(&out.stdout))
}

/// The socket of `ns` whose peer is `peer`.
pub fn ss_peer(ns: &NetNs, peer: SocketAddr) -> Option<SsSocket> {
    ss(ns).into_iter().find(|s| s.peer == peer)
}

/// Polls `ss` in `ns` every 50 ms until the socket whose peer is `peer`
/// satisfies `pred`. `Err` carries the last lines seen, for the message.
pub fn wait_ss(
    ns: &NetNs,
    peer: SocketAddr,
    timeout: Duration,
    pred: impl Fn(&SsSocket) -> bool,
) -> Result<SsSocket, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let s = ss_peer(ns, peer);
        if let Some(s) = &s
            && pred(s)
        {
            return Ok(s.clone());
        }
        if Instant::now() >= deadline {
            return Err(s.map_or_else(|| format!("no socket with peer {peer}"), |s| s.raw));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Parses `ss -H -tino` output: a line per socket, then indented lines of
/// `-i` details.
pub fn parse_ss(text: &str) -> Vec<SsSocket> {
    let mut out: Vec<SsSocket> = Vec::new();
    for line in text.lines() {
        if line.starts_with(char::is_whitespace) {
            if let Some(last) = out.last_mut() {
                for (k, v) in line.split_whitespace().filter_map(|t| t.split_once(':')) {
                    last.info.insert(k.to_owned(), v.to_owned());
                }
                last.raw.push('\n');
                last.raw.push_str(line);
            }
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(peer)) = (
            f.get(3).and_then(|a| a.parse().ok()),
            f.get(4).and_then(|a| a.parse().ok()),
        ) else {
            continue;
        };
        let timer = f.iter().find_map(|t| {
            let inner = t.strip_prefix("timer:(")?.strip_suffix(')')?;
            let mut p = inner.split(',');
            Some(SsTimer {
                kind: p.next()?.to_owned(),
                expires: p.next()?.to_owned(),
                count: p.next()?.parse().ok()?,
            })
        });
        out.push(SsSocket {
            state: f[0].to_owned(),
            recv_q: f[1].parse().unwrap_or(0),
            send_q: f[2].parse().unwrap_or(0),
            local,
            peer,
            timer,
            info: BTreeMap::new(),
            raw: line.to_owned(),
        });
    }
    out
}

/// Sends raw Ethernet frames out of the client's veth (from inside the
/// client namespace): spoofed-source floods that no kernel socket could
/// produce. Returns how many were sent. The frames' MAC addresses do not
/// matter to XDP, which sees every frame on the veth before any MAC check.
pub fn inject(lab: &Lab, frames: &[Vec<u8>]) -> io::Result<usize> {
    let iface = lab.client_if.clone();
    lab.client.run_in(move || {
        let sock = PacketSocket::open(&iface)?;
        let mut sent = 0;
        for f in frames {
            sock.send(f)?;
            sent += 1;
        }
        Ok(sent)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ss_lines() {
        let text = "ESTAB 0      4000   198.18.0.1:8080  198.18.0.10:40000 timer:(on,408ms,0)\n\t cubic rto:408 backoff:1 mss:1000 unacked:4 retrans:1/2 rcv_wnd:64240\n\
                    ESTAB 0 0 [2001:db8::1]:8080 [2001:db8::2]:51000\n\t cubic snd_wnd:65280\n";
        let v = parse_ss(text);
        assert_eq!(v.len(), 2);
        let t = &v[0];
        assert_eq!(t.peer, "198.18.0.10:40000".parse().unwrap());
        assert_eq!(t.send_q, 4000);
        assert_eq!(
            t.timer,
            Some(SsTimer {
                kind: "on".into(),
                expires: "408ms".into(),
                count: 0
            })
        );
        assert_eq!(
            (t.snd_wnd(), t.backoff(), t.unacked(), t.total_retrans()),
            (0, 1, 4, 2)
        );
        assert!(t.is_zero_window_retransmit() && !t.is_zero_window_persist() && !t.is_clean());
        let c = &v[1];
        assert_eq!(c.local, "[2001:db8::1]:8080".parse().unwrap());
        assert!(c.is_clean());
    }

    #[test]
    fn sequence_order_wraps() {
        assert!(seq_before(u32::MAX, 0));
        assert!(!seq_before(0, u32::MAX));
        assert!(seq_before(1, 2));
    }
}
