//! The Kafka ZooKeeper-mode metadata pattern: brokers register ephemeral
//! ids, a controller is elected with a multi (ephemeral /controller plus a
//! versioned bump of /controller_epoch), topics x partitions of JSON state,
//! then a controller failover: the new controller reads every partition's
//! state (Kafka allows 10 requests in flight) and rewrites each one
//! conditionally, fenced by `multi[check(/controller_epoch), setData]`.
//! The figure reported is the failover time.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use client::codec::{self, Request};
use engine::jute::{JuteWrite, Reader};
use engine::op::{MultiResult, ReadOp, Response, WriteOp};
use engine::types::opcode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How often each broker's session shows it is alive (loadgen's sessions
/// ask for a 30 s timeout; ZooKeeper's clients ping at a third of it).
const BROKER_KEEPALIVE: Duration = Duration::from_secs(5);

/// One session with pipelined request/response in order.
pub struct Session {
    rd: tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>,
    wr: tokio::net::tcp::OwnedWriteHalf,
    xid: i32,
}

pub struct Reply {
    pub err: i32,
    pub body: Bytes,
}

impl Session {
    pub async fn open(addr: &str) -> Result<Session> {
        let s = crate::connect(addr).await?;
        let (rd, wr) = s.into_split();
        Ok(Session {
            rd: tokio::io::BufReader::with_capacity(64 * 1024, rd),
            wr,
            xid: 1,
        })
    }

    /// Sends `bodies` (each: opcode + record, without xid) keeping at most
    /// `inflight` outstanding; replies come back in order.
    pub async fn pipeline(&mut self, bodies: Vec<Vec<u8>>, inflight: usize) -> Result<Vec<Reply>> {
        let mut out = Vec::with_capacity(bodies.len());
        let mut next = 0;
        let mut outstanding = 0usize;
        let mut buf = Vec::new();
        while out.len() < bodies.len() {
            let mut batch = Vec::new();
            while next < bodies.len() && outstanding < inflight.max(1) {
                let mut f = Vec::with_capacity(bodies[next].len() + 8);
                f.put_jute_i32(self.xid);
                f.extend_from_slice(&bodies[next]);
                self.xid += 1;
                batch.put_jute_i32(f.len() as i32);
                batch.extend_from_slice(&f);
                next += 1;
                outstanding += 1;
            }
            if !batch.is_empty() {
                self.wr.write_all(&batch).await?;
            }
            let mut len = [0u8; 4];
            self.rd.read_exact(&mut len).await?;
            let n = i32::from_be_bytes(len);
            if !(0..=64 << 20).contains(&n) {
                bail!("bad frame length {n}");
            }
            buf.resize(n as usize, 0);
            self.rd.read_exact(&mut buf).await?;
            let mut r = Reader::new(Bytes::copy_from_slice(&buf));
            let xid = r.i32()?;
            let _zxid = r.i64()?;
            let err = r.i32()?;
            if xid < 0 {
                continue; // a watch event or ping
            }
            let pos = r.position();
            out.push(Reply {
                err,
                body: Bytes::copy_from_slice(&buf[pos..]),
            });
            outstanding -= 1;
        }
        Ok(out)
    }

    pub async fn one(&mut self, body: Vec<u8>) -> Result<Reply> {
        Ok(self
            .pipeline(vec![body], 1)
            .await?
            .pop()
            .expect("one reply"))
    }

    pub async fn close(mut self) -> Result<()> {
        self.one(body(Request::Write(WriteOp::CloseSession)))
            .await
            .map(|_| ())
    }
}

/// A request's body (type and record) for `Session::pipeline`.
fn body(req: Request) -> Vec<u8> {
    let mut b = Vec::new();
    codec::encode_request_body(&mut b, &req);
    b
}

fn create_op(path: &str, data: &[u8], flags: i32) -> WriteOp {
    WriteOp::Create {
        opcode: opcode::CREATE,
        path: path.to_string(),
        data: Some(Bytes::copy_from_slice(data)),
        acl: vec![engine::Acl::world_all()],
        flags,
        ttl: -1,
    }
}

fn create(path: &str, data: &[u8], flags: i32) -> Vec<u8> {
    body(Request::Write(create_op(path, data, flags)))
}

fn get_data(path: &str) -> Vec<u8> {
    body(Request::Read(ReadOp::GetData {
        path: path.to_string(),
        watch: false,
    }))
}

/// multi[create ephemeral /controller, setData /controller_epoch @version]
fn elect(root: &str, broker: u32, epoch_version: i32) -> Vec<u8> {
    let controller = format!("{{\"version\":1,\"brokerid\":{broker}}}");
    body(Request::Write(WriteOp::Multi(vec![
        create_op(&format!("{root}/controller"), controller.as_bytes(), 1),
        WriteOp::SetData {
            path: format!("{root}/controller_epoch"),
            data: Some(Bytes::from(format!("{}", epoch_version + 1))),
            version: epoch_version,
        },
    ])))
}

/// multi[check(/controller_epoch, epoch_version), setData(path @version)]
fn fenced_set(root: &str, epoch_version: i32, path: &str, data: &[u8], version: i32) -> Vec<u8> {
    body(Request::Write(WriteOp::Multi(vec![
        WriteOp::Check {
            path: format!("{root}/controller_epoch"),
            version: epoch_version,
        },
        WriteOp::SetData {
            path: path.to_string(),
            data: Some(Bytes::copy_from_slice(data)),
            version,
        },
    ])))
}

/// The data and version of a getData reply body.
fn data_and_version(body: &Bytes) -> Result<(Bytes, i32)> {
    match codec::decode_response(opcode::GET_DATA, body.clone())? {
        Response::Data(data, stat) => Ok((data.unwrap_or_default(), stat.version)),
        other => bail!("unexpected getData reply {other:?}"),
    }
}

/// True if a multi reply body has no error result.
fn multi_ok(body: &Bytes) -> Result<bool> {
    match codec::decode_response(opcode::MULTI, body.clone())? {
        Response::Multi(results) => Ok(!results.iter().any(|r| matches!(r, MultiResult::Error(_)))),
        other => bail!("unexpected multi reply {other:?}"),
    }
}

pub struct Report {
    pub partitions: usize,
    pub setup_s: f64,
    pub election_ms: f64,
    pub read_s: f64,
    pub write_s: f64,
    pub failover_s: f64,
}

pub async fn run(
    addr: &str,
    root: &str,
    topics: usize,
    partitions: usize,
    brokers: u32,
    inflight: usize,
) -> Result<Report> {
    let t_setup = Instant::now();
    let mut admin = Session::open(addr).await?;
    let mut base = Vec::new();
    for p in ["", "/brokers", "/brokers/ids", "/brokers/topics"] {
        base.push(create(&format!("{root}{p}"), b"", 0));
    }
    base.push(create(&format!("{root}/controller_epoch"), b"0", 0));
    for r in admin.pipeline(base, 16).await? {
        if r.err != 0 && r.err != -110 {
            bail!("setup: error {}", r.err);
        }
    }
    let mut broker_sessions = Vec::new();
    for b in 0..brokers {
        let mut s = Session::open(addr).await?;
        let info = format!("{{\"host\":\"broker{b}\",\"port\":9092}}");
        s.one(create(
            &format!("{root}/brokers/ids/{b}"),
            info.as_bytes(),
            1,
        ))
        .await?;
        broker_sessions.push(s);
    }
    // Brokers stay registered as real ones do, by keeping their sessions
    // alive: a setup and failover of 100k partitions outlasts a session
    // timeout, and ZooKeeper then expires the silent brokers (and closes
    // their connections under them).
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let keepers: Vec<_> = broker_sessions
        .into_iter()
        .map(|mut s| {
            let mut stopped = stopped.clone();
            let probe = body(Request::Read(ReadOp::Exists {
                path: format!("{root}/brokers/ids"),
                watch: false,
            }));
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stopped.changed() => break,
                        _ = tokio::time::sleep(BROKER_KEEPALIVE) => {
                            s.one(probe.clone()).await?;
                        }
                    }
                }
                s.close().await
            })
        })
        .collect();
    let epoch_version =
        |r: &Reply| -> Result<i32> { Ok(Reader::new(r.body.clone()).stat()?.version) };
    let exists = body(Request::Read(ReadOp::Exists {
        path: format!("{root}/controller_epoch"),
        watch: false,
    }));
    let v0 = epoch_version(&admin.one(exists.clone()).await?)?;
    let mut first = Session::open(addr).await?;
    let r = first.one(elect(root, 0, v0)).await?;
    if !multi_ok(&r.body)? {
        bail!("the first controller election failed (is another run using {root}?)");
    }
    // Topics and partitions, pipelined.
    let mut reqs = Vec::new();
    for t in 0..topics {
        let tp = format!("{root}/brokers/topics/t{t}");
        reqs.push(create(&tp, b"{\"version\":2}", 0));
        reqs.push(create(&format!("{tp}/partitions"), b"", 0));
        for p in 0..partitions {
            reqs.push(create(&format!("{tp}/partitions/{p}"), b"", 0));
            let state = format!(
                "{{\"controller_epoch\":1,\"leader\":{},\"version\":1,\"leader_epoch\":0,\"isr\":[0,1,2]}}",
                p as u32 % brokers.max(1)
            );
            reqs.push(create(
                &format!("{tp}/partitions/{p}/state"),
                state.as_bytes(),
                0,
            ));
        }
    }
    for r in first.pipeline(reqs, 512).await? {
        if r.err != 0 && r.err != -110 {
            bail!("creating partitions: error {}", r.err);
        }
    }
    let setup_s = t_setup.elapsed().as_secs_f64();

    // Failover: the controller goes away; a new one takes over.
    first.close().await?;
    let t0 = Instant::now();
    let mut controller = Session::open(addr).await?;
    let v1 = epoch_version(&controller.one(exists.clone()).await?)?;
    let r = controller.one(elect(root, 1, v1)).await?;
    if !multi_ok(&r.body)? {
        bail!("the new controller could not be elected");
    }
    let election_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let fence = v1 + 1;
    let t_read = Instant::now();
    let mut paths = Vec::with_capacity(topics * partitions);
    for t in 0..topics {
        for p in 0..partitions {
            paths.push(format!("{root}/brokers/topics/t{t}/partitions/{p}/state"));
        }
    }
    let reads = controller
        .pipeline(paths.iter().map(|p| get_data(p)).collect(), inflight)
        .await?;
    let read_s = t_read.elapsed().as_secs_f64();
    let t_write = Instant::now();
    let mut writes = Vec::with_capacity(paths.len());
    for (i, (p, r)) in paths.iter().zip(&reads).enumerate() {
        if r.err != 0 {
            bail!("reading {p}: error {}", r.err);
        }
        let (_, version) = data_and_version(&r.body).context("partition state")?;
        let state = format!(
            "{{\"controller_epoch\":2,\"leader\":{},\"version\":1,\"leader_epoch\":1,\"isr\":[0,1,2]}}",
            (i as u32 + 1) % brokers.max(1)
        );
        writes.push(fenced_set(root, fence, p, state.as_bytes(), version));
    }
    for (p, r) in paths
        .iter()
        .zip(controller.pipeline(writes, inflight).await?)
    {
        if r.err != 0 || !multi_ok(&r.body)? {
            bail!("fenced write of {p} failed");
        }
    }
    let write_s = t_write.elapsed().as_secs_f64();
    let failover_s = t0.elapsed().as_secs_f64();
    controller.close().await?;
    let _ = stop.send(true);
    for k in keepers {
        k.await.context("a broker session task")??;
    }
    Ok(Report {
        partitions: topics * partitions,
        setup_s,
        election_ms,
        read_s,
        write_s,
        failover_s,
    })
}
