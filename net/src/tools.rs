//! Offline tools over a data directory: `corral log dump` (ZooKeeper's
//! LogFormatter) and `corral snapshot inspect` (its SnapshotFormatter).

use std::io::Write;
use std::path::Path;

use bytes::Bytes;
use engine::txn::{Txn, TxnBody};
use serde_json::json;

fn body_json(b: &TxnBody) -> serde_json::Value {
    match b {
        TxnBody::CreateSession { timeout_ms } => {
            json!({"type": "createSession", "timeout_ms": timeout_ms})
        }
        TxnBody::CloseSession => json!({"type": "closeSession"}),
        TxnBody::Create {
            opcode,
            path,
            data,
            acl,
            ephemeral_owner,
            parent_cversion,
        } => json!({
            "type": "create", "opcode": opcode, "path": path,
            "data_length": data.as_ref().map(|d| d.len()),
            "acl": acl.iter().map(|a| format!("{}:{}:{}", a.id.scheme, a.id.id, a.perms)).collect::<Vec<_>>(),
            "ephemeral_owner": format!("0x{ephemeral_owner:x}"), "parent_cversion": parent_cversion,
        }),
        TxnBody::Delete { path } => json!({"type": "delete", "path": path}),
        TxnBody::SetData {
            path,
            data,
            version,
        } => {
            json!({"type": "setData", "path": path, "data_length": data.as_ref().map(|d| d.len()), "version": version})
        }
        TxnBody::SetAcl { path, acl, version } => json!({
            "type": "setACL", "path": path, "version": version,
            "acl": acl.iter().map(|a| format!("{}:{}:{}", a.id.scheme, a.id.id, a.perms)).collect::<Vec<_>>(),
        }),
        TxnBody::Check { path, version } => {
            json!({"type": "check", "path": path, "version": version})
        }
        TxnBody::Multi(ops) => {
            json!({"type": "multi", "ops": ops.iter().map(body_json).collect::<Vec<_>>()})
        }
        TxnBody::Error(code) => json!({"type": "error", "code": code.code(), "name": code.name()}),
    }
}

/// Prints every record of the log in `dir` (a data dir or its `log` dir).
pub fn log_dump(dir: &Path, as_json: bool) -> anyhow::Result<()> {
    match log_dump_inner(dir, as_json) {
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(())
        }
        r => r,
    }
}

fn log_dump_inner(dir: &Path, as_json: bool) -> anyhow::Result<()> {
    let dir = if dir.join("log").is_dir() {
        dir.join("log")
    } else {
        dir.to_path_buf()
    };
    let recovered = storage::recovery::read_only(&dir)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for (zxid, payload) in recovered.records {
        let txn = Txn::decode(Bytes::from(payload))
            .map_err(|e| anyhow::anyhow!("record 0x{zxid:x}: {e}"))?;
        let body = body_json(&txn.body);
        if as_json {
            let line = json!({
                "zxid": format!("0x{:x}", txn.header.zxid),
                "session": format!("0x{:x}", txn.header.session),
                "cxid": txn.header.cxid,
                "time_ms": txn.header.time,
                "txn": body,
            });
            writeln!(out, "{line}")?;
        } else {
            writeln!(
                out,
                "zxid 0x{:x} time {} session 0x{:x} cxid 0x{:x} {}",
                txn.header.zxid, txn.header.time, txn.header.session, txn.header.cxid, body
            )?;
        }
    }
    if recovered.torn_tail {
        writeln!(
            out,
            "(torn tail: {} bytes after the last valid record)",
            recovered.truncated_bytes
        )?;
    }
    Ok(())
}

/// Prints a snapshot's summary and its nodes.
pub fn snapshot_inspect(file: &Path, as_json: bool) -> anyhow::Result<()> {
    let text = storage::snapshot::load(file, |a| {
        let mut nodes: Vec<serde_json::Value> = a
            .nodes
            .iter()
            .map(|n| {
                json!({
                    "path": n.path.as_str(),
                    "data_length": n.data.as_ref().map(|d| d.len()),
                    "acl": n.acl.to_native(),
                    "czxid": format!("0x{:x}", n.czxid.to_native()),
                    "mzxid": format!("0x{:x}", n.mzxid.to_native()),
                    "version": n.version.to_native(),
                    "ephemeral_owner": format!("0x{:x}", n.ephemeral_owner.to_native()),
                })
            })
            .collect();
        nodes.sort_by(|x, y| x["path"].as_str().cmp(&y["path"].as_str()));
        let summary = json!({
            "zxid": format!("0x{:x}", a.zxid.to_native()),
            "znodes": a.nodes.len(),
            "acl_lists": a.acls.len(),
            "sessions": a.sessions.iter().map(|s| json!({"id": format!("0x{:x}", s.id.to_native()), "timeout_ms": s.timeout_ms.to_native()})).collect::<Vec<_>>(),
        });
        if as_json {
            json!({"summary": summary, "nodes": nodes}).to_string()
        } else {
            let mut t = format!(
                "snapshot at zxid {}: {} znodes, {} ACL lists, {} sessions\n",
                summary["zxid"].as_str().unwrap_or(""),
                a.nodes.len(),
                a.acls.len(),
                a.sessions.len()
            );
            for n in nodes {
                t.push_str(&format!(
                    "{}  czxid {} mzxid {} version {} dataLength {} ephemeralOwner {}\n",
                    n["path"].as_str().unwrap_or(""),
                    n["czxid"].as_str().unwrap_or(""),
                    n["mzxid"].as_str().unwrap_or(""),
                    n["version"],
                    n["data_length"],
                    n["ephemeral_owner"].as_str().unwrap_or("")
                ));
            }
            t
        }
    })?;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}") {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}
