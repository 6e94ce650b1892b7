//! The `watch` workload: how fast a change reaches the sessions watching it.
//!
//! N watcher sessions each hold a one-shot data watch (getData or exists,
//! `--watch-op`) on one node; one writer session changes the node with
//! setData. The writer waits until every watcher has received its event and
//! re-armed its watch before it writes again, so every write fires exactly N
//! NodeDataChanged events and none is lost to a watch that was not yet
//! re-armed (ZooKeeper's watches are one-shot). That makes the workload
//! closed-loop: events/s = N x rounds/s, and a round costs one durable write
//! plus the slowest watcher's event and re-arm.
//!
//! Latency is measured from the write's reply to each watcher's event, the
//! figure a client sees ("my write returned; when do the others know?").
//! ZooKeeper, like corral, sends the events of a write before (or while) the
//! writer gets its reply, so an event can arrive first: such an event counts
//! as 1 µs and is counted in `events_before_reply`. The latency from the
//! moment the write was sent is kept too, and never has that problem.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use engine::jute::{JuteWrite, Reader};
use engine::types::opcode;
use hdrhistogram::Histogram;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::{connect, frame, read_frame, Args, Tally, Totals};

/// How long the writer waits for every watcher to report, before it calls
/// the run failed: a lost event would otherwise hang the run.
const ROUND_TIMEOUT: Duration = Duration::from_secs(10);

/// The read that sets the watch.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
pub enum WatchOp {
    /// getData(path, watch=true).
    Get,
    /// exists(path, watch=true): on an existing node, the same data watch.
    Exists,
}

/// What a watcher tells the writer.
enum Note {
    /// The watch is (re-)armed: the server answered the read that sets it.
    Armed,
    /// An event arrived at this instant.
    Event(Instant),
}

/// What the writer measured.
pub struct Measured {
    /// Events, latency from the write's reply.
    pub tally: Tally,
    /// Latency of the same events from when the write was sent.
    pub from_send: Histogram<u64>,
    pub writes: u64,
    pub events_before_reply: u64,
}

pub fn node(args: &Args) -> String {
    format!("{}/watch", args.root)
}

fn watch_request(xid: i32, op: WatchOp, path: &str) -> Vec<u8> {
    let mut b = Vec::new();
    b.put_jute_i32(xid);
    b.put_jute_i32(match op {
        WatchOp::Get => opcode::GET_DATA,
        WatchOp::Exists => opcode::EXISTS,
    });
    b.put_jute_string(path);
    b.put_jute_bool(true);
    frame(b)
}

fn set_data_request(xid: i32, path: &str, value: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.put_jute_i32(xid);
    b.put_jute_i32(opcode::SET_DATA);
    b.put_jute_string(path);
    b.put_jute_buffer(value);
    b.put_jute_i32(-1);
    frame(b)
}

/// One watcher: arm, then for every event note its time and re-arm.
async fn watcher(addr: String, path: String, op: WatchOp, notes: mpsc::Sender<Note>) -> Result<()> {
    let s = connect(&addr).await?;
    let (rd, mut wr) = s.into_split();
    let mut rd = tokio::io::BufReader::with_capacity(64 * 1024, rd);
    let mut buf = Vec::new();
    let mut xid: i32 = 1;
    wr.write_all(&watch_request(xid, op, &path)).await?;
    loop {
        let f = read_frame(&mut rd, &mut buf).await?;
        let at = Instant::now();
        let mut r = Reader::new(f);
        let rxid = r.i32()?;
        let _zxid = r.i64()?;
        let err = r.i32()?;
        match rxid {
            -1 => {
                let kind = r.i32()?;
                // 3 = NodeDataChanged; anything else (a deleted node, a
                // session event) means the run is not measuring what it says.
                if kind != 3 {
                    bail!("watcher on {addr}: unexpected event type {kind}");
                }
                if notes.send(Note::Event(at)).await.is_err() {
                    return Ok(()); // The writer is done.
                }
                xid = xid.wrapping_add(1).max(1);
                wr.write_all(&watch_request(xid, op, &path)).await?;
            }
            -2 => {} // A ping's reply.
            _ => {
                if rxid != xid {
                    bail!("watcher on {addr}: reply xid {rxid}, expected {xid}");
                }
                if err != 0 {
                    bail!("watcher on {addr}: setting the watch failed with error {err}");
                }
                if notes.send(Note::Armed).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}

/// Receives notes until `armed` watchers have armed and `events` events
/// arrived, calling `on_event` for each event.
async fn collect(
    rx: &mut mpsc::Receiver<Note>,
    mut armed: usize,
    mut events: usize,
    mut on_event: impl FnMut(Instant) -> Result<()>,
) -> Result<()> {
    while armed > 0 || events > 0 {
        let note = tokio::time::timeout(ROUND_TIMEOUT, rx.recv())
            .await
            .with_context(|| {
                format!("no watch event or re-arm for {ROUND_TIMEOUT:?} ({armed} arms, {events} events missing)")
            })?
            .context("a watcher session ended")?;
        match note {
            Note::Armed => armed = armed.checked_sub(1).context("more arms than watchers")?,
            Note::Event(at) => {
                events = events.checked_sub(1).context("more events than watchers")?;
                on_event(at)?;
            }
        }
    }
    Ok(())
}

/// Runs watchers and the writer until `stop`; measures while `measuring`.
pub async fn run(
    args: Arc<Args>,
    addrs: Vec<String>,
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    totals: Arc<Totals>,
) -> Result<Measured> {
    let path = node(&args);
    let watchers = args.clients.max(1);
    // Room for every watcher's event and arm of one round, so no watcher
    // ever waits on the writer.
    let (tx, mut rx) = mpsc::channel(2 * watchers + 1);
    let mut tasks = Vec::new();
    for i in 0..watchers {
        let addr = addrs[i % addrs.len()].clone();
        tasks.push(tokio::spawn(watcher(
            addr,
            path.clone(),
            args.watch_op,
            tx.clone(),
        )));
    }
    drop(tx);
    let result = async {
        let mut s = connect(&addrs[0]).await?;
        collect(&mut rx, watchers, 0, |_| Ok(())).await?;
        let value = vec![b'w'; args.value_size];
        let mut m = Measured {
            tally: Tally::new()?,
            from_send: Histogram::new_with_bounds(1, 60_000_000, 3)?,
            writes: 0,
            events_before_reply: 0,
        };
        let mut xid: i32 = 1;
        while !stop.load(Ordering::Relaxed) {
            let measured = measuring.load(Ordering::Relaxed);
            let sent = Instant::now();
            let (err, _) = crate::call(&mut s, set_data_request(xid, &path, &value)).await?;
            let replied = Instant::now();
            xid = xid.wrapping_add(1).max(1);
            if err != 0 {
                bail!("setData {path}: error {err}");
            }
            if measured {
                m.writes += 1;
            }
            collect(&mut rx, watchers, watchers, |at| {
                if !measured {
                    return Ok(());
                }
                if at < replied {
                    m.events_before_reply += 1;
                }
                m.tally
                    .record(&totals, at.saturating_duration_since(replied), 0)?;
                let us = at.saturating_duration_since(sent).as_micros().max(1) as u64;
                m.from_send.record(us.min(60_000_000))?;
                Ok(())
            })
            .await?;
        }
        Ok(m)
    }
    .await;
    for t in &tasks {
        t.abort();
    }
    // A watcher that failed says why better than the writer's timeout.
    if result.is_err() {
        for t in tasks {
            if let Ok(Err(e)) = t.await {
                return Err(e.context("watcher failed"));
            }
        }
    }
    result
}
