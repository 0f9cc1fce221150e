//! What the HTML report draws that the roster does not keep: requests,
//! rejects and findings over the input's time, and the endpoints rejected
//! most. Fed by the sinks as exchanges and findings pass, in record time,
//! and bounded whatever the input: the timeline has at most
//! [`MAX_BUCKETS`] buckets (they widen as the input lengthens) and the
//! endpoint list at most [`MAX_ENDPOINTS`] entries.

use std::collections::{BTreeMap, HashMap, VecDeque};

use foldhash::fast::FixedState;

use crate::{detect::evidence::Class, time::Secs};

/// Enough bars for a chart a screen wide to stay readable.
pub const MAX_BUCKETS: usize = 120;
/// The narrowest bucket: finer than a minute says nothing a person reads.
const MIN_WIDTH: Secs = 60;
/// Detector names a bucket remembers for its markers' captions.
const DETECTORS_PER_BUCKET: usize = 3;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    pub requests: u64,
    pub rejects: u64,
    /// Findings by the classification of their actor, in [`Class::ALL`]'s
    /// order.
    pub findings: [u32; 4],
    /// The first few detectors that fired in it, for the marker's caption.
    pub detectors: [Option<&'static str>; DETECTORS_PER_BUCKET],
}

impl Bucket {
    fn absorb(&mut self, o: &Bucket) {
        self.requests += o.requests;
        self.rejects += o.rejects;
        for (a, b) in self.findings.iter_mut().zip(o.findings) {
            *a = a.saturating_add(b);
        }
        for d in o.detectors.into_iter().flatten() {
            self.note_detector(d);
        }
    }

    fn note_detector(&mut self, d: &'static str) {
        if self.detectors.contains(&Some(d)) {
            return;
        }
        if let Some(free) = self.detectors.iter_mut().find(|s| s.is_none()) {
            *free = Some(d);
        }
    }

    pub fn finding_count(&self) -> u32 {
        self.findings.iter().sum()
    }
}

/// Counts per time bucket. The width starts at a minute and doubles
/// (neighbours merged) whenever the input's span would need more than
/// [`MAX_BUCKETS`]; a bucket starts at a multiple of its width, so merging
/// never splits one.
#[derive(Clone, Debug)]
pub struct Timeline {
    start: Secs,
    width: Secs,
    buckets: VecDeque<Bucket>,
}

impl Default for Timeline {
    fn default() -> Self {
        Self { start: 0, width: MIN_WIDTH, buckets: VecDeque::new() }
    }
}

impl Timeline {
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    pub fn width(&self) -> Secs {
        self.width
    }

    /// Each bucket with its start time, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (Secs, &Bucket)> {
        self.buckets.iter().enumerate().map(|(i, b)| (self.start.saturating_add(i as Secs * self.width), b))
    }

    /// The end of the last bucket.
    pub fn end(&self) -> Secs {
        self.start.saturating_add(self.buckets.len() as Secs * self.width)
    }

    /// The bucket holding time `t`, made (and the others widened) as needed.
    pub fn at(&mut self, t: Secs) -> &mut Bucket {
        if self.buckets.is_empty() {
            self.start = t - t % self.width;
            self.buckets.push_back(Bucket::default());
        }
        if t < self.start {
            // Records arrive roughly in order; an earlier one (logs merged
            // from hosts with skewed clocks) grows the chart to the left.
            loop {
                let aligned = t - t % self.width;
                let more = ((self.start - aligned) / self.width) as usize;
                if self.buckets.len() + more <= MAX_BUCKETS {
                    for _ in 0..more {
                        self.buckets.push_front(Bucket::default());
                    }
                    self.start = aligned;
                    break;
                }
                self.widen();
            }
        }
        let mut i = ((t - self.start) / self.width) as usize;
        while i >= MAX_BUCKETS {
            self.widen();
            i = ((t - self.start) / self.width) as usize;
        }
        if i >= self.buckets.len() {
            self.buckets.resize(i + 1, Bucket::default());
        }
        &mut self.buckets[i]
    }

    /// Doubles the width, merging neighbours.
    fn widen(&mut self) {
        let Some(width) = self.width.checked_mul(2) else { return };
        let start = self.start - self.start % width;
        let mut merged: VecDeque<Bucket> = VecDeque::with_capacity(self.buckets.len() / 2 + 1);
        for (i, b) in self.buckets.iter().enumerate() {
            let t = self.start + i as Secs * self.width;
            let j = ((t - start) / width) as usize;
            if j >= merged.len() {
                merged.resize(j + 1, Bucket::default());
            }
            merged[j].absorb(b);
        }
        (self.start, self.width, self.buckets) = (start, width, merged);
    }
}

/// The keys counted most, approximately, in bounded space: the
/// Space-Saving algorithm. A key seen while the table is full takes the
/// place of the least counted one, inheriting its count as a possible
/// overcount; any key counted more than total / capacity times is in the
/// table, with its count at most its `over` too high.
#[derive(Clone, Debug)]
pub struct TopCounts {
    cap: usize,
    counts: HashMap<Box<str>, Counted, FixedState>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counted {
    pub count: u64,
    /// How much of `count` may belong to keys it displaced.
    pub over: u64,
    /// Whether the endpoint is part of the API (as of its last reject).
    pub known: bool,
}

/// Endpoints kept: several times those shown, so that the shown ones'
/// counts are nearly exact.
pub const MAX_ENDPOINTS: usize = 100;
/// An attacker's path is kept to this many bytes.
const MAX_KEY: usize = 200;

impl TopCounts {
    pub fn new(cap: usize) -> Self {
        Self { cap: cap.max(1), counts: HashMap::default() }
    }

    pub fn add(&mut self, key: &str, known: bool) {
        if let Some(c) = self.counts.get_mut(key) {
            c.count += 1;
            c.known = known;
            return;
        }
        let key = truncate(key, MAX_KEY);
        if let Some(c) = self.counts.get_mut(key) {
            c.count += 1;
            c.known = known;
            return;
        }
        let mut entry = Counted { count: 1, over: 0, known };
        if self.counts.len() >= self.cap
            && let Some((least, c)) =
                self.counts.iter().min_by_key(|(k, c)| (c.count, *k)).map(|(k, c)| (k.clone(), *c))
        {
            self.counts.remove(&least);
            entry = Counted { count: c.count + 1, over: c.count, known };
        }
        self.counts.insert(key.into(), entry);
    }

    /// The `n` counted most, most first.
    pub fn top(&self, n: usize) -> Vec<(&str, Counted)> {
        let mut v: Vec<(&str, Counted)> = self.counts.iter().map(|(k, c)| (&**k, *c)).collect();
        v.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(b.0)));
        v.truncate(n);
        v
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Everything the report needs from the passing exchanges and findings.
#[derive(Clone, Debug)]
pub struct Tally {
    pub timeline: Timeline,
    pub rejected_endpoints: TopCounts,
    /// Findings by detector (a fixed set of names).
    pub findings_by_detector: BTreeMap<&'static str, u64>,
    pub requests: u64,
    pub rejects: u64,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            timeline: Timeline::default(),
            rejected_endpoints: TopCounts::new(MAX_ENDPOINTS),
            findings_by_detector: BTreeMap::new(),
            requests: 0,
            rejects: 0,
        }
    }
}

impl Tally {
    /// The bucket of time `t`, but for a record without a time (0), which
    /// would stretch the chart back to 1970.
    fn bucket(&mut self, t: Secs) -> Option<&mut Bucket> {
        (t > 0).then(|| self.timeline.at(t))
    }

    pub fn request(&mut self, t: Secs) {
        self.requests += 1;
        if let Some(b) = self.bucket(t) {
            b.requests += 1;
        }
    }

    pub fn reject(&mut self, t: Secs, endpoint: &str, known: bool) {
        self.rejects += 1;
        if let Some(b) = self.bucket(t) {
            b.rejects += 1;
        }
        self.rejected_endpoints.add(endpoint, known);
    }

    pub fn finding(&mut self, t: Secs, class: Class, detector: &'static str) {
        if let Some(b) = self.bucket(t) {
            let i = Class::ALL.iter().position(|c| *c == class).unwrap_or(3);
            b.findings[i] = b.findings[i].saturating_add(1);
            b.note_detector(detector);
        }
        *self.findings_by_detector.entry(detector).or_default() += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(t: &Timeline) -> (u64, u64, u32) {
        t.iter().fold((0, 0, 0), |(r, j, f), (_, b)| (r + b.requests, j + b.rejects, f + b.finding_count()))
    }

    #[test]
    fn a_long_input_widens_the_buckets_and_keeps_every_count() {
        let mut tally = Tally::default();
        let t0: Secs = 1_790_000_000;
        // A week, one request a minute, every third rejected.
        for i in 0..7 * 24 * 60 {
            let t = t0 + i * 60;
            tally.request(t);
            if i % 3 == 0 {
                tally.reject(t, "/api/x", true);
            }
        }
        tally.finding(t0 + 3600, Class::Threat, "single-path");
        let tl = &tally.timeline;
        assert!(tl.iter().count() <= MAX_BUCKETS, "{} buckets", tl.iter().count());
        assert!(tl.width() > MIN_WIDTH && tl.width() % MIN_WIDTH == 0, "{}", tl.width());
        assert_eq!(totals(tl), (7 * 24 * 60, 7 * 24 * 20, 1));
        let (first, _) = tl.iter().next().unwrap();
        assert!(first <= t0 && t0 < first + tl.width());
        assert!(tl.end() > t0 + (7 * 24 * 60 - 1) * 60);
        assert_eq!(first % tl.width(), 0, "buckets start at a multiple of their width");
    }

    #[test]
    fn an_earlier_record_grows_the_chart_to_the_left() {
        let mut tl = Timeline::default();
        let t0: Secs = 1_790_000_000;
        tl.at(t0).requests += 1;
        tl.at(t0 - 600).requests += 1;
        assert_eq!(tl.width(), MIN_WIDTH);
        let (first, b) = tl.iter().next().unwrap();
        assert!(first <= t0 - 600 && b.requests == 1);
        // Far earlier: widened, nothing lost, still bounded.
        tl.at(t0 - 30 * 86_400).requests += 1;
        assert!(tl.iter().count() <= MAX_BUCKETS);
        assert_eq!(totals(&tl).0, 3);
    }

    #[test]
    fn a_bucket_names_a_few_detectors_once_each() {
        let mut tally = Tally::default();
        for d in ["a", "b", "a", "c", "d"] {
            tally.finding(100, Class::Misconfiguration, d);
        }
        let (_, b) = tally.timeline.iter().next().unwrap();
        assert_eq!(b.detectors, [Some("a"), Some("b"), Some("c")]);
        assert_eq!(b.findings, [0, 0, 5, 0]);
        assert_eq!(tally.findings_by_detector.get("a"), Some(&2));
    }

    #[test]
    fn the_endpoints_rejected_most_stay_whatever_else_passes() {
        let mut top = TopCounts::new(10);
        for i in 0..10_000u32 {
            top.add("/login", true);
            if i % 2 == 0 {
                top.add("/.env", false);
            }
            // A scanner's every path new.
            top.add(&format!("/scan/{i}"), false);
        }
        let t = top.top(2);
        assert_eq!(t[0].0, "/login");
        assert_eq!(t[1].0, "/.env");
        assert!(t[0].1.count - t[0].1.over <= 10_000 && t[0].1.count >= 10_000, "{:?}", t[0]);
        assert!(!t[1].1.known && t[0].1.known);
        assert!(top.counts.len() <= 10);
        let long = "/".repeat(10) + &"é".repeat(300);
        top.add(&long, false);
        assert!(top.counts.keys().all(|k| k.len() <= MAX_KEY));
    }
}
