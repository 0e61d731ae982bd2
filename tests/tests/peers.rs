//! Misbehaving TCP peers against a real kernel TCP server, proven with the
//! victim kernel's own view (`ss -tino` in the server namespace). No blocker
//! here: pure kernel TCP behaviour, which blocker's probes must recognise.
//!
//! Every test also runs a normal reader against the same victim, whose
//! socket must show none of the conditions.

use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use blocker_tests::{
    lab::{CLIENT_V4, CLIENT_V6, Lab, SERVER_V4, SERVER_V6, TcpServer},
    peers::{KernelPeer, Phase, RAW_PEER_V4, RAW_PEER_V6, RawPeer, SsSocket, ss_peer, wait_ss},
};

const PORT: u16 = 8080;
/// Far more than any window in these tests, so the victim always has data
/// queued; a normal reader takes it in well under a second over veth.
const RESPONSE: usize = 1 << 20;
/// Upper bound for a condition to show in `ss`; they take 0.1–1.5 s.
const SETTLE: Duration = Duration::from_secs(8);

fn server(addr: &str) -> SocketAddr {
    SocketAddr::new(addr.parse().unwrap(), PORT)
}

fn ip(addr: &str) -> IpAddr {
    addr.parse().unwrap()
}

/// A normal reader from `src` reads the whole response, and the victim's
/// socket for it shows no zero window, no persist or retransmission timer
/// and no backoff. A retransmission is not asserted against: a spurious one
/// happens over veth under load, and it is not what these tests are about.
fn control(lab: &Lab, srv: &TcpServer, src: &str, dst: SocketAddr) -> KernelPeer {
    let reader = KernelPeer::reader(&lab.client, ip(src), dst);
    assert!(
        reader.wait_read(RESPONSE as u64, Duration::from_secs(5)),
        "the normal reader got {} of {RESPONSE} bytes",
        reader.bytes_read()
    );
    let s = wait_ss(&lab.server, reader.local(), Duration::from_secs(2), |s| {
        s.send_q == 0
    })
    .unwrap_or_else(|raw| panic!("victim still sending to the normal reader:\n{raw}"));
    eprintln!("normal reader:\n{}", s.raw);
    assert!(s.is_clean(), "normal reader's socket:\n{}", s.raw);
    assert_eq!(
        srv.connection(reader.local()).map(|c| c.written),
        Some(RESPONSE as u64)
    );
    reader
}

fn show(what: &str, s: &SsSocket) {
    eprintln!("{what}:\n{}", s.raw);
}

#[test]
fn slow_reader_leaves_the_victim_probing_a_zero_window() {
    let lab = Lab::new();
    let srv = lab.victim_server(PORT, RESPONSE);
    let t0 = Instant::now();
    let slow = KernelPeer::slow_reader(&lab.client, ip(CLIENT_V4[0]), server(SERVER_V4));
    // At least one zero-window probe sent (backoff counts them) before the
    // state counts as settled.
    let s = wait_ss(&lab.server, slow.local(), SETTLE, |s| {
        s.is_zero_window_persist() && s.backoff() >= 1
    })
    .unwrap_or_else(|raw| panic!("no persist timer with snd_wnd 0:\n{raw}"));
    show("slow reader", &s);
    eprintln!("settled in {:?}", t0.elapsed());
    assert_eq!(s.state, "ESTAB");
    assert_eq!(
        s.unacked(),
        0,
        "nothing in flight: the window closed honestly"
    );
    assert_eq!(slow.bytes_read(), 0);
    let written = srv.connection(slow.local()).expect("accepted").written;
    assert!(
        written < RESPONSE as u64,
        "the victim could write everything ({written} bytes): the slow reader did not block it"
    );
    control(&lab, &srv, CLIENT_V4[1], server(SERVER_V4));
}

fn window_shrinker(src: &str, client: &str, dst: SocketAddr) {
    let lab = Lab::new();
    let srv = lab.victim_server(PORT, RESPONSE);
    let t0 = Instant::now();
    let peer = RawPeer::window_shrinker(&lab, ip(src), dst);
    let closed = peer.wait_window_closed(Duration::from_secs(5));
    assert!(closed.in_flight > 0 && closed.acked_bytes > 0, "{closed:?}");
    // Right after the shrinking ACK: the acknowledged part is gone, the rest
    // is still in flight, and the window is 0.
    let s = wait_ss(&lab.server, peer.local(), Duration::from_secs(2), |s| {
        s.snd_wnd() == 0
    })
    .unwrap_or_else(|raw| panic!("snd_wnd never 0:\n{raw}"));
    assert!(s.is_zero_window_retransmit(), "just shrunk:\n{}", s.raw);
    // Two expiries of the retransmission timer with snd_wnd 0.
    let s = wait_ss(&lab.server, peer.local(), SETTLE, |s| {
        s.is_zero_window_retransmit() && s.backoff() >= 2 && s.total_retrans() >= 2
    })
    .unwrap_or_else(|raw| panic!("no retransmissions into a zero window:\n{raw}"));
    show("window shrinker", &s);
    eprintln!("settled in {:?}", t0.elapsed());
    // tcp_retransmit_timer()'s zero-window branch retransmits and backs off
    // but skips tcp_update_rto_stats(), so icsk_retransmits (the timer's
    // count) stays 0; a plain RTO would have counted. This tells "the
    // window was 0" apart from "the peer went silent".
    assert_eq!(
        s.timer.as_ref().map(|t| t.count),
        Some(0),
        "timer count: the normal RTO path ran:\n{}",
        s.raw
    );
    assert!(
        s.send_q >= u64::from(closed.in_flight),
        "Send-Q holds what is in flight:\n{}",
        s.raw
    );
    let stats = peer
        .wait_until(Duration::from_secs(2), |st| st.retransmissions >= 2)
        .unwrap_or_else(|st| panic!("the peer did not see the retransmissions: {st:?}"));
    assert!(!stats.reset_by_victim, "{stats:?}");
    eprintln!("peer: {stats:?}");
    control(&lab, &srv, client, dst);
    let end = peer.stop();
    assert_eq!(end.phase, Phase::Stopped);
    assert_eq!(end.error, None, "{end:?}");
}

#[test]
fn window_shrinker_makes_the_victim_retransmit_into_a_zero_window_v4() {
    window_shrinker(RAW_PEER_V4, CLIENT_V4[1], server(SERVER_V4));
}

#[test]
fn window_shrinker_makes_the_victim_retransmit_into_a_zero_window_v6() {
    window_shrinker(RAW_PEER_V6, CLIENT_V6[1], server(SERVER_V6));
}

fn zero_window_handshake(src: &str, client: &str, dst: SocketAddr) {
    let lab = Lab::new();
    let srv = lab.victim_server(PORT, RESPONSE);
    let t0 = Instant::now();
    let peer = RawPeer::zero_window_handshake(&lab, ip(src), dst);
    peer.wait_window_closed(Duration::from_secs(5));
    // snd_wnd is 0 from the handshake on: the victim never sent a byte.
    let s = wait_ss(&lab.server, peer.local(), Duration::from_secs(2), |s| {
        s.state == "ESTAB"
    })
    .unwrap_or_else(|raw| panic!("no established socket:\n{raw}"));
    assert_eq!(s.snd_wnd(), 0, "right after the handshake:\n{}", s.raw);
    let s = wait_ss(&lab.server, peer.local(), SETTLE, |s| {
        s.is_zero_window_persist() && s.backoff() >= 2
    })
    .unwrap_or_else(|raw| panic!("no persist timer with snd_wnd 0:\n{raw}"));
    show("zero-window handshake", &s);
    eprintln!("settled in {:?}", t0.elapsed());
    assert_eq!(s.total_retrans(), 0, "probes, not retransmissions");
    let stats = peer
        .wait_until(Duration::from_secs(2), |st| st.zero_window_probes >= 2)
        .unwrap_or_else(|st| panic!("the peer did not see zero-window probes: {st:?}"));
    assert_eq!(stats.data_bytes, 0, "{stats:?}");
    assert_eq!(stats.retransmissions, 0, "{stats:?}");
    eprintln!("peer: {stats:?}");
    control(&lab, &srv, client, dst);
    let end = peer.stop();
    assert_eq!(end.error, None, "{end:?}");
}

#[test]
fn zero_window_handshake_pins_the_victim_in_the_persist_timer_v4() {
    zero_window_handshake(RAW_PEER_V4, CLIENT_V4[1], server(SERVER_V4));
}

#[test]
fn zero_window_handshake_pins_the_victim_in_the_persist_timer_v6() {
    zero_window_handshake(RAW_PEER_V6, CLIENT_V6[1], server(SERVER_V6));
}

#[test]
fn normal_readers_show_none_of_these() {
    let lab = Lab::new();
    let srv = lab.victim_server(PORT, RESPONSE);
    let _v4 = control(&lab, &srv, CLIENT_V4[0], server(SERVER_V4));
    let _v6 = control(&lab, &srv, CLIENT_V6[0], server(SERVER_V6));
}

#[test]
fn a_stopped_raw_peer_resets_the_victims_socket() {
    let lab = Lab::new();
    let _srv = lab.victim_server(PORT, RESPONSE);
    let peer = RawPeer::window_shrinker(&lab, ip(RAW_PEER_V4), server(SERVER_V4));
    peer.wait_window_closed(Duration::from_secs(5));
    let local = peer.local();
    assert!(ss_peer(&lab.server, local).is_some());
    let end = peer.stop();
    assert_eq!(end.error, None, "{end:?}");
    let deadline = Instant::now() + Duration::from_secs(1);
    while let Some(s) = ss_peer(&lab.server, local) {
        assert!(
            Instant::now() < deadline,
            "the victim's socket outlived the peer's RST:\n{}",
            s.raw
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
