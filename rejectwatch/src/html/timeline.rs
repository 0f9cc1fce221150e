//! The timeline: requests and rejects per bucket as inline SVG bars, the
//! findings as shapes above them (one shape per classification, as the
//! badges), disclosure markers as lines. Every bar and shape carries a
//! `<title>`, the browser's own tooltip: no script needed to read it.

use std::fmt::{self, Write as _};

use super::{Badge, Num, When};
use crate::{
    detect::{evidence::Class, human},
    tally::Timeline,
    time::Secs,
};

const W: f64 = 960.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 12.0;
/// Above the plot: the lane of finding markers.
const TOP: f64 = 44.0;
const PLOT_BOTTOM: f64 = 210.0;
const H: f64 = 240.0;

pub fn section(o: &mut String, tl: &Timeline, marks: &[Secs]) -> fmt::Result {
    o.push_str("<section id=\"timeline\">\n<h2>Requests and rejects over time</h2>\n");
    if tl.is_empty() {
        o.push_str("<p class=\"muted\">No records with a time.</p>\n</section>\n");
        return Ok(());
    }
    let buckets: Vec<_> = tl.iter().collect();
    let max = buckets.iter().map(|(_, b)| b.requests.max(b.rejects)).max().unwrap_or(0).max(1);
    let (requests, rejects) = buckets.iter().fold((0, 0), |(r, j), (_, b)| (r + b.requests, j + b.rejects));
    let findings: u32 = buckets.iter().map(|(_, b)| b.finding_count()).sum();
    let (start, end) = (buckets[0].0, tl.end());
    let plot_w = W - LEFT - RIGHT;
    let bw = plot_w / buckets.len() as f64;
    let x_of = |t: Secs| LEFT + (f64::from(t.saturating_sub(start)) / f64::from((end - start).max(1))) * plot_w;
    let y_of = |n: u64| PLOT_BOTTOM - (n as f64 / max as f64) * (PLOT_BOTTOM - TOP);
    write!(
        o,
        "<figure>\n<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{requests} requests, {rejects} \
         rejected and {findings} findings from {} to {}, in buckets of {}\">\n\
         <defs><pattern id=\"hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" \
         patternTransform=\"rotate(45)\"><rect class=\"hatch-bg\" width=\"6\" height=\"6\"/>\
         <line class=\"hatch-line\" x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\"/></pattern></defs>\n",
        When(start).plain(),
        When(end).plain(),
        human(tl.width()),
    )?;
    // Grid and the y axis: zero, half and the top.
    for n in [0, max / 2, max] {
        let y = y_of(n);
        writeln!(
            o,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
             <text class=\"axis\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            Num(n)
        )?;
    }
    let gap = if bw > 4.0 { 1.0 } else { 0.0 };
    for (i, (t, b)) in buckets.iter().enumerate() {
        let x = LEFT + i as f64 * bw;
        let (yr, yj) = (y_of(b.requests), y_of(b.rejects));
        write!(
            o,
            "<g class=\"bucket\"><title>{} – {}: {} requests, {} rejected{}</title>\
             <rect class=\"hit\" x=\"{x:.1}\" y=\"{TOP}\" width=\"{bw:.2}\" height=\"{:.1}\"/>",
            When(*t).plain(),
            When(t.saturating_add(tl.width())).plain(),
            Num(b.requests),
            Num(b.rejects),
            caption(b.finding_count(), &b.detectors),
            PLOT_BOTTOM - TOP,
        )?;
        if b.requests > 0 {
            write!(
                o,
                "<rect class=\"req\" x=\"{x:.1}\" y=\"{yr:.1}\" width=\"{:.2}\" height=\"{:.1}\"/>",
                (bw - gap).max(0.5),
                PLOT_BOTTOM - yr
            )?;
        }
        if b.rejects > 0 {
            write!(
                o,
                "<rect class=\"rej\" x=\"{x:.1}\" y=\"{yj:.1}\" width=\"{:.2}\" height=\"{:.1}\"/>",
                (bw - gap).max(0.5),
                PLOT_BOTTOM - yj
            )?;
        }
        o.push_str("</g>\n");
        // The findings' shapes, stacked upwards from the plot by
        // classification, the most urgent lowest.
        let cx = x + bw / 2.0;
        let mut y = TOP - 10.0;
        let mut order: Vec<(usize, Class)> = Class::ALL.into_iter().enumerate().collect();
        order.sort_by_key(|(_, c)| super::rank(*c));
        for (k, class) in order {
            let n = b.findings[k];
            if n == 0 {
                continue;
            }
            writeln!(
                o,
                "<g class=\"marker {c}\"><title>{n} finding(s) on {c} actors{}</title>{}\
                 <line class=\"finding-line\" x1=\"{cx:.1}\" x2=\"{cx:.1}\" y1=\"{TOP}\" y2=\"{PLOT_BOTTOM}\"/></g>",
                detectors(&b.detectors),
                shape(class, cx, y),
                c = class.as_str(),
            )?;
            y -= 11.0;
        }
    }
    for &m in marks.iter().filter(|&&m| (start..=end).contains(&m)) {
        let x = x_of(m);
        writeln!(
            o,
            "<g class=\"mark\"><title>disclosure marker, {}</title>\
             <line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{TOP}\" y2=\"{PLOT_BOTTOM}\"/>\
             <text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\">disclosure</text></g>",
            When(m).plain(),
            x + 3.0,
            TOP + 10.0
        )?;
    }
    // Five time labels along the bottom.
    let ticks = 4;
    for k in 0..=ticks {
        let t = start + ((u64::from(end - start) * k) / ticks) as Secs;
        let anchor = match k {
            0 => "start",
            k if k == ticks => "end",
            _ => "middle",
        };
        writeln!(
            o,
            "<text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text>",
            x_of(t),
            PLOT_BOTTOM + 18.0,
            When(t).plain()
        )?;
    }
    o.push_str("</svg>\n<figcaption class=\"legend\">");
    write!(
        o,
        "<span><svg class=\"key\" viewBox=\"0 0 12 12\"><rect class=\"req\" width=\"12\" height=\"12\"/></svg> requests</span>\
         <span><svg class=\"key\" viewBox=\"0 0 12 12\"><rect class=\"rej\" width=\"12\" height=\"12\"/></svg> rejected</span>"
    )?;
    for c in Class::ALL {
        write!(o, "<span>{} finding</span>", Badge(c))?;
    }
    write!(o, "<span class=\"muted\">each bar {}</span></figcaption>\n</figure>\n</section>\n", human(tl.width()))
}

/// A marker's shape, centred on (x, y): the badges' shapes.
fn shape(c: Class, x: f64, y: f64) -> String {
    let r = 5.0;
    match c {
        Class::Threat => format!(
            "<polygon points=\"{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}\"/>",
            x,
            y - r,
            x + r,
            y + r * 0.8,
            x - r,
            y + r * 0.8
        ),
        Class::Prospect => format!(
            "<polygon points=\"{x:.1},{:.1} {:.1},{y:.1} {x:.1},{:.1} {:.1},{y:.1}\"/>",
            y - r,
            x + r,
            y + r,
            x - r
        ),
        Class::Misconfiguration => {
            format!(
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"/>",
                x - r * 0.8,
                y - r * 0.8,
                r * 1.6,
                r * 1.6
            )
        }
        Class::Unknown => format!("<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{:.1}\"/>", r * 0.8),
    }
}

fn detectors(d: &[Option<&'static str>]) -> String {
    let names: Vec<&str> = d.iter().flatten().copied().collect();
    if names.is_empty() { String::new() } else { format!(" ({})", names.join(", ")) }
}

fn caption(findings: u32, d: &[Option<&'static str>]) -> String {
    match findings {
        0 => String::new(),
        n => format!(", {n} finding(s){}", detectors(d)),
    }
}
