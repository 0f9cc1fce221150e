//! Country and autonomous system of a client, from MaxMind-DB-format files
//! (GeoLite2, DB-IP lite, ip-location-db all use it) or CSV ranges
//! `start,end,asn,org` and `start,end,country_code` (how ip-location-db
//! also publishes them).

use std::{collections::HashMap, net::IpAddr, path::Path};

use anyhow::{Context as _, bail};
use maxminddb::Reader;
use serde::Deserialize;

#[derive(Deserialize)]
struct IsoCode<'a> {
    iso_code: Option<&'a str>,
}

/// GeoIP2 keeps the code under `country.iso_code`; ip-location-db's
/// country files put `country_code` at the top.
#[derive(Deserialize)]
struct CountryRecord<'a> {
    #[serde(borrow)]
    country: Option<IsoCode<'a>>,
    country_code: Option<&'a str>,
}

#[derive(Deserialize)]
struct AsnRecord<'a> {
    autonomous_system_number: Option<u32>,
    autonomous_system_organization: Option<&'a str>,
}

/// ASN ranges from CSV, searched by binary search.
#[derive(Default)]
pub struct AsnRanges {
    v4: Vec<(u32, u32, u32, u32)>,
    v6: Vec<(u128, u128, u32, u32)>,
    orgs: Vec<String>,
}

impl AsnRanges {
    pub fn parse(text: &str, source: &str) -> anyhow::Result<Self> {
        Self::parse_as(text, source, false)
    }

    /// `start,end,country_code` rows: the code is kept as the "org".
    pub fn parse_countries(text: &str, source: &str) -> anyhow::Result<Self> {
        Self::parse_as(text, source, true)
    }

    fn parse_as(text: &str, source: &str, countries: bool) -> anyhow::Result<Self> {
        let mut t = AsnRanges::default();
        let mut org_ids: HashMap<String, u32> = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut f = line.splitn(4, ',');
            let (Some(start), Some(end), Some(asn)) = (f.next(), f.next(), f.next()) else {
                bail!("{source}:{}: expected start,end,asn,org", i + 1);
            };
            let third = asn.trim();
            let (asn, org) = if countries {
                let cc = third.trim_matches('"');
                if cc.len() != 2 || !cc.bytes().all(|b| b.is_ascii_alphabetic()) {
                    if i == 0 {
                        continue; // a header line
                    }
                    bail!("{source}:{}: {cc:?} is not a country code", i + 1);
                }
                (0, Some(cc.to_ascii_uppercase()))
            } else {
                let Ok(asn) = third.trim_start_matches("AS").parse::<u32>() else {
                    if i == 0 {
                        continue; // a header line
                    }
                    bail!("{source}:{}: {third:?} is not an AS number", i + 1);
                };
                (asn, None)
            };
            let org = match org {
                Some(cc) => cc,
                None => {
                    let org = f.next().unwrap_or("").trim();
                    org.strip_prefix('"')
                        .and_then(|o| o.strip_suffix('"'))
                        .map_or(org.to_string(), |o| o.replace("\"\"", "\""))
                }
            };
            let next = org_ids.len() as u32;
            let org_id = *org_ids.entry(org.clone()).or_insert_with(|| {
                t.orgs.push(org);
                next
            });
            match (start.trim().parse::<IpAddr>(), end.trim().parse::<IpAddr>()) {
                (Ok(IpAddr::V4(s)), Ok(IpAddr::V4(e))) => t.v4.push((s.into(), e.into(), asn, org_id)),
                (Ok(IpAddr::V6(s)), Ok(IpAddr::V6(e))) => t.v6.push((s.into(), e.into(), asn, org_id)),
                _ => bail!("{source}:{}: {start:?}..{end:?} is not an address range", i + 1),
            }
        }
        t.v4.sort_unstable();
        t.v6.sort_unstable();
        Ok(t)
    }

    fn find(&self, ip: IpAddr) -> Option<(u32, &str)> {
        fn search<T: Ord + Copy>(v: &[(T, T, u32, u32)], x: T) -> Option<(u32, u32)> {
            let i = v.partition_point(|r| r.0 <= x);
            let r = v.get(i.checked_sub(1)?)?;
            (x <= r.1).then_some((r.2, r.3))
        }
        let (asn, org) = match ip {
            IpAddr::V4(a) => search(&self.v4, u32::from(a))?,
            IpAddr::V6(a) => search(&self.v6, u128::from(a))?,
        };
        Some((asn, self.orgs[org as usize].as_str()))
    }
}

enum AsnSource {
    Mmdb(Reader<Vec<u8>>),
    Csv(AsnRanges),
}

pub struct Geo {
    country: Option<AsnSource>,
    asn: Option<AsnSource>,
}

fn open_mmdb(path: &Path, flag: &str) -> anyhow::Result<Reader<Vec<u8>>> {
    Reader::open_readfile(path).with_context(|| format!("{flag}: cannot open {} as a MaxMind DB", path.display()))
}

/// A MaxMind DB ends with this marker before its metadata.
fn is_mmdb(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|b| b.windows(14).rev().take(128 * 1024).any(|w| w == b"\xab\xcd\xefMaxMind.com"))
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct GeoInfo {
    pub country: Option<String>,
    pub asn: Option<u32>,
    pub as_org: Option<String>,
}

impl Geo {
    pub fn open(country: Option<&Path>, asn: Option<&Path>) -> anyhow::Result<Self> {
        let country = match country {
            None => None,
            Some(p) if is_mmdb(p) => Some(AsnSource::Mmdb(open_mmdb(p, "--geoip-country")?)),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("--geoip-country: cannot read {}", p.display()))?;
                Some(AsnSource::Csv(
                    AsnRanges::parse_countries(&text, &p.display().to_string())
                        .map_err(|e| anyhow::anyhow!("--geoip-country: {e}"))?,
                ))
            }
        };
        let asn = match asn {
            None => None,
            Some(p) if is_mmdb(p) => Some(AsnSource::Mmdb(open_mmdb(p, "--geoip-asn")?)),
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).with_context(|| format!("--geoip-asn: cannot read {}", p.display()))?;
                Some(AsnSource::Csv(AsnRanges::parse(&text, &p.display().to_string())?))
            }
        };
        Ok(Self { country, asn })
    }

    pub fn has_country(&self) -> bool {
        self.country.is_some()
    }

    pub fn has_asn(&self) -> bool {
        self.asn.is_some()
    }

    pub fn lookup(&self, ip: IpAddr) -> GeoInfo {
        let mut out = GeoInfo::default();
        match &self.country {
            Some(AsnSource::Mmdb(db)) => {
                if let Ok(Some(r)) = db.lookup::<CountryRecord>(ip) {
                    out.country = r.country.and_then(|c| c.iso_code).or(r.country_code).map(str::to_string);
                }
            }
            Some(AsnSource::Csv(t)) => out.country = t.find(ip).map(|(_, cc)| cc.to_string()),
            None => {}
        }
        match &self.asn {
            Some(AsnSource::Mmdb(db)) => {
                if let Ok(Some(r)) = db.lookup::<AsnRecord>(ip) {
                    out.asn = r.autonomous_system_number;
                    out.as_org = r.autonomous_system_organization.map(str::to_string);
                }
            }
            Some(AsnSource::Csv(t)) => {
                if let Some((asn, org)) = t.find(ip) {
                    out.asn = Some(asn);
                    out.as_org = Some(org.to_string()).filter(|o| !o.is_empty());
                }
            }
            None => {}
        }
        out
    }
}

/// A minimal MaxMind DB writer for tests: an IPv6 tree (IPv4 under
/// ::/96), 32-bit records, maps of strings and unsigned integers.
#[cfg(test)]
pub mod testdb {
    use std::net::IpAddr;

    pub enum Value {
        Str(String),
        U32(u32),
        Map(Vec<(String, Value)>),
        Array(Vec<Value>),
    }

    fn ctrl(out: &mut Vec<u8>, ty: u8, size: usize) {
        let (first, extra): (u8, Vec<u8>) = match size {
            0..=28 => (size as u8, vec![]),
            29..=284 => (29, vec![(size - 29) as u8]),
            _ => (30, ((size - 285) as u16).to_be_bytes().to_vec()),
        };
        if ty <= 7 {
            out.push(ty << 5 | first);
        } else {
            out.push(first);
            out.push(ty - 7);
        }
        out.extend(extra);
    }

    pub fn encode(out: &mut Vec<u8>, v: &Value) {
        match v {
            Value::Str(s) => {
                ctrl(out, 2, s.len());
                out.extend_from_slice(s.as_bytes());
            }
            Value::U32(n) => {
                let b = n.to_be_bytes();
                let skip = b.iter().take_while(|x| **x == 0).count();
                ctrl(out, 6, 4 - skip);
                out.extend_from_slice(&b[skip..]);
            }
            Value::Map(m) => {
                ctrl(out, 7, m.len());
                for (k, v) in m {
                    encode(out, &Value::Str(k.clone()));
                    encode(out, v);
                }
            }
            Value::Array(a) => {
                ctrl(out, 11, a.len());
                for v in a {
                    encode(out, v);
                }
            }
        }
    }

    #[derive(Clone, Copy)]
    enum Rec {
        Empty,
        Node(usize),
        Data(usize),
    }

    /// Builds a database mapping each network to its record.
    pub fn build(db_type: &str, networks: &[(&str, Value)]) -> Vec<u8> {
        let mut nodes: Vec<[Rec; 2]> = vec![[Rec::Empty; 2]];
        let mut data = Vec::new();
        for (net, value) in networks {
            let net: ipnet::IpNet = net.parse().expect("network");
            let (bits, len): (u128, u8) = match net.addr() {
                IpAddr::V4(a) => (u32::from(a) as u128, net.prefix_len() + 96),
                IpAddr::V6(a) => (u128::from(a), net.prefix_len()),
            };
            let off = data.len();
            encode(&mut data, value);
            let mut node = 0;
            for i in 0..len {
                let bit = ((bits >> (127 - i)) & 1) as usize;
                if i + 1 == len {
                    nodes[node][bit] = Rec::Data(off);
                } else {
                    node = match nodes[node][bit] {
                        Rec::Node(n) => n,
                        _ => {
                            nodes.push([Rec::Empty; 2]);
                            let n = nodes.len() - 1;
                            nodes[node][bit] = Rec::Node(n);
                            n
                        }
                    };
                }
            }
        }
        let count = nodes.len();
        let mut out = Vec::new();
        for n in &nodes {
            for r in n {
                let v = match *r {
                    Rec::Empty => count,
                    Rec::Node(i) => i,
                    Rec::Data(off) => count + 16 + off,
                };
                out.extend_from_slice(&(v as u32).to_be_bytes());
            }
        }
        out.extend_from_slice(&[0u8; 16]);
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\xab\xcd\xefMaxMind.com");
        let meta = |k: &str, v: Value| (k.to_string(), v);
        let mut m = Vec::new();
        encode(
            &mut m,
            &Value::Map(vec![
                meta("node_count", Value::U32(count as u32)),
                meta("record_size", Value::U32(32)),
                meta("ip_version", Value::U32(6)),
                meta("database_type", Value::Str(db_type.into())),
                meta("binary_format_major_version", Value::U32(2)),
                meta("binary_format_minor_version", Value::U32(0)),
                meta("build_epoch", Value::U32(1_700_000_000)),
                meta("languages", Value::Array(vec![Value::Str("en".into())])),
                meta("description", Value::Map(vec![("en".into(), Value::Str("rejectwatch test".into()))])),
            ]),
        );
        // record_size and the versions are uint16 in the spec; readers
        // accept any unsigned width, which keeps this writer small.
        out.extend(m);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::{testdb::Value, *};

    fn write(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("rw-geo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn mmdb_country_and_asn() {
        let s = |v: &str| Value::Str(v.into());
        let country = testdb::build(
            "test-country",
            &[
                ("203.0.113.0/24", Value::Map(vec![("country_code".into(), s("NL"))])),
                ("2001:db8::/32", Value::Map(vec![("country".into(), Value::Map(vec![("iso_code".into(), s("DE"))]))])),
            ],
        );
        let asn = testdb::build(
            "test-asn",
            &[(
                "203.0.113.0/25",
                Value::Map(vec![
                    ("autonomous_system_number".into(), Value::U32(64500)),
                    ("autonomous_system_organization".into(), s("Example Cloud")),
                ]),
            )],
        );
        let g = Geo::open(Some(&write("c.mmdb", &country)), Some(&write("a.mmdb", &asn))).unwrap();
        let cases: &[(&str, Option<&str>, Option<u32>)] = &[
            ("203.0.113.7", Some("NL"), Some(64500)),
            ("203.0.113.200", Some("NL"), None),
            ("2001:db8::1", Some("DE"), None),
            ("198.51.100.1", None, None),
        ];
        for (ip, c, a) in cases {
            let info = g.lookup(ip.parse().unwrap());
            assert_eq!((info.country.as_deref(), info.asn), (*c, *a), "{ip}");
        }
        assert_eq!(g.lookup("203.0.113.7".parse().unwrap()).as_org.as_deref(), Some("Example Cloud"));
    }

    #[test]
    fn country_csv_ranges() {
        let csv = "1.0.0.0,1.0.0.255,au\n2001:db8::,2001:db8::ffff,DE\n";
        let g = Geo::open(Some(&write("cc.csv", csv.as_bytes())), None).unwrap();
        assert_eq!(g.lookup("1.0.0.9".parse().unwrap()).country.as_deref(), Some("AU"));
        assert_eq!(g.lookup("2001:db8::5".parse().unwrap()).country.as_deref(), Some("DE"));
        assert_eq!(g.lookup("9.9.9.9".parse().unwrap()).country, None);
        let e = Geo::open(Some(&write("cc-bad.csv", b"1.0.0.0,1.0.0.255,AU\n1.0.1.0,1.0.1.255,Narnia\n")), None)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("cc-bad.csv:2"), "{e}");
    }

    #[test]
    fn csv_ranges() {
        let csv = "start,end,asn,org\n1.0.0.0,1.0.0.255,13335,\"Cloudflare, Inc.\"\n8.8.8.0,8.8.8.255,15169,GOOGLE\n2001:db8::,2001:db8::ffff,64496,\"Doc \"\"v6\"\"\"\n";
        let g = Geo::open(None, Some(&write("asn.csv", csv.as_bytes()))).unwrap();
        let at = |ip: &str| {
            let i = g.lookup(ip.parse().unwrap());
            (i.asn, i.as_org)
        };
        assert_eq!(at("1.0.0.9"), (Some(13335), Some("Cloudflare, Inc.".into())));
        assert_eq!(at("8.8.8.8"), (Some(15169), Some("GOOGLE".into())));
        assert_eq!(at("8.8.9.1"), (None, None));
        assert_eq!(at("0.0.0.1"), (None, None));
        assert_eq!(at("2001:db8::10"), (Some(64496), Some("Doc \"v6\"".into())));
        let bad = write("bad.csv", b"1.0.0.0,1.0.0.255,13335,x\nnot,an,entry\n");
        let e = Geo::open(None, Some(&bad)).err().unwrap().to_string();
        assert!(e.contains("bad.csv:2"), "{e}");
        let e = Geo::open(Some(&bad), None).err().unwrap().to_string();
        assert!(e.contains("--geoip-country"), "{e}");
    }
}
