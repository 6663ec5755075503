//! The sessions of one runner process (DP-3: they live in its memory only), and
//! routing of request paths to them (RT-1).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::Session;
use crate::rng::Rng;

/// All live sessions, by id. A BTreeMap keeps any listing in a stable order.
#[derive(Clone, Default)]
pub struct Sessions(Arc<Mutex<BTreeMap<String, Arc<Session>>>>);

impl Sessions {
    /// A new session with a fresh id and token (JOB-2).
    pub fn create(&self, rng: &Rng) -> Arc<Session> {
        let session = Arc::new(Session::new(rng.hex_token(), rng.hex_token()));
        self.0
            .lock()
            .expect("sessions lock poisoned")
            .insert(session.id.clone(), session.clone());
        session
    }

    /// LC-7: later requests for it get 404.
    pub fn remove(&self, id: &str) {
        self.0.lock().expect("sessions lock poisoned").remove(id);
    }

    pub fn len(&self) -> usize {
        self.0.lock().expect("sessions lock poisoned").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// RT-1: the session whose endpoint + `/` prefixes `path`, and the rest of the path.
    pub fn route<'p>(&self, path: &'p str) -> Option<(Arc<Session>, &'p str)> {
        let rest = path.strip_prefix("/session/")?;
        let (id, rest) = rest.split_once('/')?;
        let session = self
            .0
            .lock()
            .expect("sessions lock poisoned")
            .get(id)
            .cloned()?;
        Some((session, rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_endpoint_prefix_only() {
        let sessions = Sessions::default();
        let s = sessions.create(&Rng::seeded(1));
        let exec = format!("{}/exec", s.endpoint());
        assert_eq!(sessions.route(&exec).map(|(_, rest)| rest), Some("exec"));
        assert!(
            sessions.route(&s.endpoint()).is_none(),
            "endpoint without '/' is not inside it"
        );
        assert!(sessions.route("/session/unknown/exec").is_none());
        sessions.remove(&s.id);
        assert!(sessions.route(&exec).is_none());
    }

    #[test]
    fn one_connection_at_a_time_and_the_slot_frees_on_drop() {
        let sessions = Sessions::default();
        let s = sessions.create(&Rng::seeded(1));
        let first = s.lock().expect("free slot");
        assert!(s.lock().is_none());
        assert!(s.is_connected());
        drop(first);
        assert!(!s.is_connected());
        assert!(s.lock().is_some());
    }
}
