//! The session table of the pipeline core, with expiry by tick buckets as
//! ZooKeeper's `SessionTrackerImpl`/`ExpiryQueue`: a session's deadline is
//! rounded up to the next tick, so expiring is O(expired sessions) per tick.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::constants::SESSION_PASSWORD_LEN;
use crate::types::SessionId;

/// ZooKeeper's `ZooKeeperServer.superSecret`.
const SUPER_SECRET: i64 = 0xB341_5C00;

/// The session password, exactly as Apache ZooKeeper derives it
/// (`new java.util.Random(id ^ superSecret).nextBytes(16 bytes)`), so any
/// server of the ensemble, a restarted one, or corral after `import-zk`,
/// accepts a re-attach from a client that got its password from ZooKeeper.
/// Like ZooKeeper's, it protects against mistakes, not attackers: anyone who
/// knows a session id can compute it.
pub fn password(id: SessionId) -> [u8; SESSION_PASSWORD_LEN] {
    const MULTIPLIER: u64 = 0x5_DEEC_E66D;
    const MASK: u64 = (1 << 48) - 1;
    let mut seed = ((id ^ SUPER_SECRET) as u64 ^ MULTIPLIER) & MASK;
    let mut out = [0u8; SESSION_PASSWORD_LEN];
    for chunk in out.chunks_mut(4) {
        seed = (seed.wrapping_mul(MULTIPLIER).wrapping_add(0xB)) & MASK;
        // Random.next(32): the top 32 of the 48 bits, low byte first.
        let rnd = (seed >> 16) as u32;
        for (i, b) in chunk.iter_mut().enumerate() {
            *b = (rnd >> (8 * i)) as u8;
        }
    }
    out
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub timeout_ms: i32,
    /// The tick bucket the session expires in (ms).
    pub deadline_ms: u64,
    /// A closeSession was prepared; further requests fail SessionExpired.
    pub closing: bool,
    /// The server the session's client is attached to, as the leader knows
    /// it (ZooKeeper's `SessionImpl.owner`): None until a server creates,
    /// re-attaches or first uses it in this leadership.
    pub owner: Option<u64>,
}

#[derive(Debug)]
pub struct SessionTracker {
    sessions: HashMap<SessionId, Session>,
    buckets: BTreeMap<u64, HashSet<SessionId>>,
    tick_ms: u64,
    next_id: i64,
}

impl SessionTracker {
    /// `server_id` goes into the top byte of ids, as ZooKeeper's.
    pub fn new(tick_ms: u64, server_id: u8, now_ms: u64) -> SessionTracker {
        let mut next_id = (((now_ms as i64) << 24) as u64 >> 8) as i64;
        next_id |= (server_id as i64) << 56;
        // 0 means "no session" in ephemeralOwner, i64::MIN means container.
        if next_id == crate::types::CONTAINER_EPHEMERAL_OWNER || next_id == 0 {
            next_id += 1;
        }
        SessionTracker {
            sessions: HashMap::new(),
            buckets: BTreeMap::new(),
            tick_ms: tick_ms.max(1),
            next_id,
        }
    }

    pub fn next_session_id(&mut self) -> SessionId {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn bucket(&self, t: u64) -> u64 {
        (t / self.tick_ms + 1) * self.tick_ms
    }

    fn reschedule(&mut self, id: SessionId, now_ms: u64) {
        let Some(s) = self.sessions.get(&id) else {
            return;
        };
        let new = self.bucket(now_ms + s.timeout_ms.max(0) as u64);
        let old = s.deadline_ms;
        if new == old {
            return;
        }
        if let Some(set) = self.buckets.get_mut(&old) {
            set.remove(&id);
            if set.is_empty() {
                self.buckets.remove(&old);
            }
        }
        self.buckets.entry(new).or_default().insert(id);
        self.sessions.get_mut(&id).expect("present").deadline_ms = new;
    }

    /// Adds (or re-adds, at recovery) a session that is live from `now_ms`.
    pub fn add(&mut self, id: SessionId, timeout_ms: i32, now_ms: u64) {
        self.sessions.insert(
            id,
            Session {
                id,
                timeout_ms,
                deadline_ms: 0,
                closing: false,
                owner: None,
            },
        );
        if id >= self.next_id && (id >> 56) == (self.next_id >> 56) {
            self.next_id = id + 1;
        }
        self.reschedule(id, now_ms);
    }

    /// Keeps a session alive; false if it is unknown or closing.
    pub fn touch(&mut self, id: SessionId, now_ms: u64) -> bool {
        match self.sessions.get(&id) {
            Some(s) if !s.closing => {
                self.reschedule(id, now_ms);
                true
            }
            _ => false,
        }
    }

    pub fn is_live(&self, id: SessionId) -> bool {
        self.sessions.get(&id).is_some_and(|s| !s.closing)
    }

    pub fn get(&self, id: SessionId) -> Option<&Session> {
        self.sessions.get(&id)
    }

    /// The session's client is now attached through server `owner` (a
    /// session created or re-attached there) ↔ `SessionTracker.setOwner`.
    pub fn set_owner(&mut self, id: SessionId, owner: u64) {
        if let Some(s) = self.sessions.get_mut(&id) {
            s.owner = Some(owner);
        }
    }

    /// The owner half of ZooKeeper's `SessionTrackerImpl.checkSession`: a
    /// request for a session arriving through another server than the one
    /// its client last attached through means the session moved (the
    /// request was sent on a stale connection). A session without an owner
    /// (this leadership has not seen it attach yet) is claimed by the
    /// first server that uses it. False if the session moved.
    pub fn check_owner(&mut self, id: SessionId, owner: u64) -> bool {
        let Some(s) = self.sessions.get_mut(&id) else {
            return true;
        };
        match s.owner {
            None => {
                s.owner = Some(owner);
                true
            }
            Some(o) => o == owner,
        }
    }

    pub fn set_closing(&mut self, id: SessionId) {
        if let Some(s) = self.sessions.get_mut(&id) {
            s.closing = true;
        }
    }

    pub fn remove(&mut self, id: SessionId) {
        if let Some(s) = self.sessions.remove(&id) {
            if let Some(set) = self.buckets.get_mut(&s.deadline_ms) {
                set.remove(&id);
                if set.is_empty() {
                    self.buckets.remove(&s.deadline_ms);
                }
            }
        }
    }

    /// Sessions whose deadline has passed and that are not yet closing;
    /// they are marked closing.
    pub fn expire(&mut self, now_ms: u64) -> Vec<SessionId> {
        let mut out = Vec::new();
        while let Some((&t, _)) = self.buckets.first_key_value() {
            if t > now_ms {
                break;
            }
            let set = self.buckets.remove(&t).expect("present");
            for id in set {
                if let Some(s) = self.sessions.get_mut(&id) {
                    if !s.closing {
                        s.closing = true;
                        out.push(id);
                    }
                }
            }
        }
        out.sort_unstable();
        out
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }
}

#[cfg(test)]
mod tests {
    /// Session ids and the passwords Apache ZooKeeper 3.8 sent for them
    /// (measured with a raw connect).
    #[test]
    fn passwords_are_zookeepers() {
        for (id, hex) in [
            (0x10000fa01b50000i64, "81a076a47a6e373cc77154bd53844386"),
            (0x10000fa01b50001, "94c170a41aba1681bcb4bbe8270d5853"),
            (0x10000fa01b50002, "5b5e82a43ad778b2ddeb8566ac721aec"),
        ] {
            let got: String = super::password(id)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(got, hex, "session {id:#x}");
        }
    }

    use super::*;

    #[test]
    fn expires_after_timeout_unless_touched() {
        let mut t = SessionTracker::new(100, 1, 0);
        t.add(1, 1000, 0);
        t.add(2, 1000, 0);
        assert!(t.expire(900).is_empty());
        assert!(t.touch(2, 900));
        assert_eq!(t.expire(1100), vec![1]);
        assert!(!t.is_live(1));
        assert!(!t.touch(1, 1100));
        assert_eq!(t.expire(2100), vec![2]);
    }

    #[test]
    fn passwords_are_stable_and_distinct() {
        assert_eq!(password(5), password(5));
        assert_ne!(password(5), password(6));
    }
}
