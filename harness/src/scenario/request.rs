//! What a browser's step asks for besides a terminal: a request of another
//! shape than an upgrade (`request = "get"`, EX-2, WS-8), and a job's service
//! through the proxy (`proxy = "<service>/<port>/<path>"`, WI-3/4).

use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

/// The shape of a request that is not an ordinary upgrade; a scenario's
/// `request = "get" | "post" | "http10-upgrade"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    Get,
    Post,
    /// `GET` with `Connection: Upgrade` and `Upgrade: websocket`, as HTTP/1.0.
    Http10Upgrade,
}

impl Shape {
    pub fn describe(self) -> &'static str {
        match self {
            Shape::Get => "a plain GET",
            Shape::Post => "a plain POST",
            Shape::Http10Upgrade => "an upgrade as HTTP/1.0",
        }
    }
}

/// `<service>/<port>/<path>` of a proxy request: what follows
/// `<session>/proxy/` on the runner (RT-2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyTarget {
    pub service: String,
    pub port: String,
    pub path: String,
}

impl ProxyTarget {
    /// From a scenario's `proxy = "<service>/<port>/<path>"`.
    pub fn parse(text: &str) -> Option<ProxyTarget> {
        let mut parts = text.splitn(3, '/');
        let (service, port) = (parts.next()?, parts.next()?);
        if service.is_empty() || port.is_empty() {
            return None;
        }
        Some(ProxyTarget {
            service: service.into(),
            port: port.into(),
            path: parts.next().unwrap_or("").into(),
        })
    }
}

/// `<service>/<port>/<path>`, as it follows `<session>/proxy/`.
impl fmt::Display for ProxyTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.service, self.port, self.path)
    }
}

impl<'de> Deserialize<'de> for ProxyTarget {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        ProxyTarget::parse(&text).ok_or_else(|| {
            de::Error::custom(format!(
                "proxy = {text:?}: use \"<service>/<port>/<path>\", e.g. \"webide-file-sync/3000/\""
            ))
        })
    }
}

impl Serialize for ProxyTarget {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!(
            "{}/{}/{}",
            self.service, self.port, self.path
        ))
    }
}
