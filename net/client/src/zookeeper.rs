//! The client handle ↔ ZooKeeper's `ZooKeeper` class: one method per
//! operation, chroot applied to every path going out and removed from
//! every path coming back, client-side path checks before anything is sent.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use engine::op::{MultiResult, ReadOp, Response, WriteOp};
use engine::types::{opcode, Acl, AddWatchMode, CreateMode, ErrorCode, Stat, WatcherType};
use tokio::sync::{mpsc, oneshot};

use crate::cnxn::{Cnxn, Command, Options, Packet, Shared};
use crate::codec::Request;
use crate::connect_string::{validate_create_path, validate_path, ConnectString};
use crate::event::{State, WatchedEvent};
use crate::watches::Registration;

/// Why a call failed: what the server (or the connection) said, or a path
/// the client refused to send (`IllegalArgumentException` in Java).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Keeper(ErrorCode),
    #[error("{0}")]
    BadPath(String),
}

impl From<ErrorCode> for Error {
    fn from(c: ErrorCode) -> Error {
        Error::Keeper(c)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// A session with a ZooKeeper ensemble. Cheap to clone; every clone talks
/// through the same connection task.
#[derive(Clone)]
pub struct Client {
    connect: ConnectString,
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Mutex<Shared>>,
}

fn unexpected(r: Response) -> Error {
    // A reply that does not match its request is a broken server.
    let _ = r;
    Error::Keeper(ErrorCode::MarshallingError)
}

impl Client {
    /// Starts connecting (in the background, on the current tokio
    /// runtime) and returns the handle and its watch events, the first of
    /// which is SyncConnected once a server accepted the session.
    pub fn connect(
        connect: ConnectString,
        session_timeout_ms: i32,
        read_only: bool,
    ) -> (Client, mpsc::UnboundedReceiver<WatchedEvent>) {
        Client::connect_with(connect, session_timeout_ms, read_only, None)
    }

    /// `connect`, over TLS when `tls` is given.
    pub fn connect_with(
        connect: ConnectString,
        session_timeout_ms: i32,
        read_only: bool,
        tls: Option<crate::tls::Tls>,
    ) -> (Client, mpsc::UnboundedReceiver<WatchedEvent>) {
        let shared = Arc::new(Mutex::new(Shared {
            state: State::Connecting,
            session_id: 0,
            timeout_ms: session_timeout_ms,
            ended_with: ErrorCode::ConnectionLoss,
        }));
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let cnxn = Cnxn::new(
            connect.clone(),
            Options {
                session_timeout_ms,
                read_only,
                tls,
            },
            shared.clone(),
            events_tx,
        );
        tokio::spawn(cnxn.run(commands_rx));
        (
            Client {
                connect,
                commands,
                shared,
            },
            events_rx,
        )
    }

    pub fn state(&self) -> State {
        self.shared.lock().expect("client state lock").state
    }

    pub fn session_id(&self) -> i64 {
        self.shared.lock().expect("client state lock").session_id
    }

    pub fn connect_string(&self) -> &ConnectString {
        &self.connect
    }

    fn server_path(&self, path: &str) -> String {
        self.connect.server_path(path)
    }

    async fn submit(
        &self,
        request: Request,
        registration: Option<Registration>,
        deregistration: Option<(WatcherType, bool)>,
    ) -> Result<Response> {
        let path = request.path().map(str::to_string);
        let (tx, rx) = oneshot::channel();
        let packet = Packet {
            registration: registration.zip(path.clone()),
            deregistration: deregistration.and_then(|(k, local)| Some((path?, k, local))),
            request,
            reply: tx,
        };
        let ended = |s: &Self| s.shared.lock().expect("client state lock").ended_with;
        if self.commands.send(Command::Submit(packet)).is_err() {
            return Err(Error::Keeper(ended(self)));
        }
        match rx.await {
            Ok(r) => r.map_err(Error::Keeper),
            Err(_) => Err(Error::Keeper(ended(self))),
        }
    }

    /// create / createContainer (no Stat) or create2 / createTTL (with
    /// one), chosen as the Java client does: with a TTL, `create2`-style.
    pub async fn create(
        &self,
        path: &str,
        data: Option<&[u8]>,
        acl: Vec<Acl>,
        mode: CreateMode,
        ttl: Option<i64>,
    ) -> Result<String> {
        validate_create_path(path, mode.is_sequential()).map_err(Error::BadPath)?;
        if acl.is_empty() {
            return Err(Error::Keeper(ErrorCode::InvalidAcl));
        }
        let code = match (mode, ttl) {
            (_, Some(_)) => opcode::CREATE_TTL,
            (CreateMode::Container, None) => opcode::CREATE_CONTAINER,
            (_, None) => opcode::CREATE,
        };
        let flags = match mode {
            CreateMode::Persistent => 0,
            CreateMode::Ephemeral => 1,
            CreateMode::PersistentSequential => 2,
            CreateMode::EphemeralSequential => 3,
            CreateMode::Container => 4,
            CreateMode::PersistentWithTtl => 5,
            CreateMode::PersistentSequentialWithTtl => 6,
        };
        let op = WriteOp::Create {
            opcode: code,
            path: self.server_path(path),
            data: data.map(Bytes::copy_from_slice),
            acl,
            flags,
            ttl: ttl.unwrap_or(-1),
        };
        match self.submit(Request::Write(op), None, None).await? {
            Response::Path(p) | Response::PathStat(p, _) => Ok(self.strip_created(&p)),
            r => Err(unexpected(r)),
        }
    }

    /// `response.getPath().substring(chrootPath.length())`.
    fn strip_created(&self, p: &str) -> String {
        match &self.connect.chroot {
            Some(c) if p.len() >= c.len() => p[c.len()..].to_string(),
            _ => p.to_string(),
        }
    }

    pub async fn delete(&self, path: &str, version: i32) -> Result<()> {
        validate_path(path).map_err(Error::BadPath)?;
        // As ZooKeeper: "/" is never chrooted, so deleting it always fails.
        let server = if path == "/" {
            path.to_string()
        } else {
            self.server_path(path)
        };
        let op = WriteOp::Delete {
            path: server,
            version,
        };
        self.submit(Request::Write(op), None, None).await?;
        Ok(())
    }

    pub async fn exists(&self, path: &str, watch: bool) -> Result<Option<Stat>> {
        validate_path(path).map_err(Error::BadPath)?;
        let op = ReadOp::Exists {
            path: self.server_path(path),
            watch,
        };
        let reg = watch.then_some(Registration::Exists);
        match self.submit(Request::Read(op), reg, None).await {
            Ok(Response::Stat(s)) => Ok(Some(s)),
            Ok(r) => Err(unexpected(r)),
            Err(Error::Keeper(ErrorCode::NoNode)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn get_data(&self, path: &str, watch: bool) -> Result<(Option<Bytes>, Stat)> {
        validate_path(path).map_err(Error::BadPath)?;
        let op = ReadOp::GetData {
            path: self.server_path(path),
            watch,
        };
        let reg = watch.then_some(Registration::Data);
        match self.submit(Request::Read(op), reg, None).await? {
            Response::Data(d, s) => Ok((d, s)),
            r => Err(unexpected(r)),
        }
    }

    /// getData of `/zookeeper/config`, never chrooted (`getConfig`).
    pub async fn get_config(&self, watch: bool) -> Result<(Option<Bytes>, Stat)> {
        let op = ReadOp::GetData {
            path: "/zookeeper/config".to_string(),
            watch,
        };
        let reg = watch.then_some(Registration::Data);
        match self.submit(Request::Read(op), reg, None).await? {
            Response::Data(d, s) => Ok((d, s)),
            r => Err(unexpected(r)),
        }
    }

    pub async fn set_data(&self, path: &str, data: Option<&[u8]>, version: i32) -> Result<Stat> {
        validate_path(path).map_err(Error::BadPath)?;
        let op = WriteOp::SetData {
            path: self.server_path(path),
            data: data.map(Bytes::copy_from_slice),
            version,
        };
        match self.submit(Request::Write(op), None, None).await? {
            Response::Stat(s) => Ok(s),
            r => Err(unexpected(r)),
        }
    }

    pub async fn get_acl(&self, path: &str) -> Result<(Vec<Acl>, Stat)> {
        validate_path(path).map_err(Error::BadPath)?;
        let op = ReadOp::GetAcl {
            path: self.server_path(path),
        };
        match self.submit(Request::Read(op), None, None).await? {
            Response::Acl(a, s) => Ok((a, s)),
            r => Err(unexpected(r)),
        }
    }

    pub async fn set_acl(&self, path: &str, acl: Vec<Acl>, version: i32) -> Result<Stat> {
        validate_path(path).map_err(Error::BadPath)?;
        if acl.is_empty() {
            return Err(Error::Keeper(ErrorCode::InvalidAcl));
        }
        let op = WriteOp::SetAcl {
            path: self.server_path(path),
            acl,
            version,
        };
        match self.submit(Request::Write(op), None, None).await? {
            Response::Stat(s) => Ok(s),
            r => Err(unexpected(r)),
        }
    }

    /// getChildren, or getChildren2 when `with_stat`.
    pub async fn get_children(
        &self,
        path: &str,
        watch: bool,
        with_stat: bool,
    ) -> Result<(Vec<String>, Option<Stat>)> {
        validate_path(path).map_err(Error::BadPath)?;
        let op = ReadOp::GetChildren {
            path: self.server_path(path),
            watch,
            with_stat,
        };
        let reg = watch.then_some(Registration::Child);
        match self.submit(Request::Read(op), reg, None).await? {
            Response::Children(c) => Ok((c, None)),
            Response::Children2(c, s) => Ok((c, Some(s))),
            r => Err(unexpected(r)),
        }
    }

    pub async fn get_all_children_number(&self, path: &str) -> Result<i32> {
        validate_path(path).map_err(Error::BadPath)?;
        let op = ReadOp::GetAllChildrenNumber {
            path: self.server_path(path),
        };
        match self.submit(Request::Read(op), None, None).await? {
            Response::Number(n) => Ok(n),
            r => Err(unexpected(r)),
        }
    }

    /// The session's ephemerals under `prefix`. Matches ZooKeeper 3.8's
    /// client, which sends the prefix without the chroot.
    pub async fn get_ephemerals(&self, prefix: &str) -> Result<Vec<String>> {
        validate_path(prefix).map_err(Error::BadPath)?;
        let op = ReadOp::GetEphemerals {
            prefix: prefix.to_string(),
        };
        match self.submit(Request::Read(op), None, None).await? {
            Response::Strings(s) => Ok(s),
            r => Err(unexpected(r)),
        }
    }

    pub async fn sync(&self, path: &str) -> Result<()> {
        validate_path(path).map_err(Error::BadPath)?;
        self.submit(Request::Sync(self.server_path(path)), None, None)
            .await?;
        Ok(())
    }

    pub async fn add_watch(&self, path: &str, mode: AddWatchMode) -> Result<()> {
        validate_path(path).map_err(Error::BadPath)?;
        let op = ReadOp::AddWatch {
            path: self.server_path(path),
            mode,
        };
        self.submit(Request::Read(op), Some(Registration::Add(mode)), None)
            .await?;
        Ok(())
    }

    /// removeWatches for every watch of `kind` on `path`; with `local`,
    /// removed here even when the server cannot be reached.
    pub async fn remove_all_watches(
        &self,
        path: &str,
        kind: WatcherType,
        local: bool,
    ) -> Result<()> {
        validate_path(path).map_err(Error::BadPath)?;
        let op = ReadOp::RemoveWatches {
            path: self.server_path(path),
            kind,
        };
        self.submit(Request::Read(op), None, Some((kind, local)))
            .await?;
        Ok(())
    }

    pub async fn who_am_i(&self) -> Result<Vec<(String, String)>> {
        match self
            .submit(Request::Read(ReadOp::WhoAmI), None, None)
            .await?
        {
            Response::WhoAmI(ids) => Ok(ids),
            r => Err(unexpected(r)),
        }
    }

    /// A multi of writes (paths are chrooted here). A failed multi is Ok
    /// with the per-op results, as on the wire.
    pub async fn multi(&self, ops: Vec<WriteOp>) -> Result<Vec<MultiResult>> {
        let ops = ops
            .into_iter()
            .map(|op| match op {
                WriteOp::Delete { path, version } => WriteOp::Delete {
                    path: self.server_path(&path),
                    version,
                },
                WriteOp::Check { path, version } => WriteOp::Check {
                    path: self.server_path(&path),
                    version,
                },
                WriteOp::SetData {
                    path,
                    data,
                    version,
                } => WriteOp::SetData {
                    path: self.server_path(&path),
                    data,
                    version,
                },
                WriteOp::Create {
                    opcode,
                    path,
                    data,
                    acl,
                    flags,
                    ttl,
                } => WriteOp::Create {
                    opcode,
                    path: self.server_path(&path),
                    data,
                    acl,
                    flags,
                    ttl,
                },
                other => other,
            })
            .collect();
        match self
            .submit(Request::Write(WriteOp::Multi(ops)), None, None)
            .await?
        {
            Response::Multi(r) => Ok(r),
            r => Err(unexpected(r)),
        }
    }

    /// Adds auth info: sent now if connected, and again on every
    /// reconnect. A refusal ends the session with AuthFailed.
    pub fn add_auth(&self, scheme: &str, auth: &[u8]) {
        let _ = self.commands.send(Command::AddAuth {
            scheme: scheme.to_string(),
            auth: Bytes::copy_from_slice(auth),
        });
    }

    /// Closes the session (closeSession, then the Closed event).
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Close { done: tx }).is_ok() {
            let _ = rx.await;
        }
    }
}
