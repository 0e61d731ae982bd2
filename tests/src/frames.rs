//! Crafted Ethernet frames for `BPF_PROG_TEST_RUN`, built with etherparse so
//! that the frames come from an implementation independent of the parser
//! under test.

use std::net::IpAddr;

use etherparse::{
    IpFragOffset, IpHeaders, IpNumber, Ipv4Extensions, Ipv4Header, Ipv4Options, Ipv6Extensions,
    Ipv6FragmentHeader, Ipv6Header, Ipv6RawExtHeader, Ipv6RoutingExtensions, PacketBuilder,
    TcpHeader, VlanId,
};

const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

/// What goes after the IP header.
#[derive(Clone, Copy, Debug)]
pub enum L4 {
    Tcp { syn: bool, ack: bool, window: u16 },
    Udp,
}

/// Which IPv6 extension headers to put before the transport header.
#[derive(Clone, Copy, Debug, Default)]
pub struct V6Ext {
    pub hop_by_hop: bool,
    pub routing: bool,
    pub destination_options: bool,
    /// Fragment header with this offset (in 8-byte units).
    pub fragment: Option<u16>,
}

/// A frame to build.
#[derive(Clone, Debug)]
pub struct Spec {
    pub vlans: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IPv4 options (multiple of 4 bytes, at most 40).
    pub ipv4_options: Vec<u8>,
    /// IPv4 fragment offset in 8-byte units (non-zero: not the first fragment).
    pub ipv4_fragment_offset: u16,
    pub v6_ext: V6Ext,
    pub l4: L4,
    pub payload: Vec<u8>,
}

impl Spec {
    /// A plain TCP SYN with a normal window.
    pub fn syn(src: &str, dst: &str) -> Self {
        Self {
            vlans: 0,
            src: src.parse().expect("test address"),
            dst: dst.parse().expect("test address"),
            ipv4_options: Vec::new(),
            ipv4_fragment_offset: 0,
            v6_ext: V6Ext::default(),
            l4: L4::Tcp {
                syn: true,
                ack: false,
                window: 64240,
            },
            payload: Vec::new(),
        }
    }

    /// A TCP SYN advertising a zero window.
    pub fn zero_window_syn(src: &str, dst: &str) -> Self {
        Self::syn(src, dst).window(0)
    }

    pub fn window(mut self, window: u16) -> Self {
        if let L4::Tcp { window: w, .. } = &mut self.l4 {
            *w = window;
        }
        self
    }

    pub fn flags(mut self, syn: bool, ack: bool) -> Self {
        if let L4::Tcp { syn: s, ack: a, .. } = &mut self.l4 {
            *s = syn;
            *a = ack;
        }
        self
    }

    pub fn udp(mut self) -> Self {
        self.l4 = L4::Udp;
        self.payload = b"hello".to_vec();
        self
    }

    pub fn vlans(mut self, n: u8) -> Self {
        self.vlans = n;
        self
    }

    pub fn ipv4_options(mut self, options: &[u8]) -> Self {
        self.ipv4_options = options.to_vec();
        self
    }

    pub fn v6_ext(mut self, ext: V6Ext) -> Self {
        self.v6_ext = ext;
        self
    }

    /// The frame's bytes.
    pub fn build(&self) -> Vec<u8> {
        let eth = PacketBuilder::ethernet2(SRC_MAC, DST_MAC);
        let ip = self.ip_headers();
        let step = match self.vlans {
            0 => eth.ip(ip),
            1 => eth.single_vlan(VlanId::try_new(10).unwrap()).ip(ip),
            2 => eth
                .double_vlan(VlanId::try_new(100).unwrap(), VlanId::try_new(10).unwrap())
                .ip(ip),
            n => panic!("{n} VLAN tags: build with `with_extra_vlan`"),
        };
        let mut out = Vec::new();
        match self.l4 {
            L4::Tcp { syn, ack, window } => {
                let mut tcp = TcpHeader::new(40000, 8080, 1000, window);
                tcp.syn = syn;
                if ack {
                    tcp.ack = true;
                    tcp.acknowledgment_number = 1;
                }
                step.tcp_header(tcp).write(&mut out, &self.payload).unwrap();
            }
            L4::Udp => step.udp(40000, 53).write(&mut out, &self.payload).unwrap(),
        }
        out
    }

    fn ip_headers(&self) -> IpHeaders {
        let proto = match self.l4 {
            L4::Tcp { .. } => IpNumber::TCP,
            L4::Udp => IpNumber::UDP,
        };
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let mut h = Ipv4Header::new(0, 64, proto, s.octets(), d.octets()).unwrap();
                h.options = Ipv4Options::try_from(&self.ipv4_options[..]).expect("options length");
                h.fragment_offset = IpFragOffset::try_new(self.ipv4_fragment_offset).unwrap();
                IpHeaders::Ipv4(h, Ipv4Extensions::default())
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let h = Ipv6Header {
                    traffic_class: 0,
                    flow_label: Default::default(),
                    payload_length: 0,
                    next_header: proto,
                    hop_limit: 64,
                    source: s.octets(),
                    destination: d.octets(),
                };
                // Next-header fields are filled in by etherparse on write.
                let pad = [0u8; 6];
                let raw = || Ipv6RawExtHeader::new_raw(proto, &pad).unwrap();
                let ext = Ipv6Extensions {
                    hop_by_hop_options: self.v6_ext.hop_by_hop.then(raw),
                    destination_options: self.v6_ext.destination_options.then(raw),
                    routing: self.v6_ext.routing.then(|| Ipv6RoutingExtensions {
                        // Type 4 (segment routing) is irrelevant to the
                        // parser; it only follows the length. Use a 16-byte
                        // body to exercise a length other than 8.
                        routing: Ipv6RawExtHeader::new_raw(proto, &[4u8; 14]).unwrap(),
                        final_destination_options: None,
                    }),
                    fragment: self.v6_ext.fragment.map(|off| {
                        Ipv6FragmentHeader::new(
                            proto,
                            IpFragOffset::try_new(off).unwrap(),
                            false,
                            7,
                        )
                    }),
                    auth: None,
                };
                IpHeaders::Ipv6(h, ext)
            }
            _ => panic!("source and destination families differ"),
        }
    }
}

/// Inserts a third 802.1Q tag into a double-tagged frame, between the outer
/// and the inner tag.
pub fn with_extra_vlan(double_tagged: &[u8]) -> Vec<u8> {
    assert_eq!(&double_tagged[12..14], &[0x88, 0xa8], "needs a QinQ frame");
    let mut out = double_tagged[..16].to_vec();
    out.extend_from_slice(&[0x81, 0x00, 0x00, 0x0c]);
    out.extend_from_slice(&double_tagged[16..]);
    out
}

/// An ARP request (not IP).
pub fn arp() -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&SRC_MAC);
    f.extend_from_slice(&[0x08, 0x06]);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&SRC_MAC);
    f.extend_from_slice(&[198, 18, 0, 2]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&[198, 18, 0, 1]);
    f
}

#[cfg(test)]
mod tests {
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};

    use super::*;

    #[test]
    fn builds_what_it_says() {
        let f = Spec::zero_window_syn("198.18.0.2", "198.18.0.1")
            .vlans(2)
            .ipv4_options(&[1, 1, 1, 1])
            .build();
        assert_eq!(&f[12..14], &[0x88, 0xa8]);
        assert_eq!(&f[16..18], &[0x81, 0x00]);
        let p = SlicedPacket::from_ethernet(&f).unwrap();
        let Some(NetSlice::Ipv4(ip)) = p.net else {
            panic!("no ipv4")
        };
        assert_eq!(ip.header().ihl(), 6);
        let Some(TransportSlice::Tcp(tcp)) = p.transport else {
            panic!("no tcp")
        };
        assert!(tcp.syn() && !tcp.ack());
        assert_eq!(tcp.window_size(), 0);

        let f6 = Spec::zero_window_syn("2001:db8::2", "2001:db8::1")
            .v6_ext(V6Ext {
                hop_by_hop: true,
                routing: true,
                destination_options: true,
                fragment: Some(0),
            })
            .build();
        let p = SlicedPacket::from_ethernet(&f6).unwrap();
        let Some(TransportSlice::Tcp(tcp)) = p.transport else {
            panic!("no tcp after v6 exts")
        };
        assert_eq!(tcp.window_size(), 0);
        let triple = with_extra_vlan(&f);
        assert_eq!(triple.len(), f.len() + 4);
        assert_eq!(&triple[16..18], &[0x81, 0x00]);
        assert_eq!(&triple[20..22], &[0x81, 0x00]);
    }
}
