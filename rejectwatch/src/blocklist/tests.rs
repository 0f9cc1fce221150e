//! Listing, expiry, repeat offenders, the allowlist, folding, the formats
//! and the state file.

use std::path::Path;

use super::{format::*, *};
use crate::state;

const T0: Secs = 1_795_000_000;
const H: Secs = 3600;

fn key(s: &str) -> ClientKey {
    ClientKey::new(s.parse().unwrap(), 64)
}

fn actor(id: &str, class: Class, clients: &[&str], last: Secs) -> Actor {
    Actor::stub(id, class, clients.iter().map(|c| key(c)).collect(), last - 60, last)
}

fn list(cfg: &BlocklistConfig) -> Blocklist {
    Blocklist::new(cfg, Exemptions::new(cfg, &[], &[]))
}

fn nets(b: &Blocklist) -> Vec<String> {
    b.entries().iter().map(|e| e.net.to_string()).collect()
}

#[test]
fn threats_listed_prospects_and_misconfigurations_never() {
    let mut b = list(&BlocklistConfig::default());
    let actors = [
        actor("a-1", Class::Threat, &["198.51.100.7", "2001:db8:1:2::99"], T0),
        actor("a-2", Class::Prospect, &["203.0.113.5"], T0),
        actor("a-3", Class::Misconfiguration, &["192.0.2.10"], T0),
        actor("a-4", Class::Unknown, &["192.0.2.11"], T0),
    ];
    b.update(&actors, T0);
    assert_eq!(nets(&b), ["198.51.100.7/32", "2001:db8:1:2::/64"]);
    assert!(b.changed);
    assert_eq!(b.counts(), (1, 1));
    let e = &b.entries()[0];
    assert_eq!((e.expires, e.offences, e.actor.as_str()), (T0 + 4 * H, 1, "a-1"));

    // The threat is reclassified (merged into a misconfiguration): off.
    b.changed = false;
    let later = [actor("a-1", Class::Misconfiguration, &["198.51.100.7"], T0 + 60)];
    b.update(&later, T0 + 60);
    assert_eq!(nets(&b), ["2001:db8:1:2::/64"]);
    assert!(b.changed);
}

#[test]
fn entries_expire_and_repeat_offenders_stay_longer() {
    let cfg = BlocklistConfig { max_ttl: Duration::from_secs(10 * 3600), ..Default::default() };
    let mut b = list(&cfg);
    let a = |last| [actor("a-1", Class::Threat, &["198.51.100.7"], last)];
    b.update(&a(T0), T0);
    // Activity while listed extends the entry from the latest request.
    b.update(&a(T0 + H), T0 + H);
    assert_eq!(b.entries()[0].expires, T0 + 5 * H);
    b.expire(T0 + 5 * H - 1);
    assert_eq!(b.len(), 1);
    b.changed = false;
    b.expire(T0 + 5 * H);
    assert!(b.is_empty() && b.changed);
    // An old actor that stopped long ago is not listed again by a later
    // roster walk...
    b.update(&a(T0 + H), T0 + 6 * H);
    assert!(b.is_empty());
    // ...but when it comes back it is a second offence: 8 h, then 10 h (capped).
    b.update(&a(T0 + 6 * H), T0 + 6 * H);
    assert_eq!(b.entries()[0].offences, 2);
    assert_eq!(b.entries()[0].expires, T0 + 14 * H);
    b.expire(T0 + 14 * H);
    b.update(&a(T0 + 20 * H), T0 + 20 * H);
    assert_eq!((b.entries()[0].offences, b.entries()[0].expires), (3, T0 + 30 * H));
}

#[test]
fn counted_from_now_a_long_quiet_threat_is_listed() {
    // Quiet for a week by the last record: as of it, nothing is listed...
    let a = [actor("a-1", Class::Threat, &["198.51.100.7"], T0)];
    let mut b = list(&BlocklistConfig::default());
    b.update(&a, T0 + 7 * 24 * H);
    assert!(b.is_empty());
    // ...counted from the time of the run, it is, for a ttl from then.
    let now = T0 + 9 * 24 * H;
    let mut b = list(&BlocklistConfig::default());
    b.update_from_now(&a, now);
    let e = &b.entries()[0];
    assert_eq!((e.net.to_string(), e.expires, e.listed, e.seen), ("198.51.100.7/32".into(), now + 4 * H, now, T0));
    // A repeat offender stays longer, from now too.
    let cfg = BlocklistConfig { max_ttl: Duration::from_secs(10 * H as u64), ..Default::default() };
    let mut b = list(&cfg);
    b.restore(Vec::new(), vec![("198.51.100.7/32".parse().unwrap(), Past { offences: 1, seen: T0 - 24 * H })], T0);
    b.update_from_now(&a, now);
    assert_eq!((b.entries()[0].offences, b.entries()[0].expires), (2, now + 8 * H));
    // Prospects and the allowlist are as ever.
    let cfg = BlocklistConfig { allowlist: vec!["198.51.100.7/32".parse().unwrap()], ..Default::default() };
    let mut b = list(&cfg);
    b.update_from_now(&[a[0].clone(), actor("a-2", Class::Prospect, &["192.0.2.1"], T0)], now);
    assert!(b.is_empty());
}

#[test]
fn allowlist_excludes_hosts_and_networks_holding_them() {
    let cfg = BlocklistConfig {
        allowlist: vec!["198.51.100.0/24".parse().unwrap(), "2001:db8:1:2::10/128".parse().unwrap()],
        ..Default::default()
    };
    let mut b = list(&cfg);
    let actors = [actor("a-1", Class::Threat, &["198.51.100.7", "2001:db8:1:2::99", "2001:db8:9::1", "192.0.2.1"], T0)];
    b.update(&actors, T0);
    // The /64 holds an allowlisted host, so it is not listed either.
    assert_eq!(nets(&b), ["192.0.2.1/32", "2001:db8:9::/64"]);
}

#[test]
fn never_ourselves_our_proxies_or_private_ranges() {
    let threats = |ips: &[&str]| -> Vec<Actor> {
        ips.iter().enumerate().map(|(i, ip)| actor(&format!("a-{i}"), Class::Threat, &[ip], T0)).collect()
    };
    let all = threats(&["127.0.0.1", "::1", "198.51.100.1", "169.254.1.1", "10.0.0.7", "10.1.2.3", "203.0.113.7"]);
    let trusted: IpNet = "10.0.0.7/32".parse().unwrap();
    let own: IpAddr = "198.51.100.1".parse().unwrap();
    let cfg = BlocklistConfig::default();
    let mut b = Blocklist::new(&cfg, Exemptions::new(&cfg, &[trusted], &[own]));
    b.update(&all, T0);
    assert_eq!(nets(&b), ["203.0.113.7/32"]);
    let why: Vec<Option<&str>> = all.iter().map(|a| b.not_blocked(&a.clients[0]).map(NotBlocked::as_str)).collect();
    assert_eq!(
        why,
        [
            Some("loopback"),
            Some("loopback"),
            Some("own_address"),
            Some("link_local"),
            Some("trusted_proxy"),
            Some("private_range"),
            None
        ]
    );
    // With block_private, a private attacker is listed; the host and its
    // proxy still are not.
    let cfg = BlocklistConfig { block_private: true, ..Default::default() };
    let mut b = Blocklist::new(&cfg, Exemptions::new(&cfg, &[trusted], &[own]));
    b.update(&all, T0);
    assert_eq!(nets(&b), ["10.1.2.3/32", "203.0.113.7/32"]);
    // Entries restored from an older state are held to the same rules.
    let entry = |net: &str| Entry {
        net: net.parse().unwrap(),
        expires: T0 + H,
        listed: T0,
        seen: T0,
        offences: 1,
        actor: "x".into(),
    };
    let cfg = BlocklistConfig::default();
    let mut b = Blocklist::new(&cfg, Exemptions::new(&cfg, &[], &[]));
    b.restore(vec![entry("127.0.0.1/32"), entry("10.1.2.3/32"), entry("192.0.2.1/32")], Vec::new(), T0);
    assert_eq!(nets(&b), ["192.0.2.1/32"]);
}

#[test]
fn capped_by_evicting_the_soonest_to_expire() {
    let cfg = BlocklistConfig { max_entries: 2, ..Default::default() };
    let mut b = list(&cfg);
    let actors = [
        actor("a-1", Class::Threat, &["192.0.2.1"], T0 + 10),
        actor("a-2", Class::Threat, &["192.0.2.2"], T0),
        actor("a-3", Class::Threat, &["192.0.2.3"], T0 + 20),
    ];
    b.update(&actors, T0 + 20);
    assert_eq!(nets(&b), ["192.0.2.1/32", "192.0.2.3/32"]);
    assert_eq!(b.evicted, 1);
}

#[test]
fn a_flood_past_the_cap_keeps_the_entries_that_expire_last() {
    // Many more threats in one update than the cap: the list is trimmed in
    // batches, and ends holding exactly the cap's worth of the latest.
    let cfg = BlocklistConfig { max_entries: 10, ..Default::default() };
    let mut b = list(&cfg);
    let ips: Vec<String> = (0..100).map(|i| format!("192.0.2.{i}")).collect();
    let actors: Vec<Actor> =
        ips.iter().enumerate().map(|(i, ip)| actor(&format!("a-{i}"), Class::Threat, &[ip], T0 + i as Secs)).collect();
    b.update(&actors, T0 + 100);
    assert_eq!(nets(&b), (90..100).map(|i| format!("192.0.2.{i}/32")).collect::<Vec<_>>());
    assert_eq!(b.evicted, 90);
    // They all expire: the offences remembered are capped too.
    b.update(&[], T0 + 100 + 30 * 24 * H);
    assert!(b.is_empty());
    assert_eq!(b.past().count(), 10);
}

#[test]
fn contained_networks_fold_into_the_wider_one() {
    let mut b = list(&BlocklistConfig::default());
    b.restore(
        vec![
            Entry {
                net: "2001:db8::/48".parse().unwrap(),
                expires: T0 + H,
                listed: T0,
                seen: T0,
                offences: 1,
                actor: "x".into(),
            },
            Entry {
                net: "2001:db8:0:5::/64".parse().unwrap(),
                expires: T0 + 2 * H,
                listed: T0,
                seen: T0,
                offences: 1,
                actor: "y".into(),
            },
        ],
        Vec::new(),
        T0,
    );
    let e = b.entries();
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].net.to_string(), e[0].expires), ("2001:db8::/48".to_string(), T0 + 2 * H));
}

fn rendered(nft_rule: bool) -> (Vec<Entry>, impl Fn(Format, &[Entry]) -> String) {
    let mut b = list(&BlocklistConfig::default());
    b.update(&[actor("a-1", Class::Threat, &["198.51.100.7", "2001:db8:1:2::99"], T0)], T0);
    (b.entries(), move |f, e: &[Entry]| Render { entries: e, now: T0 + 60, nft_rule }.to_string(f))
}

#[test]
fn nftables_script() {
    let (e, r) = rendered(true);
    let s = r(Format::Nft, &e);
    assert!(s.contains("table inet rejectwatch {"), "{s}");
    assert!(s.contains("set v4 {\n\t\ttype ipv4_addr\n\t\tflags interval, timeout"), "{s}");
    assert!(s.contains("flush set inet rejectwatch v4\n"), "{s}");
    assert!(s.contains("add element inet rejectwatch v4 { 198.51.100.7 timeout 14340s }"), "{s}");
    assert!(s.contains("add element inet rejectwatch v6 { 2001:db8:1:2::/64 timeout 14340s }"), "{s}");
    assert!(s.contains("add rule inet rejectwatch prerouting ip saddr @v4 counter drop"), "{s}");
    let (_, r) = rendered(false);
    let empty = r(Format::Nft, &[]);
    assert!(!empty.contains("add element") && !empty.contains("chain"), "{empty}");
    assert!(empty.contains("flush set inet rejectwatch v6"), "{empty}");
}

#[test]
fn ipset_and_text() {
    let (e, r) = rendered(false);
    let s = r(Format::Ipset, &e);
    for line in [
        "create rejectwatch-v4 hash:net family inet timeout 0 maxelem 1048576 -exist",
        "create rejectwatch-v6-new hash:net family inet6 timeout 0 maxelem 1048576 -exist",
        "flush rejectwatch-v4-new",
        "add rejectwatch-v4-new 198.51.100.7 timeout 14340 -exist",
        "add rejectwatch-v6-new 2001:db8:1:2::/64 timeout 14340 -exist",
        "swap rejectwatch-v4-new rejectwatch-v4",
        "destroy rejectwatch-v6-new",
    ] {
        assert!(s.lines().any(|l| l == line), "{line:?} missing from:\n{s}");
    }
    let t = r(Format::Txt, &e);
    let body: Vec<&str> = t.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(body, ["198.51.100.7", "2001:db8:1:2::/64"]);
    assert!(Format::from_path(Path::new("/x/list.conf")).unwrap_err().contains(".nft, .ipset or .txt"));
}

#[test]
fn state_survives_a_restart_and_expires_on_time() {
    let dir = std::env::temp_dir().join(format!("rw-blocklist-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut b = list(&BlocklistConfig::default());
    b.update(&[actor("a-1", Class::Threat, &["198.51.100.7", "192.0.2.9"], T0)], T0);
    b.update(&[actor("a-2", Class::Threat, &["192.0.2.50"], T0 - 4 * H + 10)], T0);
    b.expire(T0 + 10);
    state::blocklist::save(&dir, &b).unwrap();
    let mut again = list(&BlocklistConfig::default());
    assert_eq!(state::blocklist::load(&dir, &mut again, T0 + 20).unwrap(), 2);
    assert_eq!(nets(&again), ["192.0.2.9/32", "198.51.100.7/32"]);
    let past: Vec<(String, u32)> = again.past().map(|(n, p)| (n.to_string(), p.offences)).collect();
    assert_eq!(past, [("192.0.2.50/32".to_string(), 1)]);
    // Loaded after the entries' time: nothing comes back.
    let mut late = list(&BlocklistConfig::default());
    assert_eq!(state::blocklist::load(&dir, &mut late, T0 + 4 * H).unwrap(), 0);
    // A corrupt state file is an error that names it, not a panic.
    std::fs::write(state::blocklist::file(&dir), "{\"version\":1,\"entries\":[{\"net\":\"nope\"}]}").unwrap();
    let e = state::blocklist::load(&dir, &mut late, T0).unwrap_err();
    assert!(format!("{e:#}").contains("blocklist.json"), "{e:#}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn config_is_validated() {
    let bad = BlocklistConfig { max_ttl: Duration::from_secs(60), ..Default::default() };
    assert!(bad.validate().unwrap_err().contains("blocklist.max_ttl"));
    let bad = BlocklistConfig { paths: vec!["/tmp/x.json".into()], ..Default::default() };
    assert!(bad.validate().unwrap_err().contains("blocklist.paths"));
    assert!(BlocklistConfig::default().validate().is_ok());
}
