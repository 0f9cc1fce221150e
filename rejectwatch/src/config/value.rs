//! How the config's shared kinds of value are read and its errors said:
//! addresses and networks as operators write them, and a message placed
//! under its dotted key. Below every module that owns a config section,
//! so that each can use them without depending on the assembled file.

use ipnet::IpNet;
use serde::Deserialize;

/// An address (as its /32 or /128) or a CIDR network: what operators
/// write for a proxy or an allowlisted host, as nftables and ipset take it.
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{s:?} is not an address or a CIDR network (such as 10.0.0.7 or 10.0.0.0/8)"))
}

/// A list of [`parse_net`]s.
pub fn nets<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    Vec::<String>::deserialize(d)?.iter().map(|s| parse_net(s).map_err(serde::de::Error::custom)).collect()
}

/// `message` about the dotted `key`, as `key: message`, unless it names
/// the key's last part already ("unknown field `windw`").
pub fn keyed(key: &str, message: &str) -> String {
    let last = key.rsplit('.').next().unwrap_or(key);
    if message.contains(&format!("`{last}`")) { message.to_string() } else { format!("{key}: {message}") }
}
