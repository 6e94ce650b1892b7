//! corral-loadgen: drives any ZooKeeper 3.5+ server (corral or Apache
//! ZooKeeper) with pipelined sessions speaking the wire protocol through
//! the project's own jute codec, and reports throughput and latency
//! percentiles from HDR histograms.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use client::codec;
use engine::jute::{JuteWrite, Reader};
use engine::types::opcode;
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod kafka;
mod ramp;
mod watch;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
enum Workload {
    /// getData of random keys.
    Read,
    /// setData of random keys.
    Write,
    /// getData or setData, --read-pct percent reads.
    Mixed,
    /// exists of random keys.
    Exists,
    /// getChildren of the key directory.
    Children,
    /// create then delete a sequential ephemeral node.
    CreateDelete,
    /// multi of --multi-ops setData of random keys.
    Multi,
    /// connect, create an ephemeral node, close the session.
    SessionChurn,
    /// Kafka ZooKeeper-mode metadata: brokers, controller election, topics x
    /// partitions, then a controller failover (reports the failover time).
    Kafka,
    /// --clients watcher sessions hold a data watch on one node that a
    /// writer session changes with setData; latency from the write's reply
    /// to each watcher's event, re-armed after every event; events/s.
    Watch,
    /// Open loop at a rising offered rate (--ramp-*) for the --base
    /// workload until p99 exceeds --sla-p99-ms or the achieved rate falls
    /// short of the offered one; reports the highest sustained rate.
    Ramp,
}

#[derive(Parser, Debug, Clone)]
#[command(
    name = "corral-loadgen",
    version,
    about = "Load generator for ZooKeeper-protocol servers."
)]
struct Args {
    /// Servers, host:port[,host:port...]; sessions are spread over them.
    #[arg(long, default_value = "127.0.0.1:2181")]
    connect: String,
    /// Sessions.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Outstanding pipelined requests per session.
    #[arg(long, default_value_t = 16)]
    inflight: usize,
    /// Measured duration in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Warm-up in seconds (not measured).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 1024)]
    value_size: usize,
    /// Number of keys.
    #[arg(long, default_value_t = 1000)]
    keys: usize,
    /// Percentage of reads for the mixed workload.
    #[arg(long, default_value_t = 90)]
    read_pct: u32,
    /// Root znode for the keys.
    #[arg(long, default_value = "/loadgen")]
    root: String,
    /// The --keys exist already (an earlier run made them): do not create
    /// them again. With a million keys, creating them takes longer than
    /// many runs.
    #[arg(long)]
    keys_exist: bool,
    /// Write the JSON summary here.
    #[arg(long)]
    json: Option<String>,
    /// Open loop: total requests per second over all sessions, each
    /// latency measured from when the request was due, not when it could be
    /// sent (corrected for coordinated omission). Without it: closed loop.
    #[arg(long)]
    rate: Option<f64>,
    /// multi: operations per multi.
    #[arg(long, default_value_t = 4)]
    multi_ops: usize,
    /// kafka: topics.
    #[arg(long, default_value_t = 1000)]
    topics: usize,
    /// kafka: partitions per topic.
    #[arg(long, default_value_t = 100)]
    partitions: usize,
    /// kafka: brokers.
    #[arg(long, default_value_t = 3)]
    brokers: u32,
    /// kafka: requests in flight during the failover (Kafka's controller allows 10).
    #[arg(long, default_value_t = 10)]
    kafka_inflight: usize,
    /// Worker threads of the client runtime.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Server process ids (comma-separated): their CPU time (utime+stime
    /// from /proc) is read at the exact start and end of the measured
    /// window and reported as server CPU per operation, with their RSS.
    #[arg(long, value_delimiter = ',')]
    server_pids: Vec<u32>,
    /// watch: the read that sets each watcher's watch.
    #[arg(long, value_enum, default_value_t = watch::WatchOp::Get)]
    watch_op: watch::WatchOp,
    /// ramp: the workload whose offered rate rises (read, write, mixed, exists, ...).
    #[arg(long, value_enum, default_value_t = Workload::Read)]
    base: Workload,
    /// ramp: the offered rate of the first step, requests/s over all sessions.
    #[arg(long, default_value_t = 5000.0)]
    ramp_start: f64,
    /// ramp: each step offers this many times the rate of the one before.
    #[arg(long, default_value_t = 1.5)]
    ramp_factor: f64,
    /// ramp: measured seconds per step (each step also warms up --warmup s).
    #[arg(long, default_value_t = 5.0)]
    ramp_step: f64,
    /// ramp: at most this many steps.
    #[arg(long, default_value_t = 20)]
    ramp_steps_max: usize,
    /// ramp: a step whose p99 exceeds this fails and ends the ramp.
    #[arg(long, default_value_t = 10.0)]
    sla_p99_ms: f64,
    /// ramp: a step that achieves less than this fraction of its offered
    /// rate fails and ends the ramp (the server or the client saturated).
    #[arg(long, default_value_t = 0.95)]
    ramp_shortfall: f64,
    #[arg(value_enum)]
    workload: Workload,
}

fn frame(body: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 4);
    out.put_jute_i32(body.len() as i32);
    out.extend_from_slice(&body);
    out
}

async fn read_frame(
    s: &mut tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>,
    buf: &mut Vec<u8>,
) -> Result<Bytes> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await?;
    let n = i32::from_be_bytes(len);
    if !(0..=64 << 20).contains(&n) {
        bail!("bad frame length {n}");
    }
    buf.resize(n as usize, 0);
    s.read_exact(buf).await?;
    Ok(Bytes::copy_from_slice(buf))
}

/// Opens a session and returns the stream.
pub(crate) async fn connect(addr: &str) -> Result<TcpStream> {
    let mut s = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect {addr}"))?;
    s.set_nodelay(true)?;
    let mut b = Vec::new();
    codec::encode_connect(&mut b, &codec::ConnectRequest::new_session(30_000));
    s.write_all(&b).await?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await?;
    let mut body = vec![0u8; i32::from_be_bytes(len).clamp(0, 1024) as usize];
    s.read_exact(&mut body).await?;
    let resp = codec::decode_connect_response(Bytes::from(body))?;
    if resp.timeout_ms <= 0 {
        bail!("session refused by {addr}");
    }
    Ok(s)
}

fn key(root: &str, i: usize) -> String {
    format!("{root}/k{i:08}")
}

fn request(xid: i32, workload: Workload, args: &Args, rng: &mut u64, value: &[u8]) -> Vec<u8> {
    // xorshift64*: cheap, seeded, good enough to spread keys.
    *rng ^= *rng >> 12;
    *rng ^= *rng << 25;
    *rng ^= *rng >> 27;
    let r = rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
    let k = key(&args.root, (r % args.keys as u64) as usize);
    let mut b = Vec::with_capacity(64 + value.len());
    b.put_jute_i32(xid);
    let w = match workload {
        Workload::Mixed if (r >> 32) % 100 < args.read_pct as u64 => Workload::Read,
        Workload::Mixed => Workload::Write,
        w => w,
    };
    match w {
        Workload::Read => {
            b.put_jute_i32(opcode::GET_DATA);
            b.put_jute_string(&k);
            b.put_jute_bool(false);
        }
        Workload::Exists => {
            b.put_jute_i32(opcode::EXISTS);
            b.put_jute_string(&k);
            b.put_jute_bool(false);
        }
        Workload::Write => {
            b.put_jute_i32(opcode::SET_DATA);
            b.put_jute_string(&k);
            b.put_jute_buffer(value);
            b.put_jute_i32(-1);
        }
        Workload::Children => {
            b.put_jute_i32(opcode::GET_CHILDREN);
            b.put_jute_string(&args.root);
            b.put_jute_bool(false);
        }
        Workload::Multi => {
            b.put_jute_i32(opcode::MULTI);
            for i in 0..args.multi_ops {
                let k = key(
                    &args.root,
                    ((r >> 8).wrapping_add(i as u64 * 7919) % args.keys as u64) as usize,
                );
                b.put_jute_i32(opcode::SET_DATA);
                b.put_jute_bool(false);
                b.put_jute_i32(-1);
                b.put_jute_string(&k);
                b.put_jute_buffer(value);
                b.put_jute_i32(-1);
            }
            b.put_jute_i32(-1);
            b.put_jute_bool(true);
            b.put_jute_i32(-1);
        }
        Workload::CreateDelete
        | Workload::Mixed
        | Workload::Kafka
        | Workload::SessionChurn
        | Workload::Watch
        | Workload::Ramp => {
            unreachable!("handled by the caller")
        }
    }
    frame(b)
}

fn create_request(xid: i32, path: &str, value: &[u8], flags: i32) -> Vec<u8> {
    let mut b = Vec::new();
    b.put_jute_i32(xid);
    b.put_jute_i32(opcode::CREATE);
    b.put_jute_string(path);
    b.put_jute_buffer(value);
    b.put_jute_acls(&[engine::Acl::world_all()]);
    b.put_jute_i32(flags);
    frame(b)
}

fn delete_request(xid: i32, path: &str) -> Vec<u8> {
    let mut b = Vec::new();
    b.put_jute_i32(xid);
    b.put_jute_i32(opcode::DELETE);
    b.put_jute_string(path);
    b.put_jute_i32(-1);
    frame(b)
}

/// Sends one request and waits for its reply: (err, body).
async fn call(s: &mut TcpStream, req: Vec<u8>) -> Result<(i32, Bytes)> {
    s.write_all(&req).await?;
    loop {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).await?;
        let mut body = vec![0u8; i32::from_be_bytes(len).max(0) as usize];
        s.read_exact(&mut body).await?;
        let mut r = Reader::new(Bytes::from(body));
        let xid = r.i32()?;
        let _zxid = r.i64()?;
        let err = r.i32()?;
        if xid == -1 {
            continue; // a watch event
        }
        return Ok((err, r.buffer().unwrap_or_default()));
    }
}

async fn setup(args: &Args, addr: &str) -> Result<()> {
    let mut s = connect(addr).await?;
    let value = vec![b'v'; args.value_size];
    let mut xid = 1;
    let mut parts = String::new();
    for comp in args.root.split('/').filter(|c| !c.is_empty()) {
        parts.push('/');
        parts.push_str(comp);
        let (err, _) = call(&mut s, create_request(xid, &parts, b"", 0)).await?;
        xid += 1;
        if err != 0 && err != -110 {
            bail!("create {parts}: error {err}");
        }
    }
    // Pipelined creation of the keys.
    let (rd, mut wr) = s.into_split();
    let mut rd = tokio::io::BufReader::with_capacity(64 * 1024, rd);
    let keys = args.keys;
    let root = args.root.clone();
    let writer = tokio::spawn(async move {
        let mut buf = Vec::new();
        for i in 0..keys {
            buf.extend_from_slice(&create_request(xid + i as i32, &key(&root, i), &value, 0));
            if buf.len() > 256 * 1024 {
                wr.write_all(&buf).await?;
                buf.clear();
            }
        }
        wr.write_all(&buf).await?;
        Ok::<_, anyhow::Error>(wr)
    });
    let mut buf = Vec::new();
    let mut done = 0;
    while done < keys {
        let f = read_frame(&mut rd, &mut buf).await?;
        let mut r = Reader::new(f);
        let xid = r.i32()?;
        let _ = r.i64()?;
        let err = r.i32()?;
        if xid == -1 {
            continue;
        }
        if err != 0 && err != -110 {
            bail!("creating keys: error {err}");
        }
        done += 1;
    }
    writer.await??;
    Ok(())
}

struct Totals {
    ops: AtomicU64,
    errors: AtomicU64,
}

/// What one session measured: latencies, operations, errors by code.
struct Tally {
    hist: Histogram<u64>,
    ops: u64,
    errors: std::collections::BTreeMap<i32, u64>,
}

impl Tally {
    fn new() -> Result<Tally> {
        Ok(Tally {
            hist: Histogram::new_with_bounds(1, 60_000_000, 3)?,
            ops: 0,
            errors: std::collections::BTreeMap::new(),
        })
    }

    /// One measured operation, also counted in the live totals.
    fn record(&mut self, totals: &Totals, latency: Duration, err: i32) -> Result<()> {
        let us = latency.as_micros().max(1) as u64;
        self.hist.record(us.min(60_000_000))?;
        self.ops += 1;
        totals.ops.fetch_add(1, Ordering::Relaxed);
        if err != 0 {
            *self.errors.entry(err).or_insert(0) += 1;
            totals.errors.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn add(&mut self, other: Tally) -> Result<()> {
        self.hist.add(&other.hist)?;
        self.ops += other.ops;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_insert(0) += v;
        }
        Ok(())
    }
}

async fn session(
    args: Arc<Args>,
    addr: String,
    id: usize,
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    totals: Arc<Totals>,
) -> Result<Tally> {
    let s = connect(&addr).await?;
    let (rd, mut wr) = s.into_split();
    // Buffered: one read syscall serves many pipelined replies.
    let mut rd = tokio::io::BufReader::with_capacity(64 * 1024, rd);
    let value = vec![b'x'; args.value_size];
    let mut tally = Tally::new()?;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ (id as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9) | 1;
    let mut xid: i32 = 1;
    let mut sent_at: std::collections::VecDeque<(i32, Instant, bool)> = Default::default();
    let mut buf = Vec::new();
    let own = format!("{}/s{id}-", args.root);
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        // Fill the pipeline.
        let mut out = Vec::new();
        while !stopping && sent_at.len() < args.inflight {
            let req = next_request(&args, xid, &own, &mut rng, &value);
            out.extend_from_slice(&req);
            sent_at.push_back((xid, Instant::now(), measuring.load(Ordering::Relaxed)));
            xid = xid.wrapping_add(1).max(1);
        }
        if !out.is_empty() {
            wr.write_all(&out).await?;
        }
        if sent_at.is_empty() {
            break;
        }
        // One reply, then every whole reply already buffered: the next
        // refill then goes out in one write.
        let mut first = true;
        loop {
            if !first {
                let avail = rd.buffer();
                if avail.len() < 4 {
                    break;
                }
                let n =
                    i32::from_be_bytes([avail[0], avail[1], avail[2], avail[3]]).max(0) as usize;
                if avail.len() < 4 + n {
                    break;
                }
            }
            first = false;
            let f = read_frame(&mut rd, &mut buf).await?;
            let mut r = Reader::new(f);
            let rxid = r.i32()?;
            let _ = r.i64()?;
            let err = r.i32()?;
            if rxid < 0 {
                continue;
            }
            let (sxid, t0, measured) = sent_at.pop_front().context("reply without request")?;
            if sxid != rxid {
                bail!("reply xid {rxid} out of order, expected {sxid}");
            }
            if measured {
                tally.record(&totals, t0.elapsed(), err)?;
            }
        }
    }
    Ok(tally)
}

/// One request of a workload (create-delete: odd xids create, even xids
/// delete what the one before created).
fn next_request(args: &Args, xid: i32, own: &str, rng: &mut u64, value: &[u8]) -> Vec<u8> {
    match args.workload {
        Workload::CreateDelete => {
            if xid % 2 == 1 {
                create_request(xid, &format!("{own}{}", xid / 2), value, 1)
            } else {
                delete_request(xid, &format!("{own}{}", (xid - 1) / 2))
            }
        }
        w => request(xid, w, args, rng, value),
    }
}

/// Open loop: a writer sends on a fixed schedule (waiting for a free slot
/// when `inflight` are outstanding, without moving the schedule), a reader
/// records each latency from the time the request was due.
async fn session_open_loop(
    args: Arc<Args>,
    addr: String,
    id: usize,
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    totals: Arc<Totals>,
    rate_per_session: f64,
) -> Result<Tally> {
    use std::collections::VecDeque;
    use std::sync::Mutex;
    let s = connect(&addr).await?;
    let (rd, mut wr) = s.into_split();
    let mut rd = tokio::io::BufReader::with_capacity(64 * 1024, rd);
    let pending: Arc<Mutex<VecDeque<(i32, Instant, bool)>>> = Default::default();
    let slots = Arc::new(tokio::sync::Semaphore::new(args.inflight.max(1)));
    let writer_done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (pending, slots, writer_done, totals) = (
            pending.clone(),
            slots.clone(),
            writer_done.clone(),
            totals.clone(),
        );
        tokio::spawn(async move {
            let mut tally = Tally::new()?;
            let mut buf = Vec::new();
            loop {
                let f = read_frame(&mut rd, &mut buf).await?;
                let mut r = Reader::new(f);
                let rxid = r.i32()?;
                let _ = r.i64()?;
                let err = r.i32()?;
                if rxid == -2 {
                    // The ping the writer sends last: everything is answered.
                    if writer_done.load(Ordering::Acquire) {
                        break;
                    }
                    continue;
                }
                if rxid < 0 {
                    continue;
                }
                let (sxid, due, measured) = pending
                    .lock()
                    .unwrap()
                    .pop_front()
                    .context("reply without request")?;
                if sxid != rxid {
                    bail!("reply xid {rxid} out of order, expected {sxid}");
                }
                slots.add_permits(1);
                if measured {
                    tally.record(&totals, due.elapsed(), err)?;
                }
            }
            Ok::<_, anyhow::Error>(tally)
        })
    };
    let value = vec![b'x'; args.value_size];
    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ (id as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9) | 1;
    let own = format!("{}/s{id}-", args.root);
    let interval = Duration::from_secs_f64(1.0 / rate_per_session.max(1e-3));
    let mut due = tokio::time::Instant::now();
    let mut xid: i32 = 1;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep_until(due).await;
        slots.acquire().await?.forget();
        let req = next_request(&args, xid, &own, &mut rng, &value);
        pending
            .lock()
            .unwrap()
            .push_back((xid, due.into_std(), measuring.load(Ordering::Relaxed)));
        wr.write_all(&req).await?;
        xid = xid.wrapping_add(1).max(1);
        due += interval;
    }
    writer_done.store(true, Ordering::Release);
    // A final ping: replies come in order, so its reply (xid -2) tells the
    // reader that everything sent has been answered.
    let mut ping = Vec::new();
    ping.put_jute_i32(-2);
    ping.put_jute_i32(opcode::PING);
    wr.write_all(&frame(ping)).await?;
    reader.await?
}

/// session-churn: connect, create an ephemeral node, close; one op each.
async fn session_churn(
    args: Arc<Args>,
    addr: String,
    id: usize,
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    totals: Arc<Totals>,
) -> Result<Tally> {
    let mut tally = Tally::new()?;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        let measured = measuring.load(Ordering::Relaxed);
        let mut s = kafka::Session::open(&addr).await?;
        let mut b = Vec::new();
        b.put_jute_i32(opcode::CREATE);
        b.put_jute_string(&format!("{}/churn-{id}-{n}", args.root));
        b.put_jute_buffer(b"");
        b.put_jute_acls(&[engine::Acl::world_all()]);
        b.put_jute_i32(1);
        let err = s.one(b).await?.err;
        s.close().await?;
        n += 1;
        if measured {
            tally.record(&totals, t0.elapsed(), err)?;
        }
    }
    Ok(tally)
}

fn cpu_seconds() -> f64 {
    proc_cpu_seconds("self")
}

/// utime + stime of a process, from /proc (Linux), in seconds; 0 if it is
/// gone. Assumes the usual 100 clock ticks per second.
fn proc_cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// The CPU seconds of all `pids`, summed.
fn servers_cpu_seconds(pids: &[u32]) -> f64 {
    pids.iter().map(|p| proc_cpu_seconds(&p.to_string())).sum()
}

/// The resident set of all `pids`, summed, in KiB (VmRSS), and their peaks
/// (VmHWM).
fn servers_rss_kib(pids: &[u32]) -> (u64, u64) {
    let field = |status: &str, name: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    pids.iter()
        .map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default())
        .map(|s| (field(&s, "VmRSS:"), field(&s, "VmHWM:")))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
}

fn main() -> Result<()> {
    let args = Arc::new(Args::parse());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

async fn run_kafka(args: &Args, addr: &str) -> Result<()> {
    let root = if args.root == "/loadgen" {
        "/kafka"
    } else {
        args.root.as_str()
    };
    let r = kafka::run(
        addr,
        root,
        args.topics,
        args.partitions,
        args.brokers,
        args.kafka_inflight,
    )
    .await?;
    println!("workload     kafka");
    println!("servers      {}", args.connect);
    println!(
        "partitions   {} ({} topics x {}), {} brokers, {} in flight",
        r.partitions, args.topics, args.partitions, args.brokers, args.kafka_inflight
    );
    println!("setup        {:.2} s", r.setup_s);
    println!(
        "failover     {:.3} s (election {:.1} ms, read all states {:.3} s, fenced writes {:.3} s)",
        r.failover_s, r.election_ms, r.read_s, r.write_s
    );
    let json = serde_json::json!({
        "workload": "kafka", "servers": args.connect, "partitions": r.partitions,
        "topics": args.topics, "brokers": args.brokers, "inflight": args.kafka_inflight,
        "setup_s": r.setup_s, "election_ms": r.election_ms, "read_s": r.read_s,
        "write_s": r.write_s, "failover_s": r.failover_s,
    });
    if let Some(p) = &args.json {
        std::fs::write(p, serde_json::to_string_pretty(&json)?)?;
    }
    Ok(())
}

/// Spawns one task per session for `args.workload` (open loop when
/// `args.rate` is set).
fn spawn_sessions(
    args: &Arc<Args>,
    addrs: &[String],
    measuring: &Arc<AtomicBool>,
    stop: &Arc<AtomicBool>,
    totals: &Arc<Totals>,
) -> Vec<tokio::task::JoinHandle<Result<Tally>>> {
    let mut tasks = Vec::new();
    for i in 0..args.clients {
        let addr = addrs[i % addrs.len()].clone();
        let (a, m, st, t) = (
            args.clone(),
            measuring.clone(),
            stop.clone(),
            totals.clone(),
        );
        tasks.push(match (args.workload, args.rate) {
            (Workload::SessionChurn, _) => tokio::spawn(session_churn(a, addr, i, m, st, t)),
            (_, Some(rate)) => tokio::spawn(session_open_loop(
                a,
                addr,
                i,
                m,
                st,
                t,
                rate / args.clients as f64,
            )),
            (_, None) => tokio::spawn(session(a, addr, i, m, st, t)),
        });
    }
    tasks
}

/// The timing every workload shares: `args.warmup` unmeasured, then
/// `args.duration` measured (with a live line on a terminal), then `stop`.
/// Returns the measured seconds and the CPU seconds spent meanwhile.
async fn measure_window(
    args: &Args,
    measuring: &AtomicBool,
    stop: &AtomicBool,
    totals: &Totals,
) -> Window {
    tokio::time::sleep(Duration::from_secs_f64(args.warmup)).await;
    measuring.store(true, Ordering::Relaxed);
    let cpu0 = cpu_seconds();
    let server_cpu0 = servers_cpu_seconds(&args.server_pids);
    let t0 = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let mut last = 0;
    while t0.elapsed().as_secs_f64() < args.duration {
        tokio::time::sleep(Duration::from_secs(1).min(Duration::from_secs_f64(args.duration)))
            .await;
        if tty {
            let ops = totals.ops.load(Ordering::Relaxed);
            eprint!(
                "\r{:>6.1}s  {:>10.0} ops/s  errors {}   ",
                t0.elapsed().as_secs_f64(),
                (ops - last) as f64,
                totals.errors.load(Ordering::Relaxed)
            );
            last = ops;
        }
    }
    measuring.store(false, Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let server_cpu = servers_cpu_seconds(&args.server_pids) - server_cpu0;
    let (server_rss_kib, server_rss_peak_kib) = servers_rss_kib(&args.server_pids);
    stop.store(true, Ordering::Relaxed);
    if tty {
        eprintln!();
    }
    Window {
        elapsed,
        cpu,
        server_cpu,
        server_rss_kib,
        server_rss_peak_kib,
    }
}

/// What `measure_window` measured besides the operations.
struct Window {
    elapsed: f64,
    /// This process's CPU seconds.
    cpu: f64,
    /// The `--server-pids` CPU seconds (0 without them).
    server_cpu: f64,
    server_rss_kib: u64,
    server_rss_peak_kib: u64,
}

impl Window {
    /// The server-side figures, merged into the JSON summary.
    fn server_json(&self, args: &Args, ops: u64) -> serde_json::Value {
        if args.server_pids.is_empty() {
            return serde_json::json!({});
        }
        serde_json::json!({
            "server_pids": args.server_pids,
            "server_cpu_s": self.server_cpu,
            "server_cpu_us_per_op": if ops > 0 { self.server_cpu * 1e6 / ops as f64 } else { 0.0 },
            "server_rss_kib": self.server_rss_kib,
            "server_rss_peak_kib": self.server_rss_peak_kib,
        })
    }
}

fn new_flags() -> (Arc<AtomicBool>, Arc<AtomicBool>, Arc<Totals>) {
    (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
        Arc::new(Totals {
            ops: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }),
    )
}

/// Latency percentiles in ms, the JSON object every workload reports.
fn latency_json(hist: &Histogram<u64>) -> serde_json::Value {
    let q = |p: f64| hist.value_at_quantile(p) as f64 / 1000.0;
    serde_json::json!({
        "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "p999": q(0.999),
        "max": hist.max() as f64 / 1000.0,
    })
}

fn latency_line(hist: &Histogram<u64>) -> String {
    let q = |p: f64| hist.value_at_quantile(p) as f64 / 1000.0;
    format!(
        "p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        hist.max() as f64 / 1000.0
    )
}

fn errors_json(errors: &std::collections::BTreeMap<i32, u64>) -> serde_json::Value {
    serde_json::json!(errors
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect::<std::collections::BTreeMap<_, _>>())
}

/// Prints the summary and writes the JSON (`extra` is merged into it).
fn report(
    args: &Args,
    all: Tally,
    window: &Window,
    extra_lines: &[String],
    extra: serde_json::Value,
) -> Result<()> {
    let Tally { hist, ops, errors } = all;
    let (elapsed, cpu) = (window.elapsed, window.cpu);
    let rate = ops as f64 / elapsed;
    let unit = if args.workload == Workload::Watch {
        "events"
    } else {
        "ops"
    };
    println!("workload     {:?}", args.workload);
    println!("servers      {}", args.connect);
    if args.workload == Workload::Watch {
        println!(
            "sessions     {} watchers ({:?} watch) + 1 writer, value {} B",
            args.clients, args.watch_op, args.value_size
        );
    } else {
        println!(
            "sessions     {} x {} in flight, value {} B, keys {}",
            args.clients, args.inflight, args.value_size, args.keys
        );
    }
    println!("throughput   {rate:.0} {unit}/s ({ops} {unit} in {elapsed:.1} s)");
    println!("latency ms   {}", latency_line(&hist));
    for l in extra_lines {
        println!("{l}");
    }
    println!(
        "loadgen cpu  {:.2} s ({:.2} us/op)",
        cpu,
        if ops > 0 { cpu * 1e6 / ops as f64 } else { 0.0 }
    );
    if !args.server_pids.is_empty() {
        println!(
            "server cpu   {:.2} s ({:.2} us/op), rss {} MiB",
            window.server_cpu,
            if ops > 0 {
                window.server_cpu * 1e6 / ops as f64
            } else {
                0.0
            },
            window.server_rss_kib / 1024
        );
    }
    if !errors.is_empty() {
        println!("errors       {errors:?}");
    }
    let server = window.server_json(args, ops);
    let mut json = serde_json::json!({
        "workload": format!("{:?}", args.workload).to_lowercase(),
        "servers": args.connect,
        "clients": args.clients,
        "inflight": args.inflight,
        "value_size": args.value_size,
        "keys": args.keys,
        "duration_s": elapsed,
        "ops": ops,
        "ops_per_s": rate,
        "latency_ms": latency_json(&hist),
        "errors": errors_json(&errors),
        "loadgen_cpu_s": cpu,
    });
    for more in [server, extra] {
        if let (Some(o), serde_json::Value::Object(e)) = (json.as_object_mut(), more) {
            o.extend(e);
        }
    }
    if let Some(p) = &args.json {
        std::fs::write(p, serde_json::to_string_pretty(&json)?)?;
    }
    Ok(())
}

/// Creates the root path and, except for workloads that make their own
/// nodes, the keys.
async fn prepare(args: &Arc<Args>, addr: &str) -> Result<()> {
    match args.workload {
        Workload::CreateDelete | Workload::Watch => {
            let mut a = (**args).clone();
            a.keys = 0;
            setup(&a, addr).await?;
            if args.workload == Workload::Watch {
                let mut s = connect(addr).await?;
                let (err, _) = call(&mut s, create_request(1, &watch::node(args), b"", 0)).await?;
                if err != 0 && err != -110 {
                    bail!("create {}: error {err}", watch::node(args));
                }
            }
            Ok(())
        }
        Workload::Ramp => {
            let mut a = (**args).clone();
            a.workload = args.base;
            Box::pin(prepare(&Arc::new(a), addr)).await
        }
        _ if args.keys_exist => Ok(()),
        _ => setup(args, addr).await,
    }
}

async fn run(args: Arc<Args>) -> Result<()> {
    let addrs: Vec<String> = args
        .connect
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    if args.workload == Workload::Kafka {
        return run_kafka(&args, &addrs[0]).await;
    }
    prepare(&args, &addrs[0]).await?;
    match args.workload {
        Workload::Watch => run_watch(args, addrs).await,
        Workload::Ramp => ramp::run(args, addrs).await,
        _ => {
            let (measuring, stop, totals) = new_flags();
            let tasks = spawn_sessions(&args, &addrs, &measuring, &stop, &totals);
            let window = measure_window(&args, &measuring, &stop, &totals).await;
            let mut all = Tally::new()?;
            for t in tasks {
                all.add(t.await??)?;
            }
            report(&args, all, &window, &[], serde_json::json!({}))
        }
    }
}

async fn run_watch(args: Arc<Args>, addrs: Vec<String>) -> Result<()> {
    let (measuring, stop, totals) = new_flags();
    let task = tokio::spawn(watch::run(
        args.clone(),
        addrs,
        measuring.clone(),
        stop.clone(),
        totals.clone(),
    ));
    let window = measure_window(&args, &measuring, &stop, &totals).await;
    let elapsed = window.elapsed;
    let m = task.await??;
    let lines = vec![
        format!(
            "writes       {} ({:.0}/s), each fired {} events; {} events arrived before the write's reply",
            m.writes,
            m.writes as f64 / elapsed,
            args.clients,
            m.events_before_reply
        ),
        format!("from send ms {}", latency_line(&m.from_send)),
    ];
    let extra = serde_json::json!({
        "watchers": args.clients,
        "watch_op": format!("{:?}", args.watch_op).to_lowercase(),
        "events": m.tally.ops,
        "events_per_s": m.tally.ops as f64 / elapsed,
        "writes": m.writes,
        "writes_per_s": m.writes as f64 / elapsed,
        "events_before_reply": m.events_before_reply,
        "latency_from_send_ms": latency_json(&m.from_send),
    });
    report(&args, m.tally, &window, &lines, extra)
}
