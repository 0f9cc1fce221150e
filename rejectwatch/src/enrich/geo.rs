//! Country and autonomous system of a client, from MaxMind-DB-format files
//! (GeoLite2, DB-IP lite, ip-location-db all use it) or CSV ranges
//! `start,end,asn,org` and `start,end,country_code` (how ip-location-db
//! also publishes them).

use std::{
    collections::{HashMap as StdMap, HashSet as StdSet},
    net::IpAddr,
    path::Path,
    sync::{Mutex, OnceLock},
};

use anyhow::{Context as _, bail};
use maxminddb::Reader;
use serde::Deserialize;

// Loading a file hashes every row's names: SipHash took a fifth of the
// load. The files are the operator's, not an attacker's.
type HashMap<K, V> = StdMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = StdSet<K, foldhash::fast::RandomState>;

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

/// Names from the GeoIP files (organisations, country codes), each kept
/// once for the life of the process: an exchange then carries a plain
/// reference to its names, with no allocation and no reference count per
/// lookup. Bounded by the distinct names of the files loaded, which a
/// process loads once (and of a detection snapshot restored, written by
/// a process that had loaded them).
///
/// Each thread keeps the names it has asked for: loading a file asks once
/// a network (hundreds of thousands of times, for a few hundred country
/// codes), and the two files load on two threads, which would otherwise
/// take turns at the lock for every row.
pub fn intern(s: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    thread_local! {
        static SEEN: std::cell::RefCell<HashSet<&'static str>> = Default::default();
    }
    if let Some(k) = SEEN.with_borrow(|seen| seen.get(s).copied()) {
        return k;
    }
    let k = {
        let mut names = NAMES.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
        match names.get(s) {
            Some(&k) => k,
            None => {
                let k: &'static str = Box::leak(s.into());
                names.insert(k);
                k
            }
        }
    };
    SEEN.with_borrow_mut(|seen| seen.insert(k));
    k
}

/// IPv4 ranges, sorted by start, in one flat array, with where each
/// /16's ranges begin: a lookup reads the index, then searches the few
/// ranges of one /16, which sit side by side (a /16 has four or five in
/// the free databases: one or two cache lines), end and value beside the
/// start. Two cache misses on unique addresses, where a search of the
/// whole table missed at nearly every step.
#[derive(Default)]
struct V4Table {
    /// `(start, end, value)`.
    rows: Vec<(u32, u32, u32)>,
    /// `index[h]`: how many ranges start below `h << 16` (65 537 entries).
    index: Vec<u32>,
}

impl V4Table {
    /// From `(start, end, value)` rows sorted as they are to be searched.
    fn new(rows: Vec<(u32, u32, u32)>) -> Self {
        let index = (0..=1u64 << 16).map(|h| rows.partition_point(|r| u64::from(r.0) < h << 16) as u32).collect();
        Self { rows, index }
    }

    /// Asks for the index entry of `x`'s /16 ahead of [`V4Table::find`].
    fn prefetch_index(&self, x: u32) {
        if let Some(e) = self.index.get((x >> 16) as usize) {
            crate::prefetch::read(e);
        }
    }

    /// Asks for the first rows of `x`'s /16 ahead of [`V4Table::find`]:
    /// reads the index entry, which [`V4Table::prefetch_index`] fetched.
    fn prefetch_rows(&self, x: u32) {
        if let Some(r) = self.index.get((x >> 16) as usize).and_then(|&lo| self.rows.get(lo as usize)) {
            crate::prefetch::read(r);
        }
    }

    /// The value of the last range starting at or before `x`, if it holds
    /// `x` (as a binary search of all the starts would find).
    fn find(&self, x: u32) -> Option<u32> {
        let h = (x >> 16) as usize;
        let (lo, hi) = (*self.index.get(h)? as usize, *self.index.get(h + 1)? as usize);
        // Every range starting below this /16 starts before x; every one
        // starting above, after.
        let i = (lo + self.rows[lo..hi].partition_point(|r| r.0 <= x)).checked_sub(1)?;
        let (_, end, value) = self.rows[i];
        (x <= end).then_some(value)
    }
}

/// What a range says: an AS (0 in a country table) and a name (the AS's
/// organisation, or the country code).
type Entry = (u32, &'static str);

/// Ranges from CSV (`start,end,asn,org` or `start,end,country_code`):
/// IPv4 in a [`V4Table`], IPv6 by binary search.
#[derive(Default)]
pub struct AsnRanges {
    v4: V4Table,
    v6: Vec<(u128, u128, u32)>,
    entries: Vec<Entry>,
}

impl AsnRanges {
    /// A file of `start,end,asn,org` rows, or with `countries` of
    /// `start,end,country_code` rows (the code kept as the "org"), read a
    /// line at a time: held whole, the
    /// ASN file's 11 MB were as many megabytes of fresh pages to fault in
    /// and zero, for text dropped a moment later.
    fn open(path: &Path, flag: &str, countries: bool) -> anyhow::Result<Self> {
        let file = std::fs::File::open(path).with_context(|| format!("{flag}: cannot read {}", path.display()))?;
        let len = file.metadata().map_or(0, |m| m.len() as usize);
        Self::read(std::io::BufReader::with_capacity(1 << 16, file), len, &path.display().to_string(), countries)
            .map_err(|e| anyhow::anyhow!("{flag}: {e}"))
    }

    /// Rows from `input`, of about `len` bytes in all.
    fn read(mut input: impl std::io::BufRead, len: usize, source: &str, countries: bool) -> anyhow::Result<Self> {
        let mut entries: Vec<Entry> = Vec::new();
        let mut ids: HashMap<Entry, u32> = HashMap::default();
        // Room for every row at once: grown by doubling, the table was
        // written to fresh memory twice over, and a fresh page costs a
        // fault and its zeroing (a tenth of the load). Rows are 30 bytes or
        // more; room not written is never touched.
        let (mut v4, mut v6) = (Vec::with_capacity(len / 30), Vec::new());
        let mut buf = String::new();
        for i in 0.. {
            buf.clear();
            match input.read_line(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => bail!("{source}:{}: {e}", i + 1),
            }
            let line = buf.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut f = line.splitn(4, ',');
            let (Some(start), Some(end), Some(asn)) = (f.next(), f.next(), f.next()) else {
                bail!("{source}:{}: expected start,end,asn,org", i + 1);
            };
            let third = asn.trim();
            let entry = if countries {
                let cc = third.trim_matches('"');
                if cc.len() != 2 || !cc.bytes().all(|b| b.is_ascii_alphabetic()) {
                    if i == 0 {
                        continue; // a header line
                    }
                    bail!("{source}:{}: {cc:?} is not a country code", i + 1);
                }
                (0, intern(&cc.to_ascii_uppercase()))
            } else {
                let Ok(asn) = third.trim_start_matches("AS").parse::<u32>() else {
                    if i == 0 {
                        continue; // a header line
                    }
                    bail!("{source}:{}: {third:?} is not an AS number", i + 1);
                };
                let org = f.next().unwrap_or("").trim();
                let org = match org.strip_prefix('"').and_then(|o| o.strip_suffix('"')) {
                    Some(quoted) if quoted.contains("\"\"") => intern(&quoted.replace("\"\"", "\"")),
                    Some(quoted) => intern(quoted),
                    None => intern(org),
                };
                (asn, org)
            };
            let next = entries.len() as u32;
            let id = *ids.entry(entry).or_insert_with(|| {
                entries.push(entry);
                next
            });
            match (start.trim().parse::<IpAddr>(), end.trim().parse::<IpAddr>()) {
                (Ok(IpAddr::V4(s)), Ok(IpAddr::V4(e))) => v4.push((u32::from(s), u32::from(e), id)),
                (Ok(IpAddr::V6(s)), Ok(IpAddr::V6(e))) => v6.push((u128::from(s), u128::from(e), id)),
                _ => bail!("{source}:{}: {start:?}..{end:?} is not an address range", i + 1),
            }
        }
        // Overlapping ranges are searched as they always were: by start,
        // then end, then AS and name.
        let order = |e: u32| entries[e as usize];
        v4.sort_unstable_by(|a, b| (a.0, a.1, order(a.2)).cmp(&(b.0, b.1, order(b.2))));
        v6.sort_unstable_by(|a, b| (a.0, a.1, order(a.2)).cmp(&(b.0, b.1, order(b.2))));
        Ok(Self { v4: V4Table::new(v4), v6, entries })
    }

    fn find(&self, ip: IpAddr) -> Option<Entry> {
        let id = match ip {
            IpAddr::V4(a) => self.v4.find(u32::from(a))?,
            IpAddr::V6(a) => {
                let x = u128::from(a);
                let i = self.v6.partition_point(|r| r.0 <= x).checked_sub(1)?;
                let r = self.v6[i];
                (x <= r.1).then_some(r.2)?
            }
        };
        Some(self.entries[id as usize])
    }
}

/// A MaxMind DB file: IPv4 read into a [`V4Table`] when it is opened,
/// IPv6 looked up in the file's tree.
struct Mmdb {
    reader: Reader<Vec<u8>>,
    kind: Kind,
    v4: V4Table,
    /// The values of `v4`.
    entries: Vec<GeoInfo>,
}

#[derive(Clone, Copy)]
enum Kind {
    Country,
    Asn,
}

/// Every IPv4 network of the tree in order, with its record as a lookup
/// decodes it (a record that does not decode is no answer, as for a
/// lookup); neighbours with the same answer merged.
fn flatten<'r, T: Deserialize<'r> + 'r>(
    reader: &'r Reader<Vec<u8>>,
    decode: fn(T) -> Option<GeoInfo>,
) -> Result<(V4Table, Vec<GeoInfo>), maxminddb::MaxMindDbError> {
    // A tree has no more networks than nodes: room for them all at once
    // (see `AsnRanges::read`), capped for a hostile header.
    let room = (reader.metadata.node_count as usize).min(1 << 24);
    let (mut v4, mut entries): (Vec<(u32, u32, u32)>, Vec<GeoInfo>) = (Vec::with_capacity(room), Vec::new());
    let mut ids: HashMap<GeoInfo, u32> = HashMap::default();
    let all: ipnetwork::IpNetwork = "0.0.0.0/0".parse().expect("a network");
    for item in reader.within::<T>(all)? {
        let Ok(item) = item else { continue };
        let (ipnetwork::IpNetwork::V4(net), Some(info)) = (item.ip_net, decode(item.info)) else { continue };
        let next = entries.len() as u32;
        let id = *ids.entry(info).or_insert_with(|| {
            entries.push(info);
            next
        });
        let (start, end) = (u32::from(net.network()), u32::from(net.broadcast()));
        match v4.last_mut() {
            Some((_, last, value)) if *value == id && last.checked_add(1) == Some(start) => *last = end,
            _ => v4.push((start, end, id)),
        }
    }
    Ok((V4Table::new(v4), entries))
}

impl Mmdb {
    fn open(path: &Path, flag: &str, kind: Kind) -> anyhow::Result<Self> {
        let reader = Reader::open_readfile(path)
            .with_context(|| format!("{flag}: cannot open {} as a MaxMind DB", path.display()))?;
        let (v4, entries) = match kind {
            Kind::Country => flatten(&reader, country_info),
            Kind::Asn => flatten(&reader, asn_info),
        }
        .with_context(|| format!("{flag}: cannot read {} as a MaxMind DB", path.display()))?;
        Ok(Self { reader, kind, v4, entries })
    }

    fn find(&self, ip: IpAddr) -> Option<GeoInfo> {
        match ip {
            IpAddr::V4(a) => self.v4.find(u32::from(a)).map(|id| self.entries[id as usize]),
            IpAddr::V6(_) => match self.kind {
                Kind::Country => country_info(self.reader.lookup(ip).ok()??),
                Kind::Asn => asn_info(self.reader.lookup(ip).ok()??),
            },
        }
    }
}

fn country_info(r: CountryRecord<'_>) -> Option<GeoInfo> {
    let cc = r.country.and_then(|c| c.iso_code).or(r.country_code)?;
    Some(GeoInfo { country: Some(intern(cc)), ..Default::default() })
}

fn asn_info(r: AsnRecord<'_>) -> Option<GeoInfo> {
    let info = GeoInfo {
        country: None,
        asn: r.autonomous_system_number,
        as_org: r.autonomous_system_organization.map(intern),
    };
    (info != GeoInfo::default()).then_some(info)
}

pub struct Geo {
    country: Option<Source>,
    asn: Option<Source>,
}

enum Source {
    Mmdb(Mmdb),
    Csv(AsnRanges),
}

/// A MaxMind DB ends with this marker before its metadata (at most 128 KiB
/// of it). Only the file's tail is read: the whole of an ASN CSV was read
/// for this, then again to parse it.
fn is_mmdb(path: &Path) -> bool {
    use std::io::{Read as _, Seek as _, SeekFrom};
    const MARKER: &[u8] = b"\xab\xcd\xefMaxMind.com";
    const TAIL: u64 = 128 * 1024 + MARKER.len() as u64 - 1;
    let tail = || -> std::io::Result<Vec<u8>> {
        let mut f = std::fs::File::open(path)?;
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(TAIL)))?;
        let mut b = Vec::new();
        f.read_to_end(&mut b)?;
        Ok(b)
    };
    tail().is_ok_and(|b| b.windows(MARKER.len()).any(|w| w == MARKER))
}

/// The pass of [`Geo::prefetch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ahead {
    Index,
    Rows,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GeoInfo {
    pub country: Option<&'static str>,
    pub asn: Option<u32>,
    pub as_org: Option<&'static str>,
}

impl Geo {
    pub fn open(country: Option<&Path>, asn: Option<&Path>) -> anyhow::Result<Self> {
        let open_country = |p: &Path| -> anyhow::Result<Source> {
            if is_mmdb(p) {
                return Ok(Source::Mmdb(Mmdb::open(p, "--geoip-country", Kind::Country)?));
            }
            Ok(Source::Csv(AsnRanges::open(p, "--geoip-country", true)?))
        };
        let open_asn = |p: &Path| -> anyhow::Result<Source> {
            if is_mmdb(p) {
                return Ok(Source::Mmdb(Mmdb::open(p, "--geoip-asn", Kind::Asn)?));
            }
            Ok(Source::Csv(AsnRanges::open(p, "--geoip-asn", false)?))
        };
        // Each file's table takes a tenth of a second or so to build: the
        // two are built side by side, which is most of the start-up of an
        // `analyze` of a small log.
        let (country, asn) = std::thread::scope(|scope| {
            let other = country.map(|p| scope.spawn(move || open_country(p)));
            let asn = asn.map(open_asn).transpose();
            let country = other.map(|t| t.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).transpose();
            (country, asn)
        });
        Ok(Self { country: country?, asn: asn? })
    }

    pub fn has_country(&self) -> bool {
        self.country.is_some()
    }

    pub fn has_asn(&self) -> bool {
        self.asn.is_some()
    }

    /// The IPv4 tables a lookup of each address reads, in the order they
    /// are read.
    fn v4_tables(&self) -> impl Iterator<Item = &V4Table> {
        [&self.country, &self.asn].into_iter().flatten().map(|s| match s {
            Source::Mmdb(m) => &m.v4,
            Source::Csv(t) => &t.v4,
        })
    }

    /// Prefetches for a batch of lookups, in two passes over the batch
    /// before the lookups: [`Ahead::Index`] for every address, then
    /// [`Ahead::Rows`] for every address. A lookup of a unique address
    /// misses the caches twice in each table, the index then the rows
    /// (about 280 ns a line inside `analyze`); asked for a batch ahead,
    /// the misses overlap instead of following one another.
    pub fn prefetch(&self, ip: IpAddr, ahead: Ahead) {
        let IpAddr::V4(a) = ip else { return };
        let x = u32::from(a);
        for t in self.v4_tables() {
            match ahead {
                Ahead::Index => t.prefetch_index(x),
                Ahead::Rows => t.prefetch_rows(x),
            }
        }
    }

    /// Country, AS and its organisation: no allocation, and for IPv4 no
    /// walk of a file's tree.
    pub fn lookup(&self, ip: IpAddr) -> GeoInfo {
        let mut out = GeoInfo::default();
        match &self.country {
            Some(Source::Mmdb(m)) => out.country = m.find(ip).and_then(|g| g.country),
            Some(Source::Csv(t)) => out.country = t.find(ip).map(|(_, cc)| cc),
            None => {}
        }
        match &self.asn {
            Some(Source::Mmdb(m)) => {
                if let Some(g) = m.find(ip) {
                    (out.asn, out.as_org) = (g.asn, g.as_org);
                }
            }
            Some(Source::Csv(t)) => {
                if let Some((asn, org)) = t.find(ip) {
                    out.asn = Some(asn);
                    out.as_org = Some(org).filter(|o| !o.is_empty());
                }
            }
            None => {}
        }
        out
    }
}

/// A minimal MaxMind DB writer, for tests and benchmarks: an IPv6 tree (IPv4 under
/// ::/96), 32-bit records, maps of strings and unsigned integers.
#[doc(hidden)]
pub mod testdb {
    use std::net::IpAddr;

    #[derive(Clone)]
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
            assert_eq!((info.country, info.asn), (*c, *a), "{ip}");
        }
        assert_eq!(g.lookup("203.0.113.7".parse().unwrap()).as_org, Some("Example Cloud"));
    }

    #[test]
    fn country_csv_ranges() {
        let csv = "1.0.0.0,1.0.0.255,au\n2001:db8::,2001:db8::ffff,DE\n";
        let g = Geo::open(Some(&write("cc.csv", csv.as_bytes())), None).unwrap();
        assert_eq!(g.lookup("1.0.0.9".parse().unwrap()).country, Some("AU"));
        assert_eq!(g.lookup("2001:db8::5".parse().unwrap()).country, Some("DE"));
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
        assert_eq!(at("1.0.0.9"), (Some(13335), Some("Cloudflare, Inc.")));
        assert_eq!(at("8.8.8.8"), (Some(15169), Some("GOOGLE")));
        assert_eq!(at("8.8.9.1"), (None, None));
        assert_eq!(at("0.0.0.1"), (None, None));
        assert_eq!(at("2001:db8::10"), (Some(64496), Some("Doc \"v6\"")));
        let bad = write("bad.csv", b"1.0.0.0,1.0.0.255,13335,x\nnot,an,entry\n");
        let e = Geo::open(None, Some(&bad)).err().unwrap().to_string();
        assert!(e.contains("bad.csv:2"), "{e}");
        let e = Geo::open(Some(&bad), None).err().unwrap().to_string();
        assert!(e.contains("--geoip-country"), "{e}");
    }

    #[test]
    fn csv_files_are_read_a_line_at_a_time() {
        // Windows line ends, a last line without one, comments.
        let csv = b"# ranges\r\n1.0.0.0,1.0.0.255,13335,Cloudflare\r\n\r\n8.8.8.0,8.8.8.255,15169,GOOGLE";
        let g = Geo::open(None, Some(&write("crlf.csv", csv))).unwrap();
        assert_eq!(g.lookup("1.0.0.1".parse().unwrap()).as_org, Some("Cloudflare"));
        assert_eq!(g.lookup("8.8.8.8".parse().unwrap()).asn, Some(15169));
        // Not text: one line naming the flag, the file and the line.
        let bad = write("latin1.csv", b"1.0.0.0,1.0.0.255,1,ok\n1.0.1.0,1.0.1.255,2,Soci\xe9t\xe9\n");
        let e = Geo::open(None, Some(&bad)).err().unwrap().to_string();
        assert!(e.starts_with("--geoip-asn: ") && e.contains("latin1.csv:2"), "{e}");
        let e = Geo::open(None, Some(Path::new("/nonexistent/asn.csv"))).err().unwrap();
        assert!(format!("{e:#}").starts_with("--geoip-asn: cannot read /nonexistent/asn.csv"), "{e:#}");
    }

    #[test]
    fn the_v4_index_finds_what_a_search_of_every_start_finds() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        // Ranges of every size, overlapping, some starting at a /16's edge.
        let mut rows: Vec<(u32, u32, u32)> = (0..5000)
            .map(|i| {
                let start = if i % 7 == 0 { (next() as u32) & 0xffff_0000 } else { next() as u32 };
                let len = (next() as u32) >> (8 + next() % 24);
                (start, start.saturating_add(len), i)
            })
            .collect();
        rows.push((0, 0, 9998));
        rows.push((u32::MAX - 3, u32::MAX, 9999));
        rows.sort_unstable();
        let table = V4Table::new(rows.clone());
        let full = |x: u32| {
            let i = rows.partition_point(|r| r.0 <= x).checked_sub(1)?;
            (x <= rows[i].1).then_some(rows[i].2)
        };
        let probes = rows.iter().flat_map(|r| [r.0, r.1, r.0.wrapping_sub(1), r.1.wrapping_add(1), r.0 | 0xffff]);
        for x in probes.chain((0..20_000).map(|_| next() as u32)) {
            assert_eq!(table.find(x), full(x), "{}", std::net::Ipv4Addr::from(x));
        }
    }

    #[test]
    fn a_flattened_mmdb_answers_as_its_tree() {
        let code = |i: usize| Value::Map(vec![("country_code".into(), Value::Str(["NL", "DE", "US"][i % 3].into()))]);
        // Neighbours with one record (merged), with different ones, holes,
        // sizes from /8 to /32.
        let mut nets: Vec<(String, Value)> = Vec::new();
        for i in 0..64usize {
            nets.push((format!("11.{i}.0.0/16"), code(i / 4)));
            nets.push((format!("12.0.{}.0/24", i * 2), code(i)));
            nets.push((format!("13.0.0.{}/32", i * 3), code(i / 2)));
        }
        nets.push(("20.0.0.0/8".into(), code(0)));
        let nets: Vec<(&str, Value)> = nets.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
        let g = Geo::open(Some(&write("flat.mmdb", &testdb::build("test-country", &nets))), None).unwrap();
        let Some(Source::Mmdb(m)) = &g.country else { panic!("not read as a MaxMind DB") };
        assert!(m.v4.rows.len() < nets.len(), "neighbours with one record are merged");
        for (net, _) in &nets {
            let net: ipnet::Ipv4Net = net.parse().unwrap();
            let (a, b) = (u32::from(net.network()), u32::from(net.broadcast()));
            for x in [a, b, a.wrapping_sub(1), b.wrapping_add(1), a + (b - a) / 2] {
                let ip = IpAddr::from(std::net::Ipv4Addr::from(x));
                let tree = m.reader.lookup::<CountryRecord>(ip).unwrap().and_then(|r| r.country_code);
                assert_eq!(g.lookup(ip).country, tree, "{ip}");
            }
        }
    }
}
