//! Baggage at the trust boundary: which incoming baggage members a route lets through
//! (`baggage_allow`, `baggage_deny`) and whether `trust = "restart"` keeps incoming
//! baggage at all (`restart_baggage`).
//!
//! * A pattern is an exact key (`tenant`) or a prefix ending in `*` (`app.*`; `*` alone
//!   matches every key). Keys compare case-sensitively, as W3C baggage keys are.
//! * `baggage_allow` absent: every key may pass; present: only keys matching one of its
//!   patterns (`[]` = none). `baggage_deny`: keys matching one of its patterns never
//!   pass, whatever the allowlist says (deny wins, as Envoy's and Kong's header
//!   filters let an explicit deny win).
//! * `restart_baggage = "drop"`: under `trust = "restart"` (the route's or the client
//!   network's) incoming baggage is dropped with the rest of the caller's context; the
//!   default `"keep"` carries it into the new trace (the W3C Baggage note that baggage
//!   may cross a trace restart), filtered as above.
//!
//! The filter runs once per request on the merged baggage of every format, before
//! injection; nothing is allocated when the route has no filter or the request no
//! baggage. Every dropped member is counted with its reason ([`Dropped`]).

use crate::model::named::named_enum;
use crate::model::Baggage;

named_enum! {
    /// What `trust = "restart"` does with incoming baggage (`restart_baggage`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum RestartBaggage("restart_baggage") {
        /// Carry it into the new trace (filtered by the allow/deny lists).
        Keep = "keep",
        /// Drop it with the rest of the incoming context.
        Drop = "drop",
    }
}

/// One `baggage_allow` / `baggage_deny` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPattern {
    /// This exact key.
    Exact(String),
    /// Every key starting with this (written with a trailing `*`).
    Prefix(String),
}

impl KeyPattern {
    /// Parses `key` or `prefix*`; `None` when empty, or when it has a `*` before the end
    /// or a character a W3C baggage key (an RFC 7230 token) cannot hold.
    pub fn parse(s: &str) -> Option<KeyPattern> {
        let (body, prefix) = match s.strip_suffix('*') {
            Some(body) => (body, true),
            None => (s, false),
        };
        if (!prefix && body.is_empty())
            || !body
                .bytes()
                .all(|b| b != b'*' && crate::codec::text::is_tchar(b))
        {
            return None;
        }
        Some(if prefix {
            KeyPattern::Prefix(body.to_owned())
        } else {
            KeyPattern::Exact(body.to_owned())
        })
    }

    /// Whether `key` matches.
    pub fn matches(&self, key: &str) -> bool {
        match self {
            KeyPattern::Exact(k) => k == key,
            KeyPattern::Prefix(p) => key.starts_with(p.as_str()),
        }
    }

    /// As written in the config (`/config` shows it).
    pub fn as_written(&self) -> String {
        match self {
            KeyPattern::Exact(k) => k.clone(),
            KeyPattern::Prefix(p) => format!("{p}*"),
        }
    }
}

/// A route's baggage filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaggageFilter {
    /// `baggage_allow`: `None` = every key may pass.
    pub allow: Option<Vec<KeyPattern>>,
    /// `baggage_deny`.
    pub deny: Vec<KeyPattern>,
    /// `restart_baggage`.
    pub restart: RestartBaggage,
}

impl Default for BaggageFilter {
    fn default() -> Self {
        BaggageFilter {
            allow: None,
            deny: Vec::new(),
            restart: RestartBaggage::Keep,
        }
    }
}

/// Members dropped from one request's incoming baggage, by reason (metric labels).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Dropped with the incoming context under `trust = "restart"`.
    pub restart: u32,
    /// Matching no `baggage_allow` pattern.
    pub not_allowed: u32,
    /// Matching a `baggage_deny` pattern.
    pub denied: u32,
}

impl Dropped {
    /// (reason label, count) for each reason.
    pub fn by_reason(self) -> [(&'static str, u32); 3] {
        [
            ("restart", self.restart),
            ("not_allowed", self.not_allowed),
            ("denied", self.denied),
        ]
    }

    /// Whether anything was dropped.
    pub fn any(self) -> bool {
        self.restart + self.not_allowed + self.denied > 0
    }
}

impl BaggageFilter {
    /// Whether the allow/deny lists can drop anything.
    pub fn filters(&self) -> bool {
        self.allow.is_some() || !self.deny.is_empty()
    }

    /// Removes the members the lists do not let through, counting them in `dropped`.
    pub fn apply(&self, baggage: &mut Baggage, dropped: &mut Dropped) {
        if baggage.is_empty() || !self.filters() {
            return;
        }
        baggage.retain(|e| {
            if self.deny.iter().any(|p| p.matches(&e.key)) {
                dropped.denied += 1;
                false
            } else if self
                .allow
                .as_ref()
                .is_some_and(|allow| !allow.iter().any(|p| p.matches(&e.key)))
            {
                dropped.not_allowed += 1;
                false
            } else {
                true
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::BaggageEntry;

    fn bag(keys: &[&str]) -> Baggage {
        keys.iter()
            .map(|k| BaggageEntry {
                key: (*k).to_owned(),
                value: "v".into(),
                properties: String::new(),
            })
            .collect()
    }

    fn keys(b: &Baggage) -> Vec<&str> {
        b.iter().map(|e| e.key.as_str()).collect()
    }

    fn patterns(list: &[&str]) -> Vec<KeyPattern> {
        list.iter().map(|p| KeyPattern::parse(p).unwrap()).collect()
    }

    #[test]
    fn patterns_parse_exact_and_prefix() {
        assert_eq!(
            KeyPattern::parse("tenant"),
            Some(KeyPattern::Exact("tenant".into()))
        );
        assert_eq!(
            KeyPattern::parse("app.*"),
            Some(KeyPattern::Prefix("app.".into()))
        );
        assert_eq!(KeyPattern::parse("*"), Some(KeyPattern::Prefix("".into())));
        for (bad, why) in [
            ("", "empty"),
            ("a*b", "star inside"),
            ("**", "two stars"),
            ("a b", "space"),
            ("a=b", "separator"),
            ("ключ", "not ASCII"),
        ] {
            assert_eq!(KeyPattern::parse(bad), None, "{bad:?}: {why}");
        }
    }

    #[test]
    fn allow_then_deny_with_counts() {
        let f = BaggageFilter {
            allow: Some(patterns(&["tenant", "app.*"])),
            deny: patterns(&["app.secret*"]),
            restart: RestartBaggage::Keep,
        };
        let mut b = bag(&[
            "tenant",
            "Tenant",
            "app.x",
            "app.secret.k",
            "user",
            "tenantx",
        ]);
        let mut d = Dropped::default();
        f.apply(&mut b, &mut d);
        assert_eq!(keys(&b), ["tenant", "app.x"]);
        assert_eq!(
            d,
            Dropped {
                restart: 0,
                not_allowed: 3,
                denied: 1
            }
        );
        // An empty allowlist lets nothing through; no lists change nothing.
        let none = BaggageFilter {
            allow: Some(vec![]),
            ..BaggageFilter::default()
        };
        let mut b = bag(&["a"]);
        none.apply(&mut b, &mut Dropped::default());
        assert!(b.is_empty());
        let mut b = bag(&["a", "b"]);
        BaggageFilter::default().apply(&mut b, &mut d);
        assert_eq!(keys(&b), ["a", "b"]);
    }
}
