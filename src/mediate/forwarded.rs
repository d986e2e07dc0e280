//! Client-address forwarding, pure: which address is the client, and the
//! `X-Forwarded-For` / `-Proto` / `-Host` and `Forwarded` (RFC 7239) values the
//! upstream receives.
//!
//! # Who is the client
//!
//! The address of the TCP peer, unless that peer is a trusted proxy (`[server]
//! trusted_proxies`). Then `X-Forwarded-For` is walked from the right, skipping trusted
//! addresses, and the first untrusted one is the client — nginx's `set_real_ip_from` +
//! `real_ip_header X-Forwarded-For` + `real_ip_recursive on`, Traefik's
//! `forwardedHeaders.trustedIPs`. If every entry is trusted the left-most is the
//! client; an entry that is not an address stops the walk at the trusted hop that
//! forwarded it (nothing it says can be believed). A client that is not a trusted proxy
//! never chooses its own address: its forwarding headers are ignored.
//!
//! # What the upstream receives
//!
//! - [`ForwardedMode::Append`] (default): from a trusted proxy, the incoming chains with
//!   the peer's address appended (`X-Forwarded-For: client, proxy1, peer`), and its
//!   `X-Forwarded-Proto` / `-Host` kept. From anyone else, the incoming forwarding
//!   headers are *replaced*: the chain starts at the peer. nginx's
//!   `$proxy_add_x_forwarded_for`, and Envoy with `use_remote_address` and
//!   `xff_num_trusted_hops = 0`, append the peer to whatever chain the client sent (Envoy
//!   then believes only the peer itself); we do not, as Traefik does not (it drops the
//!   `X-Forwarded-*` of peers outside `forwardedHeaders.trustedIPs`), because an upstream
//!   reading the left-most entry would take a spoofed address.
//! - [`ForwardedMode::Replace`]: one hop only — the resolved client, scheme and host,
//!   with the incoming chains dropped (for upstreams that read the left-most entry and
//!   must not see internal proxies).
//! - [`ForwardedMode::Off`]: the gateway neither adds nor removes any of these headers.
//!
//! `Forwarded` elements are `for=...;host=...;proto=...` (when a trusted proxy sent only
//! `X-Forwarded-For`, a `for=<client>` element goes first); an IPv6 address is written
//! bracketed and quoted (`for="[2001:db8::1]"`, RFC 7239 §6), a host that is not a
//! token is quoted.

// `core::net`: the address values only; `std::net` also holds sockets and DNS, which
// the pure modules must not reach (`.ci/run` checks it).
use core::net::IpAddr;

use http::{HeaderName, HeaderValue};
use ipnet::IpNet;

use crate::codec::{value_str, HeaderSource};
use crate::model::named::named_enum;

/// `X-Forwarded-For`.
pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub(crate) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub(crate) static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `Forwarded` (RFC 7239).
pub(crate) static FORWARDED: HeaderName = HeaderName::from_static("forwarded");

named_enum! {
    /// What the gateway writes into the forwarding headers of the upstream request
    /// (`forwarded`; a "mode" in messages).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum ForwardedMode("mode") {
        /// Extend a trusted proxy's chains with the peer; start a new chain otherwise.
        Append = "append",
        /// Write one hop: the resolved client.
        Replace = "replace",
        /// Leave the headers as they arrived.
        Off = "off",
    }
}

/// Whether `ip` is in one of `nets`. IPv4-mapped IPv6 addresses count as IPv4.
pub(crate) fn contains(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    nets.iter().any(|n| n.contains(&ip))
}

/// One `X-Forwarded-For` entry as an address: `1.2.3.4`, `1.2.3.4:80`, `::1`,
/// `[::1]`, `[::1]:80`. `None` for anything else (`unknown`, obfuscated ids, garbage).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let e = entry.trim();
    if let Ok(ip) = e.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sa) = e.parse::<core::net::SocketAddr>() {
        return Some(sa.ip().to_canonical());
    }
    e.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|r| r.parse::<IpAddr>().ok())
}

/// Every value of `name` joined with `, ` (a list header may be split over several
/// lines), `None` when absent or not visible ASCII.
fn joined(headers: &impl HeaderSource, name: &HeaderName) -> Option<String> {
    let mut out: Option<String> = None;
    for v in headers.values(name) {
        let s = value_str(v).ok()?;
        if s.is_empty() {
            continue;
        }
        match &mut out {
            Some(o) => {
                o.push_str(", ");
                o.push_str(s);
            }
            None => out = Some(s.to_string()),
        }
    }
    out
}

/// The client's address: `peer` unless `peer` is a trusted proxy (see the module docs).
pub(crate) fn client_address(
    peer: IpAddr,
    headers: &impl HeaderSource,
    trusted: &[IpNet],
) -> IpAddr {
    let peer = peer.to_canonical();
    if !contains(trusted, peer) {
        return peer;
    }
    let Some(chain) = joined(headers, &X_FORWARDED_FOR) else {
        return peer;
    };
    let mut client = peer;
    for entry in chain.rsplit(',') {
        if entry.trim().is_empty() {
            continue;
        }
        let Some(ip) = parse_entry(entry) else {
            return client;
        };
        client = ip;
        if !contains(trusted, ip) {
            return ip;
        }
    }
    client
}

/// The original request as the gateway sees it (before forwarding headers are applied).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arrival<'a> {
    /// The TCP peer.
    pub peer: IpAddr,
    /// `peer` (canonical) as text: formatted once per connection by the caller.
    pub peer_text: &'a str,
    /// Whether the peer is a trusted proxy.
    pub trusted: bool,
    /// The resolved client ([`client_address`]).
    pub client: IpAddr,
    /// `client` as text.
    pub client_text: &'a str,
    /// Our listener's scheme: `http` or `https`.
    pub scheme: &'a str,
    /// The `Host` (or `:authority`) the request named.
    pub host: Option<&'a str>,
}

/// Appends a `for=` node: IPv4 bare, IPv6 bracketed and quoted (RFC 7239 §6).
fn push_node(out: &mut String, ip: IpAddr, text: &str) {
    match ip {
        IpAddr::V4(_) => out.push_str(text),
        IpAddr::V6(_) => {
            out.push_str("\"[");
            out.push_str(text);
            out.push_str("]\"");
        }
    }
}

/// Appends a `Forwarded` parameter value: a token as is, anything else a quoted-string.
fn push_param(out: &mut String, v: &str) {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if !v.is_empty() && v.bytes().all(tchar) {
        out.push_str(v);
        return;
    }
    out.push('"');
    if v.bytes().any(|b| b == b'"' || b == b'\\') {
        for c in v.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
    } else {
        // The common case (a `host:port`): one copy.
        out.push_str(v);
    }
    out.push('"');
}

/// A header value from text built here; `None` only for invalid bytes that came from
/// a client's own `Host`, and then that header is left out.
fn value(text: String) -> Option<HeaderValue> {
    // From the `String`'s own buffer: no copy.
    HeaderValue::try_from(text).ok()
}

/// The forwarding headers to set on the upstream request (each replaces every incoming
/// value of its name); empty with [`ForwardedMode::Off`]. Built with one allocation per
/// header and no formatting: this runs for every proxied request.
pub(crate) fn headers(
    mode: ForwardedMode,
    hop: &Arrival<'_>,
    incoming: &impl HeaderSource,
) -> Vec<(HeaderName, HeaderValue)> {
    if mode == ForwardedMode::Off {
        return Vec::new();
    }
    // A trusted proxy's view of the original scheme and host wins over ours.
    let first = |name: &HeaderName| {
        hop.trusted
            .then(|| joined(incoming, name))
            .flatten()
            .and_then(|v| v.split(',').next().map(|s| s.trim().to_string()))
            .filter(|s| !s.is_empty())
    };
    let proto = first(&X_FORWARDED_PROTO);
    let proto = proto.as_deref().unwrap_or(hop.scheme);
    let host = first(&X_FORWARDED_HOST);
    let host = host.as_deref().or(hop.host);
    // Append mode extends a trusted proxy's chain; otherwise ours replaces it.
    let previous = |name: &HeaderName| {
        (mode == ForwardedMode::Append && hop.trusted)
            .then(|| joined(incoming, name))
            .flatten()
    };
    let (hop_ip, hop_text) = if mode == ForwardedMode::Replace {
        (hop.client, hop.client_text)
    } else {
        (hop.peer.to_canonical(), hop.peer_text)
    };
    let xff = match previous(&X_FORWARDED_FOR) {
        Some(mut chain) => {
            chain.push_str(", ");
            chain.push_str(hop_text);
            chain
        }
        None => hop_text.to_string(),
    };
    let mut fwd = String::with_capacity(32 + host.map_or(0, str::len) + proto.len());
    match previous(&FORWARDED) {
        Some(chain) => {
            fwd.push_str(&chain);
            fwd.push_str(", ");
        }
        // A trusted proxy that sent only X-Forwarded-For: `Forwarded` still starts at
        // the client it named, so both headers agree on who the client is.
        None if mode == ForwardedMode::Append
            && hop.trusted
            && hop.client != hop_ip
            && !incoming.contains(&FORWARDED) =>
        {
            fwd.push_str("for=");
            push_node(&mut fwd, hop.client, hop.client_text);
            fwd.push_str(", ");
        }
        None => {}
    }
    fwd.push_str("for=");
    push_node(&mut fwd, hop_ip, hop_text);
    if let Some(h) = host {
        fwd.push_str(";host=");
        push_param(&mut fwd, h);
    }
    fwd.push_str(";proto=");
    push_param(&mut fwd, proto);
    let proto = match proto {
        "http" => Some(HeaderValue::from_static("http")),
        "https" => Some(HeaderValue::from_static("https")),
        other => value(other.to_string()),
    };
    let mut out = Vec::with_capacity(4);
    out.extend(value(xff).map(|v| (X_FORWARDED_FOR.clone(), v)));
    out.extend(proto.map(|v| (X_FORWARDED_PROTO.clone(), v)));
    out.extend(
        host.and_then(|h| value(h.to_string()))
            .map(|v| (X_FORWARDED_HOST.clone(), v)),
    );
    out.extend(value(fwd).map(|v| (FORWARDED.clone(), v)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Named;
    use http::HeaderMap;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// An address as the caller's text (leaked: tests only).
    fn text(ip: IpAddr) -> &'static str {
        Box::leak(ip.to_canonical().to_string().into_boxed_str())
    }

    #[test]
    fn client_address_table() {
        let trusted = nets(&["10.0.0.0/8", "fd00::/8"]);
        // (peer, X-Forwarded-For lines, expected client, why)
        let rows: &[(&str, &[&str], &str, &str)] = &[
            (
                "203.0.113.9",
                &["1.2.3.4"],
                "203.0.113.9",
                "untrusted peer: header ignored",
            ),
            (
                "10.0.0.2",
                &[],
                "10.0.0.2",
                "trusted peer without a chain is the client",
            ),
            ("10.0.0.2", &["1.2.3.4"], "1.2.3.4", "one trusted hop"),
            (
                "10.0.0.2",
                &["6.6.6.6, 1.2.3.4, 10.0.0.7"],
                "1.2.3.4",
                "recursive: skip trusted, stop at first untrusted",
            ),
            (
                "10.0.0.2",
                &["6.6.6.6", "1.2.3.4"],
                "1.2.3.4",
                "several lines are one list",
            ),
            (
                "10.0.0.2",
                &["10.1.1.1, 10.2.2.2"],
                "10.1.1.1",
                "all trusted: the left-most",
            ),
            (
                "10.0.0.2",
                &["1.2.3.4, garbage, 10.0.0.9"],
                "10.0.0.9",
                "garbage stops at the hop that forwarded it",
            ),
            ("10.0.0.2", &["1.2.3.4:5678"], "1.2.3.4", "port allowed"),
            (
                "10.0.0.2",
                &["[2001:db8::1]:443"],
                "2001:db8::1",
                "bracketed IPv6 with port",
            ),
            (
                "fd00::1",
                &["2001:db8::2"],
                "2001:db8::2",
                "IPv6 trusted peer",
            ),
            (
                "::ffff:10.0.0.2",
                &["1.2.3.4"],
                "1.2.3.4",
                "IPv4-mapped peer counts as IPv4",
            ),
            ("10.0.0.2", &[" , "], "10.0.0.2", "empty entries skipped"),
        ];
        for (peer, lines, want, why) in rows {
            let pairs: Vec<(&str, &str)> = lines.iter().map(|l| ("x-forwarded-for", *l)).collect();
            assert_eq!(
                client_address(ip(peer), &map(&pairs), &trusted),
                ip(want),
                "{why}"
            );
        }
        assert_eq!(
            client_address(ip("10.0.0.2"), &map(&[("x-forwarded-for", "1.2.3.4")]), &[]),
            ip("10.0.0.2"),
            "nothing trusted by default"
        );
    }

    fn get<'a>(h: &'a [(HeaderName, HeaderValue)], name: &HeaderName) -> Option<&'a str> {
        h.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.to_str().unwrap())
    }

    const SPOOF: &[(&str, &str)] = &[
        ("x-forwarded-for", "6.6.6.6"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "evil.test"),
        ("forwarded", "for=6.6.6.6"),
    ];

    #[test]
    fn untrusted_client_gets_a_fresh_chain_in_append_and_replace() {
        let hop = Arrival {
            peer: ip("203.0.113.9"),
            peer_text: text(ip("203.0.113.9")),
            trusted: false,
            client: ip("203.0.113.9"),
            client_text: text(ip("203.0.113.9")),
            scheme: "http",
            host: Some("api.example.com"),
        };
        for mode in [ForwardedMode::Append, ForwardedMode::Replace] {
            let h = headers(mode, &hop, &map(SPOOF));
            assert_eq!(get(&h, &X_FORWARDED_FOR), Some("203.0.113.9"), "{mode:?}");
            assert_eq!(get(&h, &X_FORWARDED_PROTO), Some("http"));
            assert_eq!(get(&h, &X_FORWARDED_HOST), Some("api.example.com"));
            assert_eq!(
                get(&h, &FORWARDED),
                Some("for=203.0.113.9;host=api.example.com;proto=http")
            );
        }
        assert!(headers(ForwardedMode::Off, &hop, &map(SPOOF)).is_empty());
    }

    #[test]
    fn trusted_proxy_chain_is_extended_or_collapsed() {
        let hop = Arrival {
            peer: ip("10.0.0.2"),
            peer_text: text(ip("10.0.0.2")),
            trusted: true,
            client: ip("1.2.3.4"),
            client_text: text(ip("1.2.3.4")),
            scheme: "http",
            host: Some("internal:8080"),
        };
        let incoming = map(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "shop.example"),
            ("forwarded", "for=1.2.3.4;proto=https"),
        ]);
        let h = headers(ForwardedMode::Append, &hop, &incoming);
        assert_eq!(get(&h, &X_FORWARDED_FOR), Some("1.2.3.4, 10.0.0.2"));
        assert_eq!(get(&h, &X_FORWARDED_PROTO), Some("https"));
        assert_eq!(get(&h, &X_FORWARDED_HOST), Some("shop.example"));
        assert_eq!(
            get(&h, &FORWARDED),
            Some("for=1.2.3.4;proto=https, for=10.0.0.2;host=shop.example;proto=https")
        );
        let mut xff_only = incoming.clone();
        xff_only.remove(&FORWARDED);
        let h = headers(ForwardedMode::Append, &hop, &xff_only);
        assert_eq!(
            get(&h, &FORWARDED),
            Some("for=1.2.3.4, for=10.0.0.2;host=shop.example;proto=https"),
            "Forwarded names the client X-Forwarded-For named"
        );
        let h = headers(ForwardedMode::Replace, &hop, &incoming);
        assert_eq!(get(&h, &X_FORWARDED_FOR), Some("1.2.3.4"));
        assert_eq!(
            get(&h, &FORWARDED),
            Some("for=1.2.3.4;host=shop.example;proto=https")
        );
    }

    #[test]
    fn ipv6_and_odd_hosts_are_quoted() {
        let hop = Arrival {
            peer: ip("2001:db8::17"),
            peer_text: text(ip("2001:db8::17")),
            trusted: false,
            client: ip("2001:db8::17"),
            client_text: text(ip("2001:db8::17")),
            scheme: "https",
            host: Some("a\"b"),
        };
        let h = headers(ForwardedMode::Append, &hop, &HeaderMap::new());
        assert_eq!(get(&h, &X_FORWARDED_FOR), Some("2001:db8::17"));
        assert_eq!(
            get(&h, &FORWARDED),
            Some("for=\"[2001:db8::17]\";host=\"a\\\"b\";proto=https")
        );
    }

    #[test]
    fn modes_parse() {
        assert_eq!(
            ForwardedMode::from_name("append"),
            Some(ForwardedMode::Append)
        );
        assert_eq!(
            ForwardedMode::from_name("replace"),
            Some(ForwardedMode::Replace)
        );
        assert_eq!(ForwardedMode::from_name("off"), Some(ForwardedMode::Off));
        assert_eq!(
            ForwardedMode::from_name("Append"),
            None,
            "case-sensitive like every enum key"
        );
    }

    proptest::proptest! {
        /// Whatever a client or a proxy sends: no panic, and a client address that is
        /// the peer or one of the chain's addresses.
        #[test]
        fn any_chain_is_handled(chain in "[ -~\u{80}-\u{ff}]{0,120}", host in "[!-~]{0,30}") {
            let Ok(value) = HeaderValue::from_bytes(chain.as_bytes()) else {
                return Ok(());
            };
            let mut incoming = HeaderMap::new();
            incoming.insert(X_FORWARDED_FOR.clone(), value.clone());
            incoming.insert(FORWARDED.clone(), value.clone());
            incoming.insert(X_FORWARDED_HOST.clone(), value);
            let peer = ip("10.0.0.1");
            for trusted in [nets(&[]), nets(&["0.0.0.0/0", "::/0"])] {
                let client = client_address(peer, &incoming, &trusted);
                proptest::prop_assert!(
                    client == peer || chain.split(',').filter_map(parse_entry).any(|e| e == client)
                );
                for mode in [ForwardedMode::Append, ForwardedMode::Replace, ForwardedMode::Off] {
                    let (peer_text, client_text) = (peer.to_string(), client.to_string());
                    let hop = Arrival {
                        peer,
                        peer_text: &peer_text,
                        trusted: !trusted.is_empty(),
                        client,
                        client_text: &client_text,
                        scheme: "http",
                        host: Some(&host),
                    };
                    let _ = headers(mode, &hop, &incoming);
                }
            }
        }
    }
}
