//! The actor table: one row an actor with what it is and did, and beneath
//! it, folded, its evidence, user agents, endpoints and addresses. Each
//! actor is a `<tbody>` of those two rows, carrying its sort keys as data
//! attributes, so that the page's script sorts and filters whole actors.

use std::fmt::{self, Write as _};

use super::{Badge, Esc, MAX_ACTOR_ROWS, Num, Report, When, rank};
use crate::detect::{
    actors::Actor,
    evidence::{Class, Leaning},
};

/// Addresses shown in the row itself; the rest are in the fold.
const ADDRESSES_IN_ROW: usize = 3;

pub fn section(o: &mut String, r: &Report) -> fmt::Result {
    let mut actors = r.actors.clone();
    actors.sort_by(|a, b| {
        (rank(a.class), std::cmp::Reverse(a.rejects), &a.id).cmp(&(rank(b.class), std::cmp::Reverse(b.rejects), &b.id))
    });
    write!(
        o,
        "<section id=\"actors\">\n<h2>Actors</h2>\n<p class=\"lede\">Clients grouped by strong evidence (the same \
         tool, target and cadence; a hand-off between addresses; the same identity). Open a row for its evidence.</p>\n\
         <div class=\"filters js-only\" role=\"group\" aria-label=\"Show actors\">\
         <button type=\"button\" data-filter=\"all\" aria-pressed=\"true\">All <span class=\"count\">{}</span></button>",
        actors.len()
    )?;
    let mut classes = Class::ALL;
    classes.sort_by_key(|c| rank(*c));
    for c in classes {
        write!(
            o,
            "<button type=\"button\" data-filter=\"{}\" aria-pressed=\"false\">{} <span class=\"count\">{}</span></button>",
            c.as_str(),
            Badge(c),
            r.count(c)
        )?;
    }
    o.push_str(
        "<label class=\"search\">Find <input type=\"search\" id=\"actor-search\" \
         placeholder=\"address, user agent, endpoint, country…\"></label></div>\n\
         <p class=\"shown js-only\" id=\"actors-shown\" aria-live=\"polite\"></p>\n",
    );
    if actors.is_empty() {
        o.push_str("<p class=\"muted\">No actors: nothing brought a client to attention.</p>\n</section>\n");
        return Ok(());
    }
    o.push_str(
        "<div class=\"scroll\"><table class=\"actors\" id=\"actor-table\">\n<thead><tr>\
         <th data-sort=\"rank\" data-type=\"num\"><button type=\"button\">Class</button></th>\
         <th data-sort=\"id\"><button type=\"button\">Actor</button></th>\
         <th data-sort=\"requests\" data-type=\"num\" class=\"num\"><button type=\"button\">Requests</button></th>\
         <th data-sort=\"rejects\" data-type=\"num\" class=\"num\"><button type=\"button\">Rejected</button></th>\
         <th data-sort=\"first\" data-type=\"num\"><button type=\"button\">First seen</button></th>\
         <th data-sort=\"last\" data-type=\"num\"><button type=\"button\">Last seen</button></th>\
         <th data-sort=\"cadence\" data-type=\"num\"><button type=\"button\">Cadence</button></th>\
         <th data-sort=\"addresses\" data-type=\"num\"><button type=\"button\">Addresses</button></th>\
         <th>Countries</th><th>ASNs</th></tr></thead>\n",
    );
    for a in actors.iter().take(MAX_ACTOR_ROWS) {
        row(o, r, a)?;
    }
    o.push_str("</table></div>\n");
    if actors.len() > MAX_ACTOR_ROWS {
        writeln!(
            o,
            "<p class=\"muted\">{} more actors not listed (the first {MAX_ACTOR_ROWS} are, threats first); the \
             roster (<span class=\"mono\">--actors</span>, <span class=\"mono\">/api/v1/actors</span>) has them \
             all.</p>",
            Num((actors.len() - MAX_ACTOR_ROWS) as u64)
        )?;
    }
    o.push_str("</section>\n");
    Ok(())
}

fn row(o: &mut String, r: &Report, a: &Actor) -> fmt::Result {
    let class = a.class.as_str();
    write!(
        o,
        "<tbody class=\"actor {class}\" id=\"actor-{id}\" data-class=\"{class}\" data-rank=\"{}\" data-id=\"{id}\" \
         data-requests=\"{}\" data-rejects=\"{}\" data-first=\"{}\" data-last=\"{}\" data-cadence=\"{}\" \
         data-addresses=\"{}\">\n<tr class=\"summary\"><td>{}</td><td class=\"mono\">{id}</td>\
         <td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"mono\">",
        rank(a.class),
        a.requests,
        a.rejects,
        a.first_seen,
        a.last_seen,
        a.cadence_seconds.map_or(-1, i64::from),
        a.clients.len(),
        Badge(a.class),
        Num(a.requests),
        Num(a.rejects),
        When(a.first_seen),
        When(a.last_seen),
        a.cadence.as_deref().map_or_else(|| "—".to_string(), |c| format!("every {}", Esc(c))),
        id = Esc(&a.id),
    )?;
    for (i, k) in a.clients.iter().take(ADDRESSES_IN_ROW).enumerate() {
        if i > 0 {
            o.push_str("<br>");
        }
        write!(o, "{}", Esc(&k.to_string()))?;
    }
    if a.clients.len() > ADDRESSES_IN_ROW {
        write!(o, "<br><span class=\"muted\">+{} more</span>", a.clients.len() - ADDRESSES_IN_ROW)?;
    }
    writeln!(
        o,
        "</td><td>{}</td><td>{}</td></tr>",
        Esc(&a.countries.join(" ")),
        Esc(&a.asns.iter().map(|n| format!("AS{n}")).collect::<Vec<_>>().join(" "))
    )?;
    fold(o, r, a)?;
    o.push_str("</tbody>\n");
    Ok(())
}

/// The second row: the strongest evidence as the fold's summary, the
/// rest inside.
fn fold(o: &mut String, r: &Report, a: &Actor) -> fmt::Result {
    let evidence = a.evidence();
    let headline = evidence.first().map_or("no evidence recorded", |e| e.summary.as_str());
    write!(
        o,
        "<tr class=\"fold\"><td colspan=\"10\"><details><summary>{}<span class=\"muted\"> · {} piece(s) of evidence{}</span>\
         </summary>\n<div class=\"cols\">\n<div class=\"wide\"><h4>Evidence</h4><table class=\"evidence\"><thead><tr>\
         <th>Kind</th><th>Argues for</th><th class=\"num\">Weight</th><th class=\"num\">Times</th><th>Since</th>\
         <th>What</th></tr></thead><tbody>",
        Esc(headline),
        evidence.len(),
        listing(r, a),
    )?;
    for e in &evidence {
        write!(
            o,
            "<tr><td class=\"mono\">{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td>\
             <td>{}</td></tr>",
            Esc(e.kind),
            leaning(e.leaning),
            e.weight,
            Num(e.count.into()),
            When(e.first),
            Esc(&e.summary)
        )?;
    }
    o.push_str("</tbody></table></div>\n");
    list(o, "User agents", a.user_agents.iter())?;
    list(o, "Products", a.products.iter())?;
    list(o, "Endpoints", a.endpoints.iter())?;
    o.push_str("<div><h4>Addresses</h4><ul class=\"mono\">");
    for k in &a.clients {
        let note = match a.class {
            Class::Threat if r.blocklist.lists(k) => " <span class=\"tag\">blocklisted</span>".to_string(),
            Class::Threat => match r.blocklist.not_blocked(k) {
                Some(why) => format!(" <span class=\"tag\">never listed: {}</span>", why.as_str().replace('_', " ")),
                None => " <span class=\"tag\">not listed now</span>".to_string(),
            },
            _ => String::new(),
        };
        write!(o, "<li>{}{note}</li>", Esc(&k.to_string()))?;
    }
    if a.undocumented_requests > 0 {
        writeln!(
            o,
            "</ul><p class=\"muted\">{} request(s) to endpoints outside the API</p></div>",
            Num(a.undocumented_requests)
        )?;
    } else {
        o.push_str("</ul></div>\n");
    }
    o.push_str("</div></details></td></tr>\n");
    Ok(())
}

/// A threat's standing on the blocklist, for the fold's summary.
fn listing(r: &Report, a: &Actor) -> &'static str {
    if a.class != Class::Threat {
        return "";
    }
    if a.clients.iter().any(|k| r.blocklist.lists(k)) {
        " · blocklisted"
    } else if !a.clients.is_empty() && a.clients.iter().all(|k| r.blocklist.not_blocked(k).is_some()) {
        " · never listed (exempt addresses)"
    } else {
        " · not listed now (quiet past the blocklist's ttl)"
    }
}

fn list<'a>(o: &mut String, title: &str, items: impl Iterator<Item = &'a str>) -> fmt::Result {
    write!(o, "<div><h4>{title}</h4><ul class=\"mono\">")?;
    let mut any = false;
    for i in items {
        any = true;
        write!(o, "<li>{}</li>", Esc(i))?;
    }
    if !any {
        o.push_str("<li class=\"muted\">none</li>");
    }
    o.push_str("</ul></div>\n");
    Ok(())
}

fn leaning(l: Leaning) -> &'static str {
    match l {
        Leaning::Threat => "threat",
        Leaning::Prospect => "prospect",
        Leaning::Misconfiguration => "misconfiguration",
        Leaning::Neutral => "neither",
    }
}
