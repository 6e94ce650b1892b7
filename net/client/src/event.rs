//! Session states and watch events, named and printed as ZooKeeper's Java
//! client names and prints them (`ZooKeeper.States`,
//! `Watcher.Event.KeeperState`, `WatchedEvent.toString`).

use std::fmt;

use engine::types::{keeper_state, EventType};

/// The state of a client handle (`ZooKeeper.States`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Connecting,
    Connected,
    ConnectedReadOnly,
    Closed,
    AuthFailed,
}

impl State {
    /// The name zkCli shows in its prompt.
    pub fn name(self) -> &'static str {
        match self {
            State::Connecting => "CONNECTING",
            State::Connected => "CONNECTED",
            State::ConnectedReadOnly => "CONNECTEDREADONLY",
            State::Closed => "CLOSED",
            State::AuthFailed => "AUTH_FAILED",
        }
    }

    /// `States.isAlive`: the handle may still reach the server.
    pub fn is_alive(self) -> bool {
        !matches!(self, State::Closed | State::AuthFailed)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The session state an event reports (`Watcher.Event.KeeperState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeeperState {
    Unknown,
    Disconnected,
    SyncConnected,
    AuthFailed,
    ConnectedReadOnly,
    Expired,
    Closed,
}

impl KeeperState {
    pub fn from_code(code: i32) -> KeeperState {
        match code {
            keeper_state::DISCONNECTED => KeeperState::Disconnected,
            keeper_state::SYNC_CONNECTED => KeeperState::SyncConnected,
            keeper_state::AUTH_FAILED => KeeperState::AuthFailed,
            keeper_state::CONNECTED_READ_ONLY => KeeperState::ConnectedReadOnly,
            keeper_state::EXPIRED => KeeperState::Expired,
            keeper_state::CLOSED => KeeperState::Closed,
            _ => KeeperState::Unknown,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            KeeperState::Unknown => "Unknown",
            KeeperState::Disconnected => "Disconnected",
            KeeperState::SyncConnected => "SyncConnected",
            KeeperState::AuthFailed => "AuthFailed",
            KeeperState::ConnectedReadOnly => "ConnectedReadOnly",
            KeeperState::Expired => "Expired",
            KeeperState::Closed => "Closed",
        }
    }
}

/// `Watcher.Event.EventType` from its wire code.
pub fn event_type_from_code(code: i32) -> Option<EventType> {
    Some(match code {
        -1 => EventType::None,
        1 => EventType::NodeCreated,
        2 => EventType::NodeDeleted,
        3 => EventType::NodeDataChanged,
        4 => EventType::NodeChildrenChanged,
        5 => EventType::DataWatchRemoved,
        6 => EventType::ChildWatchRemoved,
        7 => EventType::PersistentWatchRemoved,
        _ => return None,
    })
}

pub fn event_type_name(t: EventType) -> &'static str {
    match t {
        EventType::None => "None",
        EventType::NodeCreated => "NodeCreated",
        EventType::NodeDeleted => "NodeDeleted",
        EventType::NodeDataChanged => "NodeDataChanged",
        EventType::NodeChildrenChanged => "NodeChildrenChanged",
        EventType::DataWatchRemoved => "DataWatchRemoved",
        EventType::ChildWatchRemoved => "ChildWatchRemoved",
        EventType::PersistentWatchRemoved => "PersistentWatchRemoved",
    }
}

/// One event for the client's watcher. State changes have no path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchedEvent {
    pub state: KeeperState,
    pub event_type: EventType,
    /// A client path (chroot removed).
    pub path: Option<String>,
}

impl fmt::Display for WatchedEvent {
    /// `WatchedEvent.toString()`, byte for byte.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "WatchedEvent state:{} type:{} path:{}",
            self.state.name(),
            event_type_name(self.event_type),
            self.path.as_deref().unwrap_or("null")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_print_as_javas_to_string() {
        let e = WatchedEvent {
            state: KeeperState::SyncConnected,
            event_type: EventType::None,
            path: None,
        };
        assert_eq!(
            e.to_string(),
            "WatchedEvent state:SyncConnected type:None path:null"
        );
        let e = WatchedEvent {
            state: KeeperState::SyncConnected,
            event_type: EventType::NodeDataChanged,
            path: Some("/x".into()),
        };
        assert_eq!(
            e.to_string(),
            "WatchedEvent state:SyncConnected type:NodeDataChanged path:/x"
        );
    }

    #[test]
    fn every_event_type_code_round_trips() {
        for code in [-1, 1, 2, 3, 4, 5, 6, 7] {
            let t = event_type_from_code(code).unwrap();
            assert_eq!(t as i32, code);
        }
        assert_eq!(event_type_from_code(99), None);
    }
}
