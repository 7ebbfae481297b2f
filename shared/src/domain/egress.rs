//! Where an alert's webhook may point: the URL rules checked when a rule is saved, and
//! the address rule checked again on every address a delivery connects to.
//!
//! A webhook is a request the service makes on a tenant's behalf from inside its own
//! network, so a URL that reaches the VPC, the instance metadata endpoint or the host
//! itself would turn alerts into a way in. Saving a rule refuses what the URL text
//! already shows (a literal address, `localhost`, a number the WHATWG URL parser would
//! read as an IPv4 address); delivery resolves the name and refuses the connection
//! unless every address it would use is public, so a DNS answer that changes after the
//! rule was saved (rebinding) reaches nothing inside either.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Longest webhook URL.
pub const MAX_URL_CHARS: usize = 2048;

/// What deliveries may reach. Production permits public addresses only; the local
/// stack, whose receivers listen on loopback, also permits loopback (and there plain
/// `http` to a loopback host, since a local receiver has no certificate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Egress {
    pub allow_loopback: bool,
}

/// How an address is classified for delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    Public,
    Loopback,
    /// Never deliverable; names the range, for the error a tenant sees.
    Refused(&'static str),
}

/// An address a delivery must not connect to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{ip} is not a public address ({range})")]
pub struct RefusedAddress {
    pub ip: IpAddr,
    pub range: &'static str,
}

impl Egress {
    /// Public addresses only: the production setting.
    pub const PUBLIC: Egress = Egress { allow_loopback: false };
    /// Public addresses and loopback: the local stack's setting.
    pub const LOCAL: Egress = Egress { allow_loopback: true };

    /// # Errors
    /// [`RefusedAddress`] for an address this setting does not permit.
    pub fn check(self, ip: IpAddr) -> Result<(), RefusedAddress> {
        match reach(ip) {
            Reach::Public => Ok(()),
            Reach::Loopback if self.allow_loopback => Ok(()),
            Reach::Loopback => Err(RefusedAddress { ip, range: "loopback" }),
            Reach::Refused(range) => Err(RefusedAddress { ip, range }),
        }
    }

    #[must_use]
    pub fn permits(self, ip: IpAddr) -> bool {
        self.check(ip).is_ok()
    }
}

/// The special-purpose IPv4 ranges (IANA's registry) that no webhook may reach, with the
/// name a refusal shows. Loopback is apart: one setting permits it.
const REFUSED_V4: &[([u8; 4], u8, &str)] = &[
    ([0, 0, 0, 0], 8, "\"this network\" 0.0.0.0/8"),
    ([10, 0, 0, 0], 8, "private 10.0.0.0/8"),
    ([100, 64, 0, 0], 10, "shared address space 100.64.0.0/10"),
    ([169, 254, 0, 0], 16, "link-local 169.254.0.0/16"),
    ([172, 16, 0, 0], 12, "private 172.16.0.0/12"),
    ([192, 0, 0, 0], 24, "IETF protocol assignments 192.0.0.0/24"),
    ([192, 0, 2, 0], 24, "documentation 192.0.2.0/24"),
    ([192, 88, 99, 0], 24, "6to4 relay anycast 192.88.99.0/24"),
    ([192, 168, 0, 0], 16, "private 192.168.0.0/16"),
    ([198, 18, 0, 0], 15, "benchmarking 198.18.0.0/15"),
    ([198, 51, 100, 0], 24, "documentation 198.51.100.0/24"),
    ([203, 0, 113, 0], 24, "documentation 203.0.113.0/24"),
    ([224, 0, 0, 0], 4, "multicast 224.0.0.0/4"),
    ([240, 0, 0, 0], 4, "reserved 240.0.0.0/4 and broadcast"),
];

/// Ranges inside the global unicast block 2000::/3 that are still not deliverable.
const REFUSED_V6_GLOBAL: &[([u16; 2], u8, &str)] = &[
    ([0x2001, 0x0000], 23, "IETF protocol assignments 2001::/23"),
    ([0x2001, 0x0db8], 32, "documentation 2001:db8::/32"),
    ([0x2002, 0x0000], 16, "6to4 2002::/16"),
    ([0x3fff, 0x0000], 20, "documentation 3fff::/20"),
];

/// Classifies an address. IPv6 is deliverable only inside global unicast (2000::/3)
/// outside its special ranges, or as NAT64 (64:ff9b::/96) of a public IPv4 address;
/// IPv4 embedded in any other IPv6 form (mapped, compatible) is judged as that IPv4
/// address when mapped, and refused when compatible (deprecated, never routed as IPv4).
#[must_use]
pub fn reach(ip: IpAddr) -> Reach {
    match ip {
        IpAddr::V4(v4) => reach_v4(v4),
        IpAddr::V6(v6) => reach_v6(v6),
    }
}

fn reach_v4(ip: Ipv4Addr) -> Reach {
    let bits = u32::from(ip);
    if bits >> 24 == 127 {
        return Reach::Loopback;
    }
    REFUSED_V4
        .iter()
        .find(|(net, len, _)| bits >> (32 - len) == u32::from_be_bytes(*net) >> (32 - len))
        .map_or(Reach::Public, |(_, _, name)| Reach::Refused(name))
}

fn reach_v6(ip: Ipv6Addr) -> Reach {
    let bits = u128::from(ip);
    let s = ip.segments();
    if ip == Ipv6Addr::LOCALHOST {
        return Reach::Loopback;
    }
    if ip.is_unspecified() {
        return Reach::Refused("unspecified ::");
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return reach_v4(v4);
    }
    if bits >> 32 == 0 {
        return Reach::Refused("IPv4-compatible ::/96");
    }
    if bits >> 32 == 0x0064_ff9b_u128 << 64 {
        // The well-known NAT64 prefix: the gateway connects to the IPv4 address inside.
        let v4 = Ipv4Addr::from(u32::try_from(bits & 0xffff_ffff).unwrap_or_default());
        return match reach_v4(v4) {
            Reach::Public => Reach::Public,
            _ => Reach::Refused("NAT64 64:ff9b::/96 of a non-public IPv4 address"),
        };
    }
    let top = u32::from(s[0]) << 16 | u32::from(s[1]);
    if s[0] >> 13 != 0b001 {
        return Reach::Refused(match s[0] {
            0xff00..=0xffff => "multicast ff00::/8",
            0xfe80..=0xfebf => "link-local fe80::/10",
            0xfec0..=0xfeff => "site-local fec0::/10",
            0xfc00..=0xfdff => "unique local fc00::/7",
            _ => "outside global unicast 2000::/3",
        });
    }
    REFUSED_V6_GLOBAL
        .iter()
        .find(|(net, len, _)| top >> (32 - len) == (u32::from(net[0]) << 16 | u32::from(net[1])) >> (32 - len))
        .map_or(Reach::Public, |(_, _, name)| Reach::Refused(name))
}

/// A webhook URL that passed the rules: `https` (or, on the local stack, `http` to
/// loopback), a host, an optional port, no user info, no fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    /// The URL with scheme and host lowercased, as stored and returned.
    pub text: String,
    pub host: Host,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A DNS name, lowercased; resolved and checked at each delivery.
    Name(String),
    Ip(IpAddr),
}

/// Why a URL was refused; each message is what the tenant sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not an `https://` URL.
    #[error("must be an https:// URL")]
    Scheme,
    /// Over [`MAX_URL_CHARS`], or holding spaces, control or non-ASCII characters.
    #[error("at most 2048 printable ASCII characters (percent-encode the rest)")]
    Characters,
    /// `user:password@` before the host.
    #[error("must not carry user info")]
    UserInfo,
    /// A `#fragment`, which a request never sends.
    #[error("must not have a fragment")]
    Fragment,
    /// No host, or one that is neither a DNS name nor an IP address.
    #[error("the host must be a DNS name or an IP address")]
    Host,
    /// A port that is not 1 to 65535.
    #[error("the port must be 1 to 65535")]
    Port,
    /// A host that is, or names, an address deliveries may not reach.
    #[error("the host must be a public address: {0}")]
    NotPublic(String),
}

/// Checks a webhook URL as a rule is saved.
///
/// # Errors
/// The first rule the URL breaks.
pub fn parse_url(text: &str, egress: Egress) -> Result<WebhookUrl, UrlError> {
    if text.len() > MAX_URL_CHARS || !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(UrlError::Characters);
    }
    let lower = text.to_ascii_lowercase();
    let (scheme, rest) = if lower.starts_with("https://") {
        ("https", &text[8..])
    } else if lower.starts_with("http://") && egress.allow_loopback {
        ("http", &text[7..])
    } else {
        return Err(UrlError::Scheme);
    };
    if rest.contains('#') {
        return Err(UrlError::Fragment);
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.contains('@') {
        return Err(UrlError::UserInfo);
    }
    let (host_text, port_text) = split_port(authority)?;
    let default_port = if scheme == "https" { 443 } else { 80 };
    let port = match port_text {
        None => default_port,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            p.parse::<u16>().ok().filter(|p| *p > 0).ok_or(UrlError::Port)?
        }
        Some(_) => return Err(UrlError::Port),
    };
    let host = parse_host(host_text)?;
    let loopback_name = matches!(&host, Host::Name(n) if n == "localhost" || n.ends_with(".localhost"));
    let loopback = loopback_name || matches!(host, Host::Ip(ip) if reach(ip) == Reach::Loopback);
    if loopback_name && !egress.allow_loopback {
        return Err(UrlError::NotPublic("localhost".into()));
    }
    if let Host::Ip(ip) = host {
        egress.check(ip).map_err(|e| UrlError::NotPublic(e.to_string()))?;
    }
    if scheme == "http" && !loopback {
        return Err(UrlError::Scheme);
    }
    let shown_host = match &host {
        Host::Ip(IpAddr::V6(v6)) => format!("[{v6}]"),
        Host::Ip(ip) => ip.to_string(),
        Host::Name(n) => n.clone(),
    };
    let shown_port = port_text.map(|_| format!(":{port}")).unwrap_or_default();
    Ok(WebhookUrl { text: format!("{scheme}://{shown_host}{shown_port}{path}"), host, port })
}

fn split_port(authority: &str) -> Result<(&str, Option<&str>), UrlError> {
    if let Some(inner) = authority.strip_prefix('[') {
        let (host, after) = inner.split_once(']').ok_or(UrlError::Host)?;
        return match after {
            "" => Ok((authority.get(..host.len() + 2).unwrap_or_default(), None)),
            _ => after.strip_prefix(':').map(|p| (&authority[..host.len() + 2], Some(p))).ok_or(UrlError::Port),
        };
    }
    Ok(match authority.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    })
}

fn parse_host(text: &str) -> Result<Host, UrlError> {
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().map(|v6| Host::Ip(IpAddr::V6(v6))).map_err(|_| UrlError::Host);
    }
    if let Ok(v4) = text.parse::<Ipv4Addr>() {
        return Ok(Host::Ip(IpAddr::V4(v4)));
    }
    let name = text.to_ascii_lowercase();
    let labels: Vec<&str> = name.split('.').collect();
    let label_ok = |l: &&str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    // The WHATWG URL parser (what HTTP clients follow) reads a host whose last label is
    // a number (`2130706433`, `127.1`, `0x7f.1`) as an IPv4 address: refuse those forms
    // rather than let a client turn them into one this check never saw.
    let last = labels.last().copied().unwrap_or_default();
    let numeric = !last.is_empty() && (last.bytes().all(|b| b.is_ascii_digit()) || last.starts_with("0x"));
    if name.is_empty() || name.len() > 253 || !labels.iter().all(label_ok) || numeric {
        return Err(UrlError::Host);
    }
    Ok(Host::Name(name))
}

#[cfg(test)]
#[path = "egress_tests.rs"]
mod tests;
