//! The client a detector reasons about: an IPv4 address, or an IPv6
//! client's network (default /64, since IPv6 clients rotate inside their
//! prefix), and the compact state kept for each one. The state every
//! client needs is inline; what only the reject pile needs is boxed and
//! allocated on the client's first rejected request, so a busy API's many
//! well-behaved clients cost little.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use super::{
    cadence::Cadence,
    window::{Distinct, Rate, Sketch},
};
use crate::time::Secs;

/// An IPv4 address or an IPv6 network. 17 bytes, byte-aligned.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientKey {
    bytes: [u8; 16],
    /// 0 for IPv4; the IPv6 prefix length otherwise.
    v6_prefix: u8,
}

impl ClientKey {
    pub fn new(ip: IpAddr, v6_prefix: u8) -> Self {
        match ip {
            IpAddr::V4(v4) => {
                let mut bytes = [0; 16];
                bytes[..4].copy_from_slice(&v4.octets());
                Self { bytes, v6_prefix: 0 }
            }
            IpAddr::V6(v6) => {
                if let Some(v4) = v6.to_ipv4_mapped() {
                    return Self::new(IpAddr::V4(v4), v6_prefix);
                }
                let p = v6_prefix.clamp(1, 128);
                let mask = if p == 128 { u128::MAX } else { !(u128::MAX >> p) };
                Self { bytes: (u128::from(v6) & mask).to_be_bytes(), v6_prefix: p }
            }
        }
    }

    pub fn is_v6(&self) -> bool {
        self.v6_prefix != 0
    }

    /// The network address (IPv4: the address).
    pub fn ip(&self) -> IpAddr {
        if self.is_v6() {
            IpAddr::V6(Ipv6Addr::from(self.bytes))
        } else {
            IpAddr::V4(Ipv4Addr::new(self.bytes[0], self.bytes[1], self.bytes[2], self.bytes[3]))
        }
    }

    /// Prefix length of the network this key stands for.
    pub fn prefix_len(&self) -> u8 {
        if self.is_v6() { self.v6_prefix } else { 32 }
    }

    pub fn hash32(&self) -> u32 {
        super::window::h64(&self.bytes) as u32 ^ self.v6_prefix as u32
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.v6_prefix {
            0 => {
                // A finding names its client several times (summary, actor
                // id, client list), and std's formatting of an IPv4 address
                // was ~700 instructions a time.
                let mut buf = [0u8; 15];
                let mut n = 0;
                for (i, &o) in self.bytes[..4].iter().enumerate() {
                    if i > 0 {
                        buf[n] = b'.';
                        n += 1;
                    }
                    if o >= 100 {
                        buf[n] = b'0' + o / 100;
                        n += 1;
                    }
                    if o >= 10 {
                        buf[n] = b'0' + o / 10 % 10;
                        n += 1;
                    }
                    buf[n] = b'0' + o % 10;
                    n += 1;
                }
                f.write_str(std::str::from_utf8(&buf[..n]).map_err(|_| fmt::Error)?)
            }
            128 => write!(f, "{}", self.ip()),
            p => write!(f, "{}/{p}", self.ip()),
        }
    }
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// As text in what people read (findings, the roster); as its bytes and
/// prefix in a binary snapshot.
impl serde::Serialize for ClientKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            serde::Serialize::serialize(&(self.bytes, self.v6_prefix), s)
        }
    }
}

/// The binary form only (snapshots); a prefix past 128 is refused.
impl<'de> serde::Deserialize<'de> for ClientKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (bytes, v6_prefix) = <([u8; 16], u8) as serde::Deserialize>::deserialize(d)?;
        if v6_prefix > 128 {
            return Err(serde::de::Error::custom(format!("IPv6 prefix {v6_prefix}")));
        }
        Ok(Self { bytes, v6_prefix })
    }
}

/// Where a client last found its actor in the roster's array: a hint that
/// spares most exchanges the walk of the index, checked against the
/// actor's id before it is believed (eviction moves actors between
/// slots). Three bytes, which fit in the padding of a client's state.
#[derive(Clone, Copy, Default, Debug, serde::Serialize, serde::Deserialize)]
pub struct SlotHint([u8; 3]);

impl SlotHint {
    /// No hint: the roster is longer than three bytes can count.
    const NONE: u32 = 0xff_ffff;

    pub fn new(slot: usize) -> Self {
        let v = u32::try_from(slot).ok().filter(|&v| v < Self::NONE).unwrap_or(Self::NONE);
        let [a, b, c, _] = v.to_le_bytes();
        Self([a, b, c])
    }

    pub fn get(self) -> Option<usize> {
        let [a, b, c] = self.0;
        let v = u32::from_le_bytes([a, b, c, 0]);
        (v != Self::NONE).then_some(v as usize)
    }
}

/// Flags in [`ClientState::flags`].
pub const EVER_SUCCEEDED: u8 = 1;
pub const SENT_NON_GET: u8 = 2;

/// Per-client state shared by the client-keyed detectors; each detector
/// module owns its part.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct ClientState {
    pub first: Secs,
    pub last: Secs,
    pub requests: u32,
    pub rejects: u32,
    pub flags: u8,
    /// Id of the client's actor in the roster, 0 for none.
    pub actor: u32,
    pub actor_slot: SlotHint,
    pub cadence: Cadence,
    pub scraping: ScrapingPart,
    pub enumeration: EnumerationPart,
    pub rejected: Option<Box<RejectState>>,
}

// Every tracked client pays for this struct: the slot hint must stay in
// the padding.
const _: () = assert!(size_of::<ClientState>() == 152);

/// State only clients with rejected requests need.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct RejectState {
    pub single_path: SinglePathPart,
    pub stripped: StrippedPart,
    pub spoofing: SpoofingPart,
    pub credential: CredentialPart,
}

impl ClientState {
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    pub fn reject_state(&mut self) -> &mut RejectState {
        self.rejected.get_or_insert_with(Default::default)
    }
}

// Each client-keyed signal's part of the row. They are plain values kept
// here, below the signals that read and write them, so that the row does
// not depend on the signals and the signals depend on the row alone.

/// What `signals::scraping` keeps per client: its GETs and the distinct
/// resources they named.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ScrapingPart {
    pub gets: Rate,
    pub resources: Sketch<4>,
}

/// The distinct ids a client asked for on one template.
pub type IdSketch = Sketch<4>;

/// What `signals::enumeration` keeps per client: the template being walked
/// and the ids asked for on it.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct EnumerationPart {
    pub template: u32,
    pub last_id: u32,
    pub sequential: u16,
    pub rejected: u16,
    pub ids: IdSketch,
}

/// What `signals::single_path` keeps per rejected client.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct SinglePathPart {
    pub endpoint: u32,
    pub count: Rate,
    /// Last request for any other endpoint.
    pub other_at: Secs,
}

/// What `signals::stripped` keeps per rejected client.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct StrippedPart {
    pub count: Rate,
}

/// User agents a client's spoofing part can tell apart.
pub const MAX_AGENTS: usize = 16;

/// What `signals::spoofing` keeps per rejected client.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct SpoofingPart {
    pub browser_platforms: u8,
    pub library_platforms: u8,
    pub script_like: u16,
    pub agents: Distinct<u16, MAX_AGENTS>,
}

/// What `signals::credential` keeps per rejected client.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct CredentialPart {
    pub r401: Rate,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_text_matches_std() {
        for o in 0..=255u8 {
            for ip in [[o, 0, 0, 0], [1, o, 10, 100], [255, 99, o, 9], [10, 0, 100, o]] {
                let ip = Ipv4Addr::from(ip);
                assert_eq!(ClientKey::new(IpAddr::V4(ip), 64).to_string(), ip.to_string());
            }
        }
    }

    #[test]
    fn keys_and_prefixes() {
        let k = ClientKey::new("2001:db8:1:2:aaaa::1".parse().unwrap(), 64);
        assert_eq!(k.to_string(), "2001:db8:1:2::/64");
        assert_eq!(k, ClientKey::new("2001:db8:1:2:ffff::9".parse().unwrap(), 64));
        assert_eq!(ClientKey::new("::ffff:192.0.2.7".parse().unwrap(), 64).to_string(), "192.0.2.7");
        assert_eq!(ClientKey::new("2001:db8::1".parse().unwrap(), 128).to_string(), "2001:db8::1");
        assert_eq!(std::mem::size_of::<ClientKey>(), 17);
    }
}
