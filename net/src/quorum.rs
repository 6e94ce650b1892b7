//! Connections between the servers of an ensemble ↔ ZooKeeper's
//! `QuorumCnxManager` and the learner sockets.
//!
//! Two channels per pair of servers, as in zoo.cfg's
//! `server.N=host:quorumPort:electionPort`: election notifications on the
//! election port (a message sent while the connection is down is simply
//! lost: the election resends), and the ZAB stream on the quorum port,
//! FIFO. Both connections of a pair are opened by the server with the
//! larger id, so two servers never race to open one each; the other side
//! only accepts. The opener sends a handshake (magic, version, its id,
//! the channel) and then frames of `engine::zab::codec`.
//!
//! What the `Peer` is promised about the quorum channel: every message
//! arrives in order or the connection breaks, and a break is reported with
//! [`Inbound::Disconnected`] before any message of a later connection from
//! the same server. A message sent while there is no connection is
//! reported as a break too, so the `Peer` never believes it was delivered.
//!
//! Everything runs on the executor of the core that owns the `Peer`.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use engine::zab::codec::{self, CodecError};
use engine::zab::{Message, ServerId};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

const HANDSHAKE_MAGIC: u32 = 0x636f_7272; // "corr"
const PROTOCOL_VERSION: u16 = 1;
/// Bytes queued to one peer before the connection is given up as stuck.
const PEER_QUEUE_BYTES_MAX: usize = 256 * 1024 * 1024;
/// How long the opener waits between attempts.
const RECONNECT_DELAY: Duration = Duration::from_millis(100);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Channel {
    Election = 1,
    Quorum = 2,
}

/// Where a server listens.
#[derive(Clone, Debug)]
pub struct PeerAddrs {
    pub quorum: SocketAddr,
    pub election: SocketAddr,
}

/// What the transport hands to the `Peer`'s loop.
#[derive(Debug)]
pub enum Inbound {
    Message {
        from: ServerId,
        msg: Box<Message>,
    },
    /// The quorum connection to `peer` broke (or a message could not be
    /// sent on it).
    Disconnected {
        peer: ServerId,
    },
    /// The election connection to `peer` came up or went down: a LOOKING
    /// peer does not wait for votes from servers it cannot hear.
    ElectionLink {
        peer: ServerId,
        up: bool,
    },
}

struct Link {
    out: RefCell<Vec<u8>>,
    wake: LocalSender<()>,
    closing: Cell<bool>,
    fd: i32,
    /// Distinguishes this connection from a later one to the same peer.
    serial: u64,
}

impl Link {
    fn close(&self) {
        if !self.closing.replace(true) {
            let _ = self.wake.try_send(());
            // Wakes the reader, which may be blocked in read().
            unsafe {
                libc::shutdown(self.fd, libc::SHUT_RDWR);
            }
        }
    }
}

pub struct Transport {
    me: ServerId,
    peers: BTreeMap<ServerId, PeerAddrs>,
    links: RefCell<BTreeMap<(ServerId, Channel), Rc<Link>>>,
    inbox: LocalSender<Inbound>,
    next_serial: Cell<u64>,
}

impl Transport {
    /// Listens on our two ports and keeps connections open to every server
    /// with a smaller id. Returns the transport and what it receives.
    pub fn start(
        me: ServerId,
        peers: BTreeMap<ServerId, PeerAddrs>,
    ) -> std::io::Result<(Rc<Transport>, LocalReceiver<Inbound>)> {
        let mine = peers
            .get(&me)
            .cloned()
            .ok_or_else(|| std::io::Error::other(format!("server {me} is not in the ensemble")))?;
        let quorum = TcpListener::bind(mine.quorum)?;
        let election = TcpListener::bind(mine.election)?;
        let (tx, rx) = local_channel::new_unbounded();
        let t = Rc::new(Transport {
            me,
            peers,
            links: RefCell::new(BTreeMap::new()),
            inbox: tx,
            next_serial: Cell::new(1),
        });
        for listener in [quorum, election] {
            glommio::spawn_local(accept_loop(t.clone(), listener)).detach();
        }
        let lower: Vec<ServerId> = t.peers.keys().copied().filter(|&p| p < me).collect();
        for peer in lower {
            for channel in [Channel::Election, Channel::Quorum] {
                glommio::spawn_local(open_loop(t.clone(), peer, channel)).detach();
            }
        }
        info!(
            me,
            peers = t.peers.len(),
            "quorum transport listening on {} and {}",
            mine.quorum,
            mine.election
        );
        Ok((t, rx))
    }

    /// Queues `msg` to `to`; never waits.
    pub fn send(&self, to: ServerId, msg: &Message) {
        let channel = if msg.is_election() {
            Channel::Election
        } else {
            Channel::Quorum
        };
        let link = self.links.borrow().get(&(to, channel)).cloned();
        let Some(link) = link.filter(|l| !l.closing.get()) else {
            if channel == Channel::Quorum {
                self.report_break(to);
            }
            return;
        };
        let queued = {
            let mut out = link.out.borrow_mut();
            codec::encode(msg, &mut out);
            out.len()
        };
        if queued > PEER_QUEUE_BYTES_MAX {
            warn!(
                peer = to,
                queued, "server does not read what we send; dropping the connection"
            );
            self.drop_link(to, channel, link.serial);
            return;
        }
        let _ = link.wake.try_send(());
    }

    fn report_break(&self, peer: ServerId) {
        let _ = self.inbox.try_send(Inbound::Disconnected { peer });
    }

    /// Forgets a connection (if it is still the current one) and reports
    /// the break of a quorum connection.
    fn drop_link(&self, peer: ServerId, channel: Channel, serial: u64) {
        let removed = {
            let mut links = self.links.borrow_mut();
            match links.get(&(peer, channel)) {
                Some(l) if l.serial == serial => links.remove(&(peer, channel)),
                _ => None,
            }
        };
        if let Some(l) = removed {
            l.close();
            match channel {
                Channel::Quorum => self.report_break(peer),
                Channel::Election => {
                    let _ = self
                        .inbox
                        .try_send(Inbound::ElectionLink { peer, up: false });
                }
            }
        }
    }

    /// Installs a fresh connection, replacing (and reporting) an old one
    /// first, and runs it until it breaks.
    async fn run_link(self: Rc<Self>, peer: ServerId, channel: Channel, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let (wake_tx, wake_rx) = local_channel::new_bounded(1);
        let serial = self.next_serial.get();
        self.next_serial.set(serial + 1);
        let link = Rc::new(Link {
            out: RefCell::new(Vec::new()),
            wake: wake_tx,
            closing: Cell::new(false),
            fd: stream.as_raw_fd(),
            serial,
        });
        let old = self
            .links
            .borrow_mut()
            .insert((peer, channel), link.clone());
        if let Some(old) = old {
            old.close();
            if channel == Channel::Quorum {
                self.report_break(peer);
            }
        }
        if channel == Channel::Election {
            let _ = self
                .inbox
                .try_send(Inbound::ElectionLink { peer, up: true });
        }
        debug!(peer, ?channel, "connected");
        let (mut r, w) = futures_lite::io::split(stream);
        let writer = glommio::spawn_local(write_loop(link.clone(), w, wake_rx));
        let result = self.read_loop(peer, &mut r).await;
        if let Err(e) = result {
            if !link.closing.get() {
                info!(peer, ?channel, "connection closed: {e}");
            }
        }
        self.drop_link(peer, channel, serial);
        link.close();
        writer.await;
    }

    async fn read_loop(
        &self,
        peer: ServerId,
        r: &mut futures_lite::io::ReadHalf<TcpStream>,
    ) -> Result<(), String> {
        loop {
            let mut len = [0u8; 4];
            r.read_exact(&mut len).await.map_err(|e| e.to_string())?;
            let n = codec::frame_len(len).map_err(|e| e.to_string())?;
            let mut body = vec![0u8; n];
            r.read_exact(&mut body).await.map_err(|e| e.to_string())?;
            let msg = codec::decode(Bytes::from(body)).map_err(|e: CodecError| {
                warn!(
                    peer,
                    "undecodable message from server {peer}: {e}; dropping the connection"
                );
                e.to_string()
            })?;
            if self
                .inbox
                .try_send(Inbound::Message {
                    from: peer,
                    msg: Box::new(msg),
                })
                .is_err()
            {
                return Err("the peer loop is gone".into());
            }
        }
    }
}

async fn write_loop(
    link: Rc<Link>,
    mut w: futures_lite::io::WriteHalf<TcpStream>,
    wake: LocalReceiver<()>,
) {
    let mut chunk = Vec::new();
    loop {
        chunk.clear();
        std::mem::swap(&mut chunk, &mut *link.out.borrow_mut());
        if !chunk.is_empty() {
            if w.write_all(&chunk).await.is_err() || w.flush().await.is_err() {
                link.close();
                return;
            }
            continue;
        }
        if link.closing.get() || wake.recv().await.is_none() {
            return;
        }
    }
}

fn handshake(me: ServerId, channel: Channel) -> [u8; 15] {
    let mut h = [0u8; 15];
    h[0..4].copy_from_slice(&HANDSHAKE_MAGIC.to_be_bytes());
    h[4..6].copy_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    h[6..14].copy_from_slice(&me.to_be_bytes());
    h[14] = channel as u8;
    h
}

async fn open_loop(t: Rc<Transport>, peer: ServerId, channel: Channel) {
    let addrs = t.peers[&peer].clone();
    let addr = match channel {
        Channel::Election => addrs.election,
        Channel::Quorum => addrs.quorum,
    };
    let mut logged = false;
    loop {
        match TcpStream::connect_timeout(addr, Duration::from_secs(1)).await {
            Ok(mut s) => {
                logged = false;
                if s.write_all(&handshake(t.me, channel)).await.is_ok() {
                    t.clone().run_link(peer, channel, s).await;
                }
            }
            Err(e) => {
                if !logged {
                    debug!(peer, ?channel, %addr, "cannot connect: {e}; retrying");
                    logged = true;
                }
            }
        }
        glommio::timer::sleep(RECONNECT_DELAY).await;
    }
}

async fn accept_loop(t: Rc<Transport>, listener: TcpListener) {
    loop {
        let stream = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                warn!("accepting a server connection failed: {e}");
                glommio::timer::sleep(RECONNECT_DELAY).await;
                continue;
            }
        };
        let t = t.clone();
        glommio::spawn_local(async move {
            let mut stream = stream;
            let from = stream.peer_addr().ok();
            let mut h = [0u8; 15];
            let read = glommio::timer::timeout(Duration::from_secs(5), async {
                stream
                    .read_exact(&mut h)
                    .await
                    .map_err(glommio::GlommioError::IoError)
            })
            .await;
            if read.is_err() {
                warn!(
                    ?from,
                    "a connection to the quorum ports sent no handshake; closed"
                );
                return;
            }
            let magic = u32::from_be_bytes(h[0..4].try_into().expect("4 bytes"));
            let version = u16::from_be_bytes(h[4..6].try_into().expect("2 bytes"));
            let peer = u64::from_be_bytes(h[6..14].try_into().expect("8 bytes"));
            let channel = match h[14] {
                1 => Channel::Election,
                2 => Channel::Quorum,
                _ => {
                    warn!(?from, "unknown channel in a server handshake; closed");
                    return;
                }
            };
            if magic != HANDSHAKE_MAGIC || version != PROTOCOL_VERSION {
                warn!(
                    ?from,
                    magic, version, "not a corral server handshake; closed"
                );
                return;
            }
            if peer <= t.me || !t.peers.contains_key(&peer) {
                warn!(
                    ?from,
                    peer, "a server that should not open this connection; closed"
                );
                return;
            }
            t.run_link(peer, channel, stream).await;
        })
        .detach();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::zab::{PeerState, Vote};
    use glommio::LocalExecutorBuilder;

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// The next message or break, past election connection reports.
    async fn next(rx: &LocalReceiver<Inbound>) -> Inbound {
        loop {
            match rx.recv().await.unwrap() {
                Inbound::ElectionLink { .. } => continue,
                other => return other,
            }
        }
    }

    fn vote(n: u64) -> Message {
        Message::Notification {
            vote: Vote {
                leader: n,
                zxid: 0,
                peer_epoch: 0,
            },
            election_epoch: n,
            state: PeerState::Looking,
        }
    }

    /// Two servers on one executor: both channels connect, messages arrive
    /// in order, garbage on a port is refused, and a server that goes away
    /// is reported as a break.
    #[test]
    fn two_servers_talk_and_a_break_is_reported() {
        LocalExecutorBuilder::default()
            .io_memory(1 << 20)
            .spawn(|| async move {
                let mut peers = BTreeMap::new();
                for id in [1u64, 2] {
                    peers.insert(
                        id,
                        PeerAddrs {
                            quorum: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
                            election: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
                        },
                    );
                }
                let (a, a_rx) = Transport::start(1, peers.clone()).unwrap();
                let (b, b_rx) = Transport::start(2, peers.clone()).unwrap();
                // Garbage to a quorum port is closed and changes nothing.
                let mut junk = TcpStream::connect(peers[&1].quorum).await.unwrap();
                junk.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
                // Wait for both channels to be up.
                while a.links.borrow().len() < 2 || b.links.borrow().len() < 2 {
                    glommio::timer::sleep(Duration::from_millis(5)).await;
                }
                for i in 0..100 {
                    b.send(1, &Message::Ack { round: i });
                }
                a.send(2, &vote(7));
                for i in 0..100 {
                    match next(&a_rx).await {
                        Inbound::Message { from: 2, msg }
                            if matches!(*msg, Message::Ack { .. }) =>
                        {
                            let Message::Ack { round } = *msg else {
                                unreachable!()
                            };
                            assert_eq!(round, i)
                        }
                        other => panic!("{other:?}"),
                    }
                }
                match next(&b_rx).await {
                    Inbound::Message { from: 1, msg } => {
                        assert!(matches!(
                            *msg,
                            Message::Notification {
                                election_epoch: 7,
                                ..
                            }
                        ))
                    }
                    other => panic!("{other:?}"),
                }
                // Server 2 drops its quorum connection: server 1 hears of it.
                let l = b
                    .links
                    .borrow()
                    .get(&(1, Channel::Quorum))
                    .cloned()
                    .unwrap();
                l.close();
                loop {
                    match next(&a_rx).await {
                        Inbound::Disconnected { peer: 2 } => break,
                        Inbound::Message { .. } => {}
                        other => panic!("{other:?}"),
                    }
                }
                // And it reconnects.
                loop {
                    let up = a
                        .links
                        .borrow()
                        .get(&(2, Channel::Quorum))
                        .is_some_and(|l| !l.closing.get());
                    if up {
                        break;
                    }
                    glommio::timer::sleep(Duration::from_millis(5)).await;
                }
                b.send(1, &Message::UpToDate);
                loop {
                    if let Inbound::Message { msg, .. } = next(&a_rx).await {
                        if matches!(*msg, Message::UpToDate) {
                            break;
                        }
                    }
                }
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
