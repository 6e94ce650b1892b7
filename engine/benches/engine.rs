//! Micro-benchmarks of the pure core: the data tree, watch triggers, the
//! pipeline (prepare + apply of a write), the log record codec and the peer
//! message codec. `cargo bench -p engine`; results in docs/BENCHMARKS.md.

use std::sync::Arc;

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use engine::acl::AuthInfo;
use engine::op::{ReadOp, WriteOp};
use engine::pipeline::{Origin, Pipeline, PipelineConfig, Submission};
use engine::tree::DataTree;
use engine::txn::{Txn, TxnBody, TxnHeader};
use engine::types::{Acl, EventType};
use engine::watch::WatchManager;
use engine::zab::{codec, Message};

const NODES: usize = 100_000;

fn tree_with(nodes: usize) -> DataTree {
    let mut t = DataTree::new(false);
    let acl = t.intern_acl(&[Acl::world_all()]);
    t.create("/b", None, acl.clone(), 0, 0, 1, 0).unwrap();
    for i in 0..nodes {
        let data = Some(Bytes::from(vec![b'x'; 100]));
        t.create(
            &format!("/b/n{i:07}"),
            data,
            acl.clone(),
            0,
            0,
            2 + i as i64,
            0,
        )
        .unwrap();
    }
    t
}

fn tree(c: &mut Criterion) {
    let t = tree_with(NODES);
    let mut g = c.benchmark_group("tree");
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function("get (100k nodes)", |b| {
        b.iter(|| {
            i = (i + 7919) % NODES;
            black_box(t.get(&format!("/b/n{i:07}")).is_some())
        })
    });
    let mut w = t.clone();
    let mut z = NODES as i64 + 10;
    g.bench_function("set_data 100 B (100k nodes)", |b| {
        b.iter(|| {
            i = (i + 7919) % NODES;
            z += 1;
            w.set_data(
                &format!("/b/n{i:07}"),
                Some(Bytes::from_static(&[b'y'; 100])),
                1,
                z,
                0,
            )
            .unwrap();
        })
    });
    let acl = w.intern_acl(&[Acl::world_all()]);
    g.bench_function("create + delete (100k nodes)", |b| {
        b.iter(|| {
            z += 1;
            w.create("/b/tmp", None, acl.clone(), 0, 0, z, 0).unwrap();
            z += 1;
            w.delete("/b/tmp", z).unwrap();
        })
    });
    g.bench_function("clone a version (100k nodes)", |b| {
        b.iter(|| black_box(t.clone()))
    });
    g.finish();
}

fn watches(c: &mut Criterion) {
    let mut g = c.benchmark_group("watch");
    for watchers in [1usize, 100, 10_000] {
        g.throughput(Throughput::Elements(watchers as u64));
        g.bench_function(
            format!("set {watchers} data watches and trigger them"),
            |b| {
                b.iter_batched(
                    WatchManager::default,
                    |mut m| {
                        for s in 0..watchers {
                            m.add_data("/hot", s as i64 + 1);
                        }
                        let mut out = Vec::with_capacity(watchers);
                        m.trigger("/hot", EventType::NodeDataChanged, &mut out);
                        black_box(out.len())
                    },
                    BatchSize::SmallInput,
                )
            },
        );
    }
    g.finish();
}

fn pipeline(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(1));
    let mut p = Pipeline::new(PipelineConfig::default(), 0);
    p.restore(tree_with(1_000), &[], 0);
    p.finish_recovery(0);
    let origin = Origin {
        core: 0,
        conn: 1,
        xid: 1,
        reads_ahead: false,
    };
    p.submit(
        Submission::CreateSession {
            origin,
            timeout_ms: 30_000,
        },
        0,
    );
    let b0 = p.take_batch(usize::MAX, usize::MAX);
    let created = p.persisted(b0.entries);
    let session = created.entries[0].session;
    let auth = Arc::new(AuthInfo::default());
    let mut i = 0;
    g.bench_function("setData 100 B: prepare, batch of 1, commit", |b| {
        b.iter(|| {
            i = (i + 1) % 1_000;
            p.submit(
                Submission::Write {
                    origin,
                    session,
                    op: WriteOp::SetData {
                        path: format!("/b/n{i:07}"),
                        data: Some(Bytes::from_static(&[b'z'; 100])),
                        version: -1,
                    },
                    auth: auth.clone(),
                },
                1,
            );
            let batch = p.take_batch(usize::MAX, usize::MAX);
            black_box(p.persisted(batch.entries).entries.len())
        })
    });
    let tree = p.committed_tree().clone();
    let mut wm = WatchManager::default();
    let ctx = engine::apply::ReadContext {
        session,
        auth: &auth,
    };
    g.bench_function("getData 100 B", |b| {
        b.iter(|| {
            i = (i + 1) % 1_000;
            let op = ReadOp::GetData {
                path: format!("/b/n{i:07}"),
                watch: false,
            };
            black_box(engine::apply::read(&tree, &mut wm, &ctx, &op).reply.is_ok())
        })
    });
    g.finish();
}

fn codecs(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec");
    let txn = Txn {
        header: TxnHeader {
            session: 0x1234,
            cxid: 7,
            zxid: 0x1_0000_0042,
            time: 1_700_000_000_000,
        },
        body: TxnBody::SetData {
            path: "/brokers/topics/t1/partitions/7/state".into(),
            data: Some(Bytes::from(vec![b'{'; 1024])),
            version: 3,
        },
    };
    let bytes = Bytes::from(txn.to_bytes());
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("txn encode (1 KiB setData)", |b| {
        b.iter(|| black_box(txn.to_bytes()))
    });
    g.bench_function("txn decode (1 KiB setData)", |b| {
        b.iter(|| black_box(Txn::decode(bytes.clone()).unwrap()))
    });
    let records: Vec<(i64, Bytes)> = (0..64)
        .map(|i| (0x1_0000_0000 + i, bytes.clone()))
        .collect();
    let propose = Message::Propose { round: 9, records };
    let mut frame = Vec::new();
    codec::encode(&propose, &mut frame);
    let body = Bytes::from(frame.clone()).slice(4..);
    g.throughput(Throughput::Bytes(frame.len() as u64));
    g.bench_function("peer Propose of 64 x 1 KiB: encode", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(frame.len());
            codec::encode(&propose, &mut out);
            black_box(out.len())
        })
    });
    g.bench_function("peer Propose of 64 x 1 KiB: decode", |b| {
        b.iter(|| black_box(codec::decode(body.clone()).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, tree, watches, pipeline, codecs);
criterion_main!(benches);
