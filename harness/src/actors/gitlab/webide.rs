//! Rails' side of a Web IDE terminal's service proxy: which service, port and
//! path a proxy request names (WI-3), and who may reach it (WI-2).

use super::{Denied, Gitlab, TerminalSpec};
use crate::scenario::ProxyTarget;

/// What Rails offers when the browser offers no subprotocol (WI-3).
const TERMINAL_SUBPROTOCOL: &str = "terminal.gitlab.com";

impl ProxyTarget {
    /// From the query Workhorse passes on to Rails: `service`, `port` and
    /// `path`, with Rails' defaults `build` and `default_port` (WI-3).
    pub fn from_query(query: &str) -> ProxyTarget {
        let mut target = ProxyTarget {
            service: String::new(),
            port: String::new(),
            path: String::new(),
        };
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = decode(value);
            match key {
                "service" => target.service = value,
                "port" => target.port = value,
                "path" => target.path = value,
                _ => {}
            }
        }
        if target.service.is_empty() {
            target.service = "build".into();
        }
        if target.port.is_empty() {
            target.port = "default_port".into();
        }
        target
    }

    /// The query a browser sends to Workhorse for this target.
    pub fn query(&self) -> String {
        format!(
            "service={}&port={}&path={}",
            encode(&self.service),
            encode(&self.port),
            encode(&self.path)
        )
    }
}

impl Gitlab {
    /// Whether job `id` is a Web IDE terminal (WI-1).
    pub fn is_webide(&self, id: u64) -> bool {
        let state = self.state.lock().expect("gitlab lock");
        state.jobs.get(&id).is_some_and(|job| job.def.webide)
    }

    /// Rails: may `user` reach job `id`'s services through the proxy? (WI-2)
    /// The channel spec offers the browser's own subprotocols (WI-3).
    pub fn authorize_proxy(
        &self,
        user: Option<&str>,
        id: u64,
        offered: &[String],
    ) -> Result<TerminalSpec, Denied> {
        let known = self
            .state
            .lock()
            .expect("gitlab lock")
            .jobs
            .contains_key(&id);
        if user.is_some() && known && !self.is_webide(id) {
            return Err(Denied {
                status: 403,
                reason: "the service proxy is only for Web IDE terminal jobs",
            });
        }
        let mut spec = self.authorize(user, id)?;
        spec.subprotocols = if offered.is_empty() {
            vec![TERMINAL_SUBPROTOCOL.into()]
        } else {
            offered.to_vec()
        };
        Ok(spec)
    }
}

/// Percent-encodes all but unreserved characters (RFC 3986).
fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Undoes [`encode`] and a form's `+` for a space; a malformed escape stays as written.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len()
                && bytes[i + 1..i + 3].iter().all(u8::is_ascii_hexdigit) =>
            {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("hex digits");
                out.push(u8::from_str_radix(hex, 16).expect("hex digits"));
                i += 3;
                continue;
            }
            b'+' => out.push(b' '),
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_survives_the_query_workhorse_passes_to_rails() {
        let target = ProxyTarget::parse("webide-file-sync/3000/files/a b?.txt").unwrap();
        assert_eq!(target.path, "files/a b?.txt");
        assert_eq!(ProxyTarget::from_query(&target.query()), target);
        assert_eq!(target.to_string(), "webide-file-sync/3000/files/a b?.txt");
    }

    #[test]
    fn rails_defaults_to_the_build_service_and_its_default_port() {
        let target = ProxyTarget::from_query("path=x");
        assert_eq!(target.to_string(), "build/default_port/x");
        assert_eq!(ProxyTarget::from_query("service=s&port=%3G1").port, "%3G1");
    }

    #[test]
    fn a_target_needs_a_service_and_a_port() {
        assert!(ProxyTarget::parse("webide-file-sync").is_none());
        assert!(ProxyTarget::parse("/3000/x").is_none());
        assert_eq!(
            ProxyTarget::parse("svc/3000").unwrap().to_string(),
            "svc/3000/"
        );
    }
}
