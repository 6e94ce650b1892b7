//! Client operations as the engine sees them (decoded from the wire by
//! `net`), and their results.

use bytes::Bytes;

use crate::types::{Acl, AddWatchMode, ErrorCode, Stat, WatcherType};

/// `ConnectRequest` of `zookeeper.jute`: what a client sends first. The
/// server decodes it (`net::proto`), the client crate encodes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub password: Bytes,
    pub read_only: bool,
}

impl ConnectRequest {
    /// A request for a new session.
    pub fn new_session(timeout_ms: i32) -> ConnectRequest {
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms,
            session_id: 0,
            password: Bytes::from_static(&[0u8; crate::constants::SESSION_PASSWORD_LEN]),
            read_only: false,
        }
    }
}

/// A write: goes through the pipeline core, gets a zxid, is logged.
#[derive(Clone, Debug, PartialEq)]
pub enum WriteOp {
    /// create (1), create2 (15), createContainer (19) and createTTL (21);
    /// `opcode` says which, because the reply differs.
    Create {
        opcode: i32,
        path: String,
        /// None is a null buffer, which ZooKeeper keeps apart from empty.
        data: Option<Bytes>,
        acl: Vec<Acl>,
        flags: i32,
        ttl: i64,
    },
    Delete {
        path: String,
        version: i32,
    },
    /// Issued by the server itself for empty containers and expired TTLs.
    DeleteContainer {
        path: String,
    },
    SetData {
        path: String,
        data: Option<Bytes>,
        version: i32,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    Check {
        path: String,
        version: i32,
    },
    Multi(Vec<WriteOp>),
    CloseSession,
    /// A write ZooKeeper refuses before it looks at the tree, prepared as
    /// an error transaction with this code (so it takes a zxid, as there):
    /// a body that does not decode (MarshallingError), a null path in
    /// setData, setACL or check (BadArguments), reconfig while reconfig is
    /// disabled (ReconfigDisabled).
    Invalid(ErrorCode),
}

impl WriteOp {
    /// The one znode this write names; None for multi, closeSession and a
    /// refused write.
    pub fn path(&self) -> Option<&str> {
        match self {
            WriteOp::Create { path, .. }
            | WriteOp::Delete { path, .. }
            | WriteOp::DeleteContainer { path }
            | WriteOp::SetData { path, .. }
            | WriteOp::SetAcl { path, .. }
            | WriteOp::Check { path, .. } => Some(path),
            WriteOp::Multi(_) | WriteOp::CloseSession | WriteOp::Invalid(_) => None,
        }
    }
}

/// A read: answered on the session's own core from its view of the tree.
#[derive(Clone, Debug, PartialEq)]
pub enum ReadOp {
    Exists {
        path: String,
        watch: bool,
    },
    GetData {
        path: String,
        watch: bool,
    },
    GetAcl {
        path: String,
    },
    /// getChildren (8) and getChildren2 (12).
    GetChildren {
        path: String,
        watch: bool,
        with_stat: bool,
    },
    GetAllChildrenNumber {
        path: String,
    },
    GetEphemerals {
        prefix: String,
    },
    MultiRead(Vec<ReadOp>),
    CheckWatches {
        path: String,
        kind: WatcherType,
    },
    RemoveWatches {
        path: String,
        kind: WatcherType,
    },
    AddWatch {
        path: String,
        mode: AddWatchMode,
    },
    SetWatches {
        relative_zxid: i64,
        data: Vec<String>,
        exist: Vec<String>,
        child: Vec<String>,
        persistent: Vec<String>,
        persistent_recursive: Vec<String>,
    },
    WhoAmI,
}

impl ReadOp {
    /// The one znode this read names; None for multiRead, getEphemerals
    /// (a prefix), setWatches and whoAmI.
    pub fn path(&self) -> Option<&str> {
        match self {
            ReadOp::Exists { path, .. }
            | ReadOp::GetData { path, .. }
            | ReadOp::GetAcl { path }
            | ReadOp::GetChildren { path, .. }
            | ReadOp::GetAllChildrenNumber { path }
            | ReadOp::CheckWatches { path, .. }
            | ReadOp::RemoveWatches { path, .. }
            | ReadOp::AddWatch { path, .. } => Some(path),
            ReadOp::GetEphemerals { .. }
            | ReadOp::MultiRead(_)
            | ReadOp::SetWatches { .. }
            | ReadOp::WhoAmI => None,
        }
    }
}

/// A successful reply body.
#[derive(Clone, Debug, PartialEq)]
pub enum Response {
    Empty,
    Path(String),
    PathStat(String, Stat),
    Stat(Stat),
    Data(Option<Bytes>, Stat),
    Acl(Vec<Acl>, Stat),
    Children(Vec<String>),
    Children2(Vec<String>, Stat),
    Number(i32),
    Strings(Vec<String>),
    Multi(Vec<MultiResult>),
    MultiRead(Vec<MultiReadResult>),
    WhoAmI(Vec<(String, String)>),
}

/// One entry of a multi reply (`OpResult`).
#[derive(Clone, Debug, PartialEq)]
pub enum MultiResult {
    Create(String),
    Create2(String, Stat),
    Delete,
    SetData(Stat),
    Check,
    Error(ErrorCode),
}

/// One entry of a multiRead reply.
#[derive(Clone, Debug, PartialEq)]
pub enum MultiReadResult {
    Children(Vec<String>),
    Data(Option<Bytes>, Stat),
    Error(ErrorCode),
}

pub type Reply = Result<Response, ErrorCode>;
