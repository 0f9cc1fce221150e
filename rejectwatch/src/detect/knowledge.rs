//! What the detectors know about attacks, kept as data: payload tokens and
//! the words that make a command or an expression (`data/payloads.toml`),
//! probe and exploit paths (`data/probes.toml`), and whatever an operator
//! adds in the files `detect.lists` names, TOML in the same format or
//! plain lists (one entry a line). Loaded once, at start: nothing here is
//! read on the path of an exchange.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, LazyLock},
};

use serde::Deserialize;

const PAYLOADS: &str = include_str!("../../data/payloads.toml");
const PROBES: &str = include_str!("../../data/probes.toml");

/// One file `detect.lists` names.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListFile {
    /// What a plain list holds; a `.toml` file says it by its tables.
    pub kind: Option<ListKind>,
    pub path: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListKind {
    /// User-agent substrings of self-declared scanners.
    Scanners,
    /// Tokens of the injection detector (category `custom`).
    Payloads,
    /// Exploit paths: probes whatever the status (a trailing `# comment`
    /// names the advisory).
    ExploitPaths,
    /// Probe paths: counted when refused off the API.
    ProbePaths,
    /// Path endings of backup and source files.
    ProbeSuffixes,
    /// Shell commands that count after a command separator.
    Commands,
    /// Hosts that make an URL in a parameter SSRF.
    SsrfHosts,
}

/// A payload token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    pub category: String,
    pub token: String,
    /// Looked for in header values too, not only in the target.
    pub in_headers: bool,
}

/// An exploit path and what it exploits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exploit {
    pub path: String,
    pub product: String,
    pub advisory: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Knowledge {
    /// Tokens, lowercase.
    pub payloads: Vec<Payload>,
    pub commands: Vec<String>,
    pub worded_commands: Vec<String>,
    pub redirect_params: Vec<String>,
    pub expression_markers: Vec<String>,
    pub ssrf_schemes: Vec<String>,
    pub ssrf_hosts: Vec<String>,
    pub crlf_headers: Vec<String>,
    pub probe_paths: Vec<String>,
    pub probe_suffixes: Vec<String>,
    pub exploits: Vec<Exploit>,
    /// Scanner user agents added by lists (the built-in ones are rules of
    /// `data/user-agents.toml`).
    pub scanners: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct File {
    payload: Vec<RawPayload>,
    commands: Vec<String>,
    worded_commands: Vec<String>,
    redirect_params: Vec<String>,
    expression_markers: Vec<String>,
    ssrf_schemes: Vec<String>,
    ssrf_hosts: Vec<String>,
    crlf_headers: Vec<String>,
    probe: Vec<RawProbe>,
    exploit: Vec<RawExploit>,
    scanners: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPayload {
    category: String,
    #[serde(default = "yes")]
    in_headers: bool,
    tokens: Vec<String>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    #[allow(dead_code)] // documents the group in the file
    what: String,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    suffixes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExploit {
    product: String,
    advisory: String,
    paths: Vec<String>,
}

static BUILTIN: LazyLock<Arc<Knowledge>> = LazyLock::new(|| {
    let mut k = Knowledge::default();
    k.add_toml(PAYLOADS, "data/payloads.toml").expect("built-in payloads parse");
    k.add_toml(PROBES, "data/probes.toml").expect("built-in probes parse");
    Arc::new(k)
});

fn lower(v: Vec<String>) -> impl Iterator<Item = String> {
    v.into_iter().map(|s| s.to_lowercase())
}

impl Knowledge {
    /// The repository's data files alone.
    pub fn builtin() -> Arc<Knowledge> {
        BUILTIN.clone()
    }

    /// The built-in data and every list, in order.
    pub fn load(lists: &[ListFile]) -> Result<Knowledge, String> {
        let mut k = (*Self::builtin()).clone();
        for l in lists {
            let name = l.path.display().to_string();
            let text =
                std::fs::read_to_string(&l.path).map_err(|e| format!("detect.lists: cannot read {name}: {e}"))?;
            match (l.kind, is_toml(&l.path)) {
                (None, true) => k.add_toml(&text, &name),
                (Some(kind), false) => k.add_plain(kind, &text, &name),
                (Some(_), true) => Err(format!("{name}: a .toml list says what it holds by its tables; drop `kind`")),
                (None, false) => Err(format!("{name}: a plain list needs a `kind`")),
            }
            .map_err(|e| format!("detect.lists: {e}"))?;
        }
        Ok(k)
    }

    fn add_toml(&mut self, text: &str, source: &str) -> Result<(), String> {
        let f: File = toml::from_str(text).map_err(|e| format!("{source}: {}", e.message().replace('\n', " ")))?;
        for p in f.payload {
            let cat = p.category.to_lowercase();
            for token in lower(p.tokens) {
                nonempty(&token, source)?;
                self.payloads.push(Payload { category: cat.clone(), token, in_headers: p.in_headers });
            }
        }
        for p in f.probe {
            self.probe_paths.extend(lower(p.paths));
            self.probe_suffixes.extend(lower(p.suffixes));
        }
        for e in f.exploit {
            for path in lower(e.paths) {
                self.exploits.push(Exploit { path, product: e.product.clone(), advisory: e.advisory.clone() });
            }
        }
        self.commands.extend(lower(f.commands));
        self.worded_commands.extend(lower(f.worded_commands));
        self.redirect_params.extend(lower(f.redirect_params));
        self.expression_markers.extend(lower(f.expression_markers));
        self.ssrf_schemes.extend(lower(f.ssrf_schemes));
        self.ssrf_hosts.extend(lower(f.ssrf_hosts));
        self.crlf_headers.extend(lower(f.crlf_headers));
        self.scanners.extend(lower(f.scanners));
        for list in [&self.probe_paths, &self.probe_suffixes, &self.commands, &self.ssrf_hosts, &self.scanners] {
            for s in list {
                nonempty(s, source)?;
            }
        }
        Ok(())
    }

    fn add_plain(&mut self, kind: ListKind, text: &str, source: &str) -> Result<(), String> {
        for (entry, comment) in plain_entries(text) {
            let e = entry.to_lowercase();
            match kind {
                ListKind::Scanners => self.scanners.push(e),
                ListKind::Payloads => {
                    self.payloads.push(Payload { category: "custom".into(), token: e, in_headers: true })
                }
                ListKind::ExploitPaths => self.exploits.push(Exploit {
                    path: e,
                    product: "operator list".into(),
                    advisory: comment.map_or_else(|| format!("listed in {source}"), str::to_string),
                }),
                ListKind::ProbePaths => self.probe_paths.push(e),
                ListKind::ProbeSuffixes => self.probe_suffixes.push(e),
                ListKind::Commands => self.commands.push(e),
                ListKind::SsrfHosts => self.ssrf_hosts.push(e),
            }
        }
        Ok(())
    }
}

fn nonempty(s: &str, source: &str) -> Result<(), String> {
    if s.is_empty() { Err(format!("{source}: an entry is empty")) } else { Ok(()) }
}

fn is_toml(p: &Path) -> bool {
    p.extension().is_some_and(|e| e.eq_ignore_ascii_case("toml"))
}

/// A plain list's entries: one a line, trimmed; a line starting with `#`
/// is a comment, and so is the rest of a line after whitespace and `#`
/// (returned beside the entry). A `#` inside an entry (`<!--#exec`) stays.
fn plain_entries(text: &str) -> impl Iterator<Item = (&str, Option<&str>)> {
    text.lines().filter_map(|line| {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let cut = line.char_indices().find(|&(i, c)| c == '#' && line[..i].ends_with(char::is_whitespace));
        Some(match cut {
            Some((i, _)) => (line[..i].trim_end(), Some(line[i + 1..].trim()).filter(|c| !c.is_empty())),
            None => (line, None),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_data_parses_and_holds_every_part() {
        let k = Knowledge::builtin();
        assert!(k.payloads.iter().any(|p| p.category == "jndi" && p.token == "${jndi:" && p.in_headers));
        assert!(k.payloads.iter().any(|p| p.token == "'--" && !p.in_headers));
        assert!(k.commands.contains(&"wget".to_string()));
        assert!(k.ssrf_hosts.contains(&"169.254.169.254".to_string()));
        assert!(k.probe_suffixes.contains(&".bak".to_string()));
        let t = k.exploits.iter().find(|e| e.path.contains("telerik")).expect("telerik");
        assert_eq!(t.advisory, "CVE-2019-18935");
        // Every entry is matched case-insensitively, so kept lowercase.
        assert!(k.exploits.iter().all(|e| e.path == e.path.to_lowercase()));
    }

    #[test]
    fn plain_lists_and_their_comments() {
        let got: Vec<_> =
            plain_entries("# scanners\n\n  Foo-Scan \n<!--#exec\n/x/y.php  # CVE-2099-1\n/z #\n").collect();
        assert_eq!(got, [("Foo-Scan", None), ("<!--#exec", None), ("/x/y.php", Some("CVE-2099-1")), ("/z", None)]);
    }

    #[test]
    fn lists_add_to_the_builtin_data() {
        let dir = std::env::temp_dir().join(format!("rw-lists-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let plain = dir.join("exploits.txt");
        std::fs::write(&plain, "# ours\n/Vendor/Exploit.do  # CVE-2099-0001\n").unwrap();
        let toml = dir.join("more.toml");
        std::fs::write(
            &toml,
            "scanners = [\"EvilScan\"]\n[[payload]]\ncategory = \"sql\"\ntokens = [\"waitfor time\"]\n",
        )
        .unwrap();
        let lists = [
            ListFile { kind: Some(ListKind::ExploitPaths), path: plain.clone() },
            ListFile { kind: None, path: toml.clone() },
        ];
        let k = Knowledge::load(&lists).unwrap();
        let e = k.exploits.last().unwrap();
        assert_eq!((e.path.as_str(), e.advisory.as_str()), ("/vendor/exploit.do", "CVE-2099-0001"));
        assert_eq!(k.scanners, ["evilscan"]);
        assert!(k.payloads.iter().any(|p| p.category == "sql" && p.token == "waitfor time"));
        assert_eq!(k.exploits.len(), Knowledge::builtin().exploits.len() + 1);

        for (lists, needle) in [
            (vec![ListFile { kind: None, path: plain.clone() }], "needs a `kind`"),
            (vec![ListFile { kind: Some(ListKind::Payloads), path: toml.clone() }], "drop `kind`"),
            (vec![ListFile { kind: Some(ListKind::Payloads), path: dir.join("missing") }], "cannot read"),
        ] {
            let e = Knowledge::load(&lists).unwrap_err();
            assert!(e.starts_with("detect.lists: ") && e.contains(needle), "{e}");
        }
        std::fs::write(&toml, "[[payload]]\ncategory = \"x\"\ntokens = [\"\"]\n").unwrap();
        let e = Knowledge::load(&[ListFile { kind: None, path: toml }]).unwrap_err();
        assert!(e.contains("empty"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
