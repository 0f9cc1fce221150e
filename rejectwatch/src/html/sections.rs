//! The report's shorter sections: the verdict on top, the prospects to
//! contact, the misconfigurations to fix and the endpoints rejected most.

use std::fmt::{self, Write as _};

use super::{Badge, Esc, Num, Report, When};
use crate::{
    detect::{
        actors::Actor,
        evidence::{Class, Leaning},
    },
    report::Prospect,
    tally::Tally,
    time::Secs,
};

/// Endpoints listed.
const TOP_ENDPOINTS: usize = 20;

pub fn verdict(o: &mut String, r: &Report) -> fmt::Result {
    let listed =
        r.actors.iter().filter(|a| a.class == Class::Threat && a.clients.iter().any(|k| r.blocklist.lists(k))).count();
    let n = |c| r.count(c);
    let mut said = Vec::new();
    for (c, one, many, to) in [
        (Class::Threat, "threat", "threats", ""),
        (Class::Prospect, "prospect", "prospects", " to contact"),
        (Class::Misconfiguration, "misconfiguration", "misconfigurations", " to fix"),
    ] {
        match n(c) {
            0 => {}
            1 => said.push(format!("1 {one}{to}")),
            k => said.push(format!("{k} {many}{to}")),
        }
    }
    let lede = if said.is_empty() { "Nothing to act on.".to_string() } else { format!("{}.", join_and(&said)) };
    write!(
        o,
        "<section id=\"verdict\">\n<h2>Verdict</h2>\n<p class=\"verdict-lede\">{}</p>\n<div class=\"cards\">",
        Esc(&lede)
    )?;
    for (c, note) in [
        (Class::Threat, format!("{listed} blocklisted")),
        (Class::Prospect, "to contact".to_string()),
        (Class::Misconfiguration, "to fix".to_string()),
        (Class::Unknown, "watched, not judged".to_string()),
    ] {
        write!(
            o,
            "<a class=\"card {c}\" href=\"#class={c}\" data-filter-link=\"{c}\"><span class=\"card-n\">{}</span>{}\
             <span class=\"card-note\">{note}</span></a>",
            n(c),
            Badge(c),
            c = c.as_str(),
        )?;
    }
    let t = r.tally;
    let share = if t.requests > 0 { t.rejects as f64 * 100.0 / t.requests as f64 } else { 0.0 };
    write!(
        o,
        "</div>\n<dl class=\"stats\"><div><dt>Requests</dt><dd>{}</dd></div><div><dt>Rejected</dt><dd>{} \
         <span class=\"muted\">({share:.1}%)</span></dd></div><div><dt>Findings</dt><dd>{}</dd></div>\
         <div><dt>Actors</dt><dd>{}</dd></div></dl>\n",
        Num(t.requests),
        Num(t.rejects),
        Num(r.findings),
        Num(r.actors.len() as u64),
    )?;
    if !t.findings_by_detector.is_empty() {
        o.push_str("<p class=\"detectors\"><span class=\"muted\">Findings by detector:</span> ");
        let mut by: Vec<_> = t.findings_by_detector.iter().collect();
        by.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (d, k) in by {
            write!(o, "<span class=\"chip\"><span class=\"mono\">{}</span> {}</span> ", Esc(d), Num(*k))?;
        }
        o.push_str("</p>\n");
    }
    o.push_str("</section>\n");
    Ok(())
}

fn join_and(parts: &[String]) -> String {
    match parts {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

pub fn prospects(o: &mut String, r: &Report) -> fmt::Result {
    let rows: Vec<(&Actor, Prospect)> =
        r.actors.iter().filter(|a| a.class == Class::Prospect).map(|a| (*a, Prospect::of(a, r.geo))).collect();
    o.push_str(
        "<section id=\"prospects\">\n<h2>Prospects to contact</h2>\n<p class=\"lede\">Honest client libraries \
         polling on a schedule and turned away: someone wants this data. The network's owner is who to look up first.</p>\n",
    );
    if rows.is_empty() {
        o.push_str("<p class=\"muted\">None.</p>\n</section>\n");
        return Ok(());
    }
    o.push_str(
        "<div class=\"scroll\"><table><thead><tr><th>Tool</th><th>Network owners</th><th>Countries</th>\
         <th>Polls</th><th>Endpoints</th><th>Addresses</th><th class=\"num\">Requests</th><th>First seen</th>\
         <th>Last seen</th><th>Actor</th></tr></thead><tbody>\n",
    );
    for (a, p) in rows {
        writeln!(
            o,
            "<tr><td class=\"mono\">{}</td><td>{}<br><span class=\"muted mono\">{}</span></td><td>{}</td>\
             <td class=\"nowrap\">{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td class=\"num\">{}</td>\
             <td class=\"nowrap\">{}</td><td class=\"nowrap\">{}</td>\
             <td class=\"mono\"><a href=\"#actor-{actor}\">{actor}</a></td></tr>",
            lines(a.products.iter()),
            lines(p.as_orgs.split("; ").filter(|s| !s.is_empty())),
            Esc(&p.asns),
            Esc(or_dash(&p.countries)),
            Esc(&every(&p.cadence)),
            lines(a.endpoints.iter()),
            lines(a.clients.iter().map(ToString::to_string)),
            Num(p.requests),
            When(a.first_seen),
            When(a.last_seen),
            actor = Esc(&p.actor),
        )?;
    }
    o.push_str("</tbody></table></div>\n</section>\n");
    Ok(())
}

/// Items shown in a cell, one a line; the rest counted.
const CELL_ITEMS: usize = 8;

/// Items one a line, escaped; a dash for none.
fn lines<T: AsRef<str>>(items: impl Iterator<Item = T>) -> String {
    let mut out = String::new();
    let mut n = 0;
    for item in items {
        if n < CELL_ITEMS {
            if n > 0 {
                out.push_str("<br>");
            }
            out.push_str(&Esc(item.as_ref()).to_string());
        }
        n += 1;
    }
    match n {
        0 => "—".into(),
        n if n > CELL_ITEMS => format!("{out}<br><span class=\"muted\">+{} more</span>", n - CELL_ITEMS),
        _ => out,
    }
}

/// `5m` → `every 5m`; nothing → a dash.
fn every(cadence: &str) -> String {
    if cadence.is_empty() { "—".into() } else { format!("every {cadence}") }
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "—" } else { s }
}

/// Misconfigured clients of the same endpoints, as one mistake: a policy
/// change locks out every client of an endpoint at once, and twelve rows
/// of one mistake read as twelve.
struct Mistake<'a> {
    endpoints: Vec<&'a str>,
    since: Secs,
    actors: Vec<&'a Actor>,
}

pub fn misconfigurations(o: &mut String, r: &Report) -> fmt::Result {
    o.push_str(
        "<section id=\"misconfigurations\">\n<h2>Misconfigurations to fix</h2>\n<p class=\"lede\">Clients turned \
         away by our own mistake (an access policy that changed under them, a token that expired and is retried), \
         grouped by the endpoints they were refused on: never blocklisted.</p>\n",
    );
    // Since the first sign of the mistake, not the client's first request.
    let since = |a: &Actor| {
        a.evidence()
            .iter()
            .filter(|e| e.leaning == Leaning::Misconfiguration)
            .map(|e| e.first)
            .min()
            .unwrap_or(a.first_seen)
    };
    let mut mistakes: Vec<Mistake> = Vec::new();
    for a in r.actors.iter().filter(|a| a.class == Class::Misconfiguration) {
        let endpoints: Vec<&str> = a.endpoints.iter().collect();
        match mistakes.iter_mut().find(|m| m.endpoints == endpoints) {
            Some(m) => {
                m.since = m.since.min(since(a));
                m.actors.push(a);
            }
            None => mistakes.push(Mistake { endpoints, since: since(a), actors: vec![a] }),
        }
    }
    if mistakes.is_empty() {
        o.push_str("<p class=\"muted\">None.</p>\n</section>\n");
        return Ok(());
    }
    mistakes.sort_by_key(|m| m.since);
    o.push_str(
        "<div class=\"scroll\"><table><thead><tr><th>Endpoint</th><th>Since</th><th>What</th>\
         <th class=\"num\">Rejected</th><th>Addresses</th><th>User agents</th><th>Actors</th></tr></thead><tbody>\n",
    );
    for m in mistakes {
        // The earliest actor's words, with the other kinds' if they differ.
        let mut what: Vec<(&'static str, String)> = Vec::new();
        for a in &m.actors {
            for e in a.evidence().into_iter().filter(|e| e.leaning == Leaning::Misconfiguration) {
                if !what.iter().any(|(k, _)| *k == e.kind) {
                    what.push((e.kind, e.summary));
                }
            }
        }
        let (rejects, requests) = m.actors.iter().fold((0, 0), |(j, q), a| (j + a.rejects, q + a.requests));
        let mut agents: Vec<&str> = Vec::new();
        for ua in m.actors.iter().flat_map(|a| a.user_agents.iter()) {
            if !agents.contains(&ua) {
                agents.push(ua);
            }
        }
        let mut links: Vec<String> = m
            .actors
            .iter()
            .take(CELL_ITEMS)
            .map(|a| format!("<a href=\"#actor-{id}\">{id}</a>", id = Esc(&a.id)))
            .collect();
        if m.actors.len() > CELL_ITEMS {
            links.push(format!("<span class=\"muted\">+{} more</span>", m.actors.len() - CELL_ITEMS));
        }
        writeln!(
            o,
            "<tr><td class=\"mono\">{}</td><td class=\"nowrap\">{}</td><td>{}</td><td class=\"num\">{} \
             <span class=\"muted\">of {}</span></td><td class=\"mono\">{}</td><td class=\"mono\">{}</td>\
             <td class=\"mono\">{}</td></tr>",
            lines(m.endpoints.iter()),
            When(m.since),
            lines(what.iter().map(|(_, s)| s)),
            Num(rejects),
            Num(requests),
            lines(m.actors.iter().flat_map(|a| a.clients.iter().map(ToString::to_string))),
            lines(agents.iter()),
            links.join("<br>"),
        )?;
    }
    o.push_str("</tbody></table></div>\n</section>\n");
    Ok(())
}

pub fn endpoints(o: &mut String, t: &Tally) -> fmt::Result {
    let top = t.rejected_endpoints.top(TOP_ENDPOINTS);
    o.push_str(
        "<section id=\"endpoints\">\n<h2>Endpoints rejected most</h2>\n<p class=\"lede\">Paths as templates \
         (numbers, UUIDs and tokens folded).</p>\n",
    );
    if top.is_empty() {
        o.push_str("<p class=\"muted\">No rejects.</p>\n</section>\n");
        return Ok(());
    }
    let max = top[0].1.count.max(1);
    o.push_str(
        "<div class=\"scroll\"><table class=\"endpoints\"><thead><tr><th>Endpoint</th><th class=\"num\">Rejected</th>\
         <th class=\"bar-cell\"><span class=\"sr\">Share</span></th><th class=\"num\">Of all rejects</th><th>In the API</th></tr></thead><tbody>\n",
    );
    for (ep, c) in top {
        let w = c.count as f64 * 100.0 / max as f64;
        let share = c.count as f64 * 100.0 / t.rejects.max(1) as f64;
        let approx = if c.over > 0 {
            format!(" <span class=\"muted\" title=\"at most {} too many\">≈</span>", c.over)
        } else {
            String::new()
        };
        writeln!(
            o,
            "<tr><td class=\"mono\">{}</td><td class=\"num\">{}{approx}</td>\
             <td class=\"bar-cell\"><svg class=\"bar\" viewBox=\"0 0 100 10\" preserveAspectRatio=\"none\" aria-hidden=\"true\">\
             <rect class=\"rej\" width=\"{w:.1}\" height=\"10\"/></svg></td><td class=\"num\">{share:.1}%</td><td>{}</td></tr>",
            Esc(if ep.is_empty() { "(no path)" } else { ep }),
            Num(c.count),
            if c.known { "yes" } else { "<span class=\"tag\">not in the API</span>" },
        )?;
    }
    o.push_str("</tbody></table></div>\n</section>\n");
    Ok(())
}
