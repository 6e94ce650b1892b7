//! `corral import-zk`: turns an Apache ZooKeeper 3.x data directory into a
//! corral data directory, so an operator can switch servers without losing
//! a znode, a Stat field or a session.
//!
//! It restores the way ZooKeeper's own startup does (`FileTxnSnapLog.
//! restore`): the newest snapshot that reads back (older ones if it does
//! not), then every logged transaction after the snapshot's zxid, applied
//! with ZooKeeper's replay rules because its snapshots are fuzzy; then the
//! ephemerals of sessions that no longer exist are dropped, as
//! `ZooKeeperServer.loadData` drops them. Along the way it checks what
//! ZooKeeper checks (seals, record checksums) and more: zxids must follow
//! each other, and the tree digest ZooKeeper logs with each transaction
//! must match the rebuilt tree, which proves the replay converged.
//!
//! The result is written as one corral snapshot (`storage::snapshot`), read
//! back through the same code the server starts from, so `corral server
//! --data-dir DIR` serves it.
//!
//! # Layout
//! - `format` — ZooKeeper's snapshot, log and transaction formats; pure.
//! - `tree` — ZooKeeper's data tree as its restore changes it; pure.

pub mod format;
pub mod tree;

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::Bytes;
use engine::types::{perms, Acl, ErrorCode, Id};
use storage::snapshot::{Snapshot, SnapshotAcl, SnapshotNode, SnapshotSession};

use format::{FormatError, LogEnd, Txn, ZxidDigest, DIGEST_VERSION};
use tree::{OwnerKind, ZkTree};

/// ZooKeeper tries at most this many snapshots (`FileSnap.deserialize`).
pub const SNAPSHOTS_TRIED_MAX: usize = 100;
/// Warnings printed one by one; the rest are counted.
const WARNINGS_SHOWN_MAX: usize = 20;

#[derive(Debug, Clone)]
pub struct Options {
    /// ZooKeeper's `dataDir`, or its `version-2` directory.
    pub zk_data_dir: PathBuf,
    /// ZooKeeper's `dataLogDir`, when the logs are kept apart.
    pub zk_data_log_dir: Option<PathBuf>,
    /// corral's data directory to write.
    pub data_dir: PathBuf,
    /// Write into a non-empty data directory, deleting corral's snapshots
    /// and log segments in it.
    pub force: bool,
    /// `zookeeper.extendedTypesEnabled`: an ephemeralOwner with 0xff in the
    /// top byte is a TTL node rather than a session's ephemeral.
    pub extended_types: bool,
    /// Write the result even if the tree digest disagrees with ZooKeeper's.
    pub ignore_digest_mismatch: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{}: {source}", file.display())]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: no version-2 directory: is it ZooKeeper's dataDir?", dir.display())]
    NotZooKeeper { dir: PathBuf },
    #[error("{}: no snapshot.* or log.* files: nothing to import", dir.display())]
    Empty { dir: PathBuf },
    #[error("{}: no snapshot, but {logs} transaction logs; ZooKeeper refuses this state too (it always writes a snapshot at startup)", dir.display())]
    NoSnapshot { dir: PathBuf, logs: usize },
    #[error("{}: no snapshot reads back:\n  {}", dir.display(), reasons.join("\n  "))]
    NoValidSnapshot { dir: PathBuf, reasons: Vec<String> },
    #[error("{} at offset {}: {}", file.display(), error.offset, error.what)]
    Corrupt { file: PathBuf, error: FormatError },
    #[error("{} at offset {offset}: {what}", file.display())]
    Replay {
        file: PathBuf,
        offset: u64,
        what: String,
    },
    #[error("the rebuilt tree's digest disagrees with ZooKeeper's at the end of the log ({count} disagreement(s), the first after zxid {zxid:#x}: ZooKeeper's {expected:#x}, rebuilt {actual:#x}); the data directory may be inconsistent. --ignore-digest-mismatch writes the result anyway")]
    DigestMismatch {
        count: u64,
        zxid: i64,
        expected: i64,
        actual: i64,
    },
    #[error("{count} node(s) have an ephemeralOwner with 0xff in its top byte (e.g. {example:?}) and no live session: TTL nodes of ZooKeeper's extended types. Re-run with --extended-types, and run corral with --extended-types")]
    NeedsExtendedTypes { count: usize, example: String },
    #[error("{} is not empty; --force replaces corral's snapshots and log there", dir.display())]
    TargetNotEmpty { dir: PathBuf },
    #[error("invalid imported state: {0}")]
    Invalid(String),
    #[error(transparent)]
    Snapshot(#[from] storage::snapshot::SnapshotError),
}

fn io(file: &Path) -> impl FnOnce(std::io::Error) -> ImportError + '_ {
    move |source| ImportError::Io {
        file: file.to_path_buf(),
        source,
    }
}

/// What an import did, printed for the operator.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub source: PathBuf,
    pub snapshot: PathBuf,
    pub snapshot_zxid: i64,
    pub snapshot_nodes: usize,
    pub snapshot_sessions: usize,
    pub logs_read: usize,
    pub transactions: u64,
    /// Transactions whose change the fuzzy snapshot already held
    /// (NoNode/NodeExists on replay, as ZooKeeper ignores them).
    pub already_in_snapshot: u64,
    pub digests_verified: u64,
    pub last_digest_zxid: Option<i64>,
    pub digest_mismatches: u64,
    /// Whether the last comparison agreed: the state the import writes.
    pub digest_agrees_at_end: bool,
    pub zxid: i64,
    pub last_txn_time_ms: Option<i64>,
    pub nodes: usize,
    pub ephemerals: usize,
    pub containers: usize,
    pub ttls: usize,
    pub sessions: usize,
    pub acl_lists: usize,
    pub dead_session_ephemerals: usize,
    pub quotas: usize,
    pub written: PathBuf,
    pub written_bytes: u64,
    pub replaced: usize,
    pub elapsed_ms: u64,
    pub extended_types: bool,
    pub warnings: Vec<String>,
}

/// A UTC date for a time in ms since the epoch (Howard Hinnant's
/// civil-from-days), to print without a date library.
fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "imported ZooKeeper data from {}", self.source.display())?;
        writeln!(
            f,
            "  snapshot  {} (zxid {:#x}): {} znodes, {} sessions",
            self.snapshot.display(),
            self.snapshot_zxid,
            self.snapshot_nodes,
            self.snapshot_sessions
        )?;
        writeln!(
            f,
            "  log       {} file(s), {} transaction(s) replayed ({} already in the fuzzy snapshot)",
            self.logs_read, self.transactions, self.already_in_snapshot
        )?;
        match self.last_digest_zxid {
            Some(z) if self.digest_mismatches == 0 => writeln!(
                f,
                "  digest    matches ZooKeeper's at all {} comparison(s), the last at zxid {z:#x}",
                self.digests_verified
            )?,
            Some(z) if self.digest_agrees_at_end => writeln!(
                f,
                "  digest    matches ZooKeeper's at the end (zxid {z:#x}); {} of {} comparison(s) disagreed on the way and the replay resolved them",
                self.digest_mismatches, self.digests_verified
            )?,
            Some(z) => writeln!(
                f,
                "  digest    DISAGREES with ZooKeeper's at the end (zxid {z:#x}): {} of {} comparison(s)",
                self.digest_mismatches, self.digests_verified
            )?,
            None => writeln!(f, "  digest    none to compare (ZooKeeper wrote no digests)")?,
        }
        let last = self
            .last_txn_time_ms
            .map(|t| format!(", last transaction {}", utc(t)))
            .unwrap_or_default();
        writeln!(
            f,
            "  result    zxid {:#x}{last}: {} znodes ({} ephemeral, {} container, {} TTL), {} sessions, {} ACL lists",
            self.zxid, self.nodes, self.ephemerals, self.containers, self.ttls, self.sessions, self.acl_lists
        )?;
        if self.dead_session_ephemerals > 0 {
            writeln!(
                f,
                "  dropped   {} ephemeral(s) of sessions that no longer exist, as ZooKeeper does at startup",
                self.dead_session_ephemerals
            )?;
        }
        if self.quotas > 0 {
            writeln!(
                f,
                "  quotas    {} quota(s) kept, usage recounted as ZooKeeper's startup does; corral does not enforce or update them",
                self.quotas
            )?;
        }
        if self.replaced > 0 {
            writeln!(
                f,
                "  replaced  {} corral snapshot/log file(s) (--force)",
                self.replaced
            )?;
        }
        writeln!(
            f,
            "  wrote     {} ({} bytes) in {} ms",
            self.written.display(),
            self.written_bytes,
            self.elapsed_ms
        )?;
        for w in self.warnings.iter().take(WARNINGS_SHOWN_MAX) {
            writeln!(f, "warning: {w}")?;
        }
        if self.warnings.len() > WARNINGS_SHOWN_MAX {
            writeln!(
                f,
                "warning: ... and {} more",
                self.warnings.len() - WARNINGS_SHOWN_MAX
            )?;
        }
        let data_dir = self
            .written
            .parent()
            .and_then(|p| p.parent())
            .unwrap_or(Path::new("."));
        write!(
            f,
            "next: corral server --data-dir {}{}",
            data_dir.display(),
            if self.extended_types {
                " --extended-types"
            } else {
                ""
            }
        )
    }
}

/// ZooKeeper keeps its files in `<dir>/version-2`.
fn version_dir(dir: &Path) -> Result<PathBuf, ImportError> {
    if dir.join("version-2").is_dir() {
        Ok(dir.join("version-2"))
    } else if dir.file_name().is_some_and(|n| n == "version-2") && dir.is_dir() {
        Ok(dir.to_path_buf())
    } else {
        Err(ImportError::NotZooKeeper {
            dir: dir.to_path_buf(),
        })
    }
}

/// A ZooKeeper file: `<prefix>.<zxid in hex>[.<extension>]`
/// (`Util.getZxidFromName`).
#[derive(Debug, Clone)]
struct ZkFile {
    zxid: i64,
    path: PathBuf,
    /// "gz" or "snappy": a compressed snapshot (`SnapStream`).
    compressed: Option<String>,
}

fn list(dir: &Path, prefix: &str) -> Result<Vec<ZkFile>, ImportError> {
    let mut files = Vec::new();
    for e in fs::read_dir(dir).map_err(io(dir))? {
        let e = e.map_err(io(dir))?;
        // Follows symbolic links, as ZooKeeper's File.listFiles does.
        if !fs::metadata(e.path()).map_err(io(&e.path()))?.is_file() {
            continue;
        }
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let parts: Vec<&str> = name.split('.').collect();
        if parts.len() < 2 || parts[0] != prefix {
            continue;
        }
        let Ok(zxid) = i64::from_str_radix(parts[1], 16) else {
            continue;
        };
        let compressed = match parts.last() {
            Some(&x) if parts.len() > 2 && (x == "gz" || x == "snappy") => Some(x.to_string()),
            _ => None,
        };
        files.push(ZkFile {
            zxid,
            path: e.path(),
            compressed,
        });
    }
    files.sort_by_key(|f| f.zxid);
    Ok(files)
}

/// The snapshot the restore starts from, its nodes now in `tree`.
struct Loaded {
    file: ZkFile,
    nodes: usize,
    sessions: Vec<(i64, i32)>,
    digest: Option<ZxidDigest>,
    tree: ZkTree,
}

/// `FileSnap.deserialize`: the newest snapshot that reads back, trying at
/// most `SNAPSHOTS_TRIED_MAX` that end with a seal.
fn load_snapshot(
    dir: &Path,
    snapshots: &[ZkFile],
    extended_types: bool,
    warnings: &mut Vec<String>,
) -> Result<Loaded, ImportError> {
    let mut reasons = Vec::new();
    let mut tried = 0;
    for f in snapshots.iter().rev() {
        let name = f.path.display();
        if let Some(kind) = &f.compressed {
            let why = format!("{name}: {kind}-compressed snapshots are not supported (zookeeper.snapshot.compression.method); skipped");
            warnings.push(why.clone());
            reasons.push(why);
            continue;
        }
        let bytes = fs::read(&f.path).map_err(io(&f.path))?;
        if !format::looks_sealed(&bytes) {
            let why = format!("{name}: incomplete (does not end with a seal); skipped");
            warnings.push(why.clone());
            reasons.push(why);
            continue;
        }
        tried += 1;
        if tried > SNAPSHOTS_TRIED_MAX {
            break;
        }
        let decoded = format::decode_snapshot(Bytes::from(bytes));
        let why = match decoded {
            Ok(snapshot) => match ZkTree::from_snapshot(&snapshot, f.zxid, extended_types) {
                Ok(tree) => {
                    return Ok(Loaded {
                        file: f.clone(),
                        nodes: snapshot.nodes.len(),
                        sessions: snapshot.sessions,
                        digest: snapshot.digest,
                        tree,
                    })
                }
                Err(e) => format!("{name}: {e}"),
            },
            Err(e) => format!("{name} at offset {}: {}", e.offset, e.what),
        };
        warnings.push(format!("{why}; trying an older snapshot"));
        reasons.push(why);
    }
    Err(ImportError::NoValidSnapshot {
        dir: dir.to_path_buf(),
        reasons,
    })
}

/// Whether `zxid` may follow `prev` in a log: strictly after it, and with
/// no gap within one epoch (a new epoch restarts the counter).
fn follows(prev: i64, zxid: i64) -> Result<(), String> {
    if zxid <= prev {
        Err(format!(
            "zxid {zxid:#x} after {prev:#x}: the log goes backwards"
        ))
    } else if zxid >> 32 == prev >> 32 && zxid != prev + 1 {
        Err(format!(
            "zxid {zxid:#x} after {prev:#x}: transactions {:#x}..={:#x} are missing",
            prev + 1,
            zxid - 1
        ))
    } else {
        Ok(())
    }
}

/// The digest comparisons ZooKeeper makes while restoring: once at the
/// zxid its fuzzy snapshot recorded, and after every later transaction
/// that carries a digest.
#[derive(Default)]
struct DigestCheck {
    /// The snapshot's digest, until replay reaches its zxid (ZooKeeper's
    /// `digestFromLoadedSnapshot`: while set, the tree is fuzzy).
    pending: Option<ZxidDigest>,
    verified: u64,
    last_zxid: Option<i64>,
    last_agreed: bool,
    mismatches: u64,
    first_mismatch: Option<(i64, i64, i64)>,
}

impl DigestCheck {
    fn compare(&mut self, zxid: i64, expected: i64, actual: i64) {
        self.verified += 1;
        self.last_zxid = Some(zxid);
        self.last_agreed = expected == actual;
        if !self.last_agreed {
            self.mismatches += 1;
            self.first_mismatch.get_or_insert((zxid, expected, actual));
        }
    }

    /// `DataTree.compareSnapshotDigests`.
    fn at(&mut self, zxid: i64, tree: &ZkTree) {
        if let Some(d) = self.pending {
            if d.zxid == zxid {
                self.pending = None;
                if d.version == DIGEST_VERSION {
                    self.compare(zxid, d.digest, tree.digest());
                }
            }
        }
    }
}

fn dir_entries(dir: &Path) -> Result<Vec<PathBuf>, ImportError> {
    match fs::read_dir(dir) {
        Ok(rd) => rd.map(|e| e.map(|e| e.path()).map_err(io(dir))).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io(dir)(e)),
    }
}

/// corral's own files in its data directory: snapshots and log segments.
fn corral_files(data_dir: &Path) -> Result<Vec<PathBuf>, ImportError> {
    let mut out = Vec::new();
    for (sub, prefix) in [("snap", "snapshot."), ("log", "log.")] {
        for p in dir_entries(&data_dir.join(sub))? {
            if p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
            {
                out.push(p);
            }
        }
    }
    Ok(out)
}

fn check_target(data_dir: &Path, force: bool) -> Result<(), ImportError> {
    if !force && !dir_entries(data_dir)?.is_empty() {
        return Err(ImportError::TargetNotEmpty {
            dir: data_dir.to_path_buf(),
        });
    }
    Ok(())
}

/// The state restored from ZooKeeper's files, before it becomes corral's.
struct Restored {
    tree: ZkTree,
    sessions: HashMap<i64, i32>,
    /// zxid, ZooKeeper's digest and the rebuilt tree's at the first
    /// disagreement, when the last comparison disagreed too.
    unresolved_mismatch: Option<(i64, i64, i64)>,
}

/// Runs the import.
pub fn run(opts: &Options) -> Result<Summary, ImportError> {
    let started = Instant::now();
    let snap_dir = version_dir(&opts.zk_data_dir)?;
    let log_dir = match &opts.zk_data_log_dir {
        Some(d) => version_dir(d)?,
        None => snap_dir.clone(),
    };
    check_target(&opts.data_dir, opts.force)?;
    let mut summary = Summary {
        source: snap_dir.clone(),
        extended_types: opts.extended_types,
        ..Summary::default()
    };

    let snapshots = list(&snap_dir, "snapshot")?;
    let logs = list(&log_dir, "log")?;
    if snapshots.is_empty() {
        return Err(if logs.is_empty() {
            ImportError::Empty { dir: snap_dir }
        } else {
            ImportError::NoSnapshot {
                dir: snap_dir,
                logs: logs.len(),
            }
        });
    }
    let loaded = load_snapshot(
        &snap_dir,
        &snapshots,
        opts.extended_types,
        &mut summary.warnings,
    )?;
    summary.snapshot = loaded.file.path.clone();
    summary.snapshot_zxid = loaded.file.zxid;
    summary.snapshot_nodes = loaded.nodes;
    summary.snapshot_sessions = loaded.sessions.len();

    let mut restored = replay(loaded, &logs, &mut summary)?;
    summary.zxid = restored.tree.last_processed_zxid;
    drop_dead_sessions(&mut restored, opts.extended_types, &mut summary)?;
    summary.quotas = restored.tree.setup_quota();

    if let (false, Some((zxid, expected, actual))) =
        (opts.ignore_digest_mismatch, restored.unresolved_mismatch)
    {
        return Err(ImportError::DigestMismatch {
            count: summary.digest_mismatches,
            zxid,
            expected,
            actual,
        });
    }

    let snap = to_corral(&restored, &mut summary)?;
    write(opts, &snap, &mut summary)?;
    summary.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(summary)
}

/// `FileTxnSnapLog.fastForwardFromEdits`: the transactions after the
/// snapshot's zxid, from the newest log that starts at or before it on.
fn replay(loaded: Loaded, logs: &[ZkFile], summary: &mut Summary) -> Result<Restored, ImportError> {
    let snap_zxid = loaded.file.zxid;
    let mut tree = loaded.tree;
    // SerializeUtils.deserializeSnapshot: a later duplicate id wins.
    let mut sessions: HashMap<i64, i32> = loaded.sessions.into_iter().collect();

    // The snapshot's digest counts only if it is at or after the zxid the
    // snapshot is named for (DataTree.deserializeZxidDigest).
    let mut digests = DigestCheck {
        pending: loaded.digest.filter(|d| d.zxid > 0 && d.zxid >= snap_zxid),
        ..DigestCheck::default()
    };
    digests.at(snap_zxid, &tree);

    let target = snap_zxid + 1;
    let first = logs.iter().rposition(|f| f.zxid < target);
    let chosen: Vec<&ZkFile> = logs
        .iter()
        .enumerate()
        .filter(|(i, f)| Some(*i) == first || f.zxid >= target)
        .map(|(_, f)| f)
        .collect();
    let mut prev = snap_zxid;
    let mut replaying = false;
    let mut warned_missing_digest_txn = false;
    for (i, f) in chosen.iter().enumerate() {
        let last_file = i + 1 == chosen.len();
        let bytes = fs::read(&f.path).map_err(io(&f.path))?;
        let log = match format::read_log(&bytes) {
            Ok(log) => log,
            // A last log that was created but never written (a crash right
            // after ZooKeeper opened it) holds no transaction.
            Err(_) if last_file && format::all_zero(&bytes) => {
                summary.warnings.push(format!(
                    "{}: empty (never written); ignored",
                    f.path.display()
                ));
                continue;
            }
            Err(error) => {
                return Err(ImportError::Corrupt {
                    file: f.path.clone(),
                    error,
                })
            }
        };
        drop(bytes);
        summary.logs_read += 1;
        for rec in log.records {
            let corrupt = |error: FormatError| ImportError::Corrupt {
                file: f.path.clone(),
                error: error.shifted(rec.offset + format::RECORD_PREFIX_LEN as u64),
            };
            let entry = format::decode_txn(rec.payload.clone()).map_err(corrupt)?;
            let zxid = entry.header.zxid;
            if !replaying && zxid < target {
                continue;
            }
            replaying = true;
            let replay_error = |what: String| ImportError::Replay {
                file: f.path.clone(),
                offset: rec.offset,
                what,
            };
            follows(prev, zxid).map_err(replay_error)?;
            match &entry.txn {
                Txn::CreateSession { timeout_ms } => {
                    sessions.insert(entry.header.session, *timeout_ms);
                }
                Txn::CloseSession { .. } => {
                    sessions.remove(&entry.header.session);
                }
                _ => {}
            }
            let rc = tree
                .process_txn(&entry.header, &entry.txn, false)
                .map_err(|e| replay_error(format!("zxid {zxid:#x}: {e}")))?;
            if matches!(rc, ErrorCode::NoNode | ErrorCode::NodeExists) {
                summary.already_in_snapshot += 1;
            }
            assert_eq!(
                tree.last_processed_zxid, zxid,
                "the tree is at the transaction just applied"
            );
            summary.transactions += 1;
            summary.last_txn_time_ms = Some(entry.header.time);
            prev = zxid;

            digests.at(zxid, &tree);
            match (digests.pending, entry.digest) {
                (Some(d), _) if zxid > d.zxid && !warned_missing_digest_txn => {
                    warned_missing_digest_txn = true;
                    summary.warnings.push(format!(
                        "the log has no transaction {:#x}, where the snapshot's digest was taken; the fuzzy snapshot cannot be verified",
                        d.zxid
                    ));
                }
                (None, Some(d)) if d.version == DIGEST_VERSION => {
                    digests.compare(zxid, d.tree_digest, tree.digest());
                }
                _ => {}
            }
        }
        if let LogEnd::Torn {
            offset,
            why,
            trailing,
        } = log.end
        {
            let what = if last_file {
                "the torn tail of the last log, cut as ZooKeeper does"
            } else {
                "the rest of this log, skipped as ZooKeeper does; the next log continues the zxids"
            };
            summary.warnings.push(format!(
                "{} at offset {offset}: {why} ({trailing} non-zero bytes from there); ignored {what}",
                f.path.display()
            ));
        }
    }
    if let Some(d) = digests.pending {
        if !warned_missing_digest_txn {
            summary.warnings.push(format!(
                "the log ends at zxid {prev:#x}, before the snapshot's digest at {:#x}: the fuzzy snapshot could not be verified and may be missing transactions",
                d.zxid
            ));
        }
    }
    // Pair assertion: the running digest equals one computed from scratch.
    assert_eq!(
        tree.digest(),
        tree.recompute_digest(),
        "running tree digest"
    );
    summary.digests_verified = digests.verified;
    summary.last_digest_zxid = digests.last_zxid;
    summary.digest_mismatches = digests.mismatches;
    summary.digest_agrees_at_end = digests.last_agreed;
    // What must agree is the end state. ZooKeeper records a fuzzy
    // snapshot's digest after the nodes, at the last zxid it finished, while
    // the next transaction may be half applied to nodes already written: the
    // snapshot then disagrees with its own digest, and replaying that
    // transaction resolves it (ZooKeeper itself only logs such mismatches).
    let unresolved = if digests.last_agreed {
        if let Some((zxid, _, _)) = digests.first_mismatch {
            summary.warnings.push(format!(
                "the tree digest disagreed with ZooKeeper's {} time(s), first after zxid {zxid:#x}, and agreed again by zxid {:#x}",
                digests.mismatches,
                digests.last_zxid.unwrap_or(zxid)
            ));
        }
        None
    } else {
        digests.first_mismatch
    };
    Ok(Restored {
        tree,
        sessions,
        unresolved_mismatch: unresolved,
    })
}

/// `ZooKeeperServer.loadData` drops the ephemerals of sessions the session
/// table no longer has, at the last zxid and without a transaction. With
/// extended types off, a TTL node's owner (0xff top byte) reads as such a
/// session and ZooKeeper would drop the node; the import refuses instead.
fn drop_dead_sessions(
    restored: &mut Restored,
    extended_types: bool,
    summary: &mut Summary,
) -> Result<(), ImportError> {
    let zxid = restored.tree.last_processed_zxid;
    let mut dead: Vec<i64> = restored
        .tree
        .sessions_with_ephemerals()
        .into_iter()
        .filter(|s| !restored.sessions.contains_key(s))
        .collect();
    dead.sort_unstable();
    if !extended_types {
        let ttl_like: Vec<i64> = dead
            .iter()
            .copied()
            .filter(|&s| (s >> 56) & 0xff == 0xff && restored.tree.ephemerals_of(s) > 0)
            .collect();
        if let Some(&first) = ttl_like.first() {
            let count = ttl_like
                .iter()
                .map(|&s| restored.tree.ephemerals_of(s))
                .sum();
            let example = restored
                .tree
                .nodes()
                .iter()
                .find(|(_, n)| n.stat.ephemeral_owner == first)
                .map(|(p, _)| p.clone())
                .unwrap_or_default();
            return Err(ImportError::NeedsExtendedTypes { count, example });
        }
    }
    for s in dead {
        summary.dead_session_ephemerals += restored
            .tree
            .kill_session(s, zxid, None)
            .map_err(|e| ImportError::Invalid(e.to_string()))?;
    }
    Ok(())
}

/// A node corral's tree has of its own, as `DataTree::new` makes it.
fn system_node(path: &str, acl: u32) -> SnapshotNode {
    SnapshotNode {
        path: path.to_string(),
        data: Some(Vec::new()),
        acl,
        czxid: 0,
        mzxid: 0,
        pzxid: 0,
        ctime: 0,
        mtime: 0,
        version: 0,
        cversion: 0,
        aversion: 0,
        ephemeral_owner: 0,
    }
}

/// The restored tree as a corral snapshot: every node a ZooKeeper snapshot
/// walk would reach, its ACL list resolved, `/zookeeper/config` replaced by
/// corral's own (it holds a ZooKeeper ensemble's membership, which means
/// nothing to corral), the session table, and the last zxid.
fn to_corral(restored: &Restored, summary: &mut Summary) -> Result<Snapshot, ImportError> {
    let tree = &restored.tree;
    let (mut paths, unreachable) = tree.reachable();
    if unreachable > 0 {
        summary.warnings.push(format!(
            "{unreachable} node(s) whose parent is gone were left out, as ZooKeeper's next snapshot would leave them out"
        ));
    }
    paths.sort_unstable();
    let mut acl_index: HashMap<Vec<Acl>, u32> = HashMap::new();
    let mut acls: Vec<Vec<SnapshotAcl>> = Vec::new();
    let mut intern = |list: Vec<Acl>| -> u32 {
        *acl_index.entry(list.clone()).or_insert_with(|| {
            acls.push(
                list.iter()
                    .map(|a| SnapshotAcl {
                        perms: a.perms,
                        scheme: a.id.scheme.clone(),
                        id: a.id.id.clone(),
                    })
                    .collect(),
            );
            (acls.len() - 1) as u32
        })
    };
    let mut nodes = Vec::with_capacity(paths.len() + 1);
    for path in paths {
        if path == engine::tree::CONFIG_PATH {
            continue;
        }
        engine::path::validate(path)
            .map_err(|e| ImportError::Invalid(format!("path {path:?}: {e:?}")))?;
        let node = tree.get(path).expect("listed by reachable");
        let list = tree.acls.list(node.acl).ok_or_else(|| {
            ImportError::Invalid(format!(
                "node {path:?} names ACL list {}, which neither the snapshot nor the log defines",
                node.acl
            ))
        })?;
        let s = &node.stat;
        match tree::owner_kind(s.ephemeral_owner, summary.extended_types) {
            Ok(OwnerKind::Session(_)) => summary.ephemerals += 1,
            Ok(OwnerKind::Container) => summary.containers += 1,
            Ok(OwnerKind::Ttl(_)) => summary.ttls += 1,
            Ok(OwnerKind::Persistent) => {}
            Err(e) => return Err(ImportError::Invalid(format!("node {path:?}: {e}"))),
        }
        nodes.push(SnapshotNode {
            path: path.to_string(),
            data: node.data.as_ref().map(|d| d.to_vec()),
            acl: intern(list),
            czxid: s.czxid,
            mzxid: s.mzxid,
            pzxid: s.pzxid,
            ctime: s.ctime,
            mtime: s.mtime,
            version: s.version,
            // ZooKeeper persists cversion as child creations, as corral does.
            cversion: s.cversion,
            aversion: s.aversion,
            ephemeral_owner: s.ephemeral_owner,
        });
    }
    let read_only = intern(vec![Acl {
        perms: perms::READ,
        id: Id::new("world", "anyone"),
    }]);
    let all = intern(vec![Acl::world_all()]);
    for (path, acl) in [
        (engine::tree::ZOOKEEPER_PATH, all),
        (engine::tree::QUOTA_PATH, all),
        (engine::tree::CONFIG_PATH, read_only),
    ] {
        if tree.get(path).is_none() || path == engine::tree::CONFIG_PATH {
            let mut n = system_node(path, acl);
            if path == engine::tree::CONFIG_PATH {
                // As a fresh server's: ZooKeeper sets its ACL with version
                // -1 when it creates the node.
                n.aversion = -1;
            }
            nodes.push(n);
        }
    }
    let mut sessions: Vec<SnapshotSession> = restored
        .sessions
        .iter()
        .map(|(&id, &timeout_ms)| SnapshotSession { id, timeout_ms })
        .collect();
    sessions.sort_by_key(|s| s.id);
    summary.nodes = nodes.len();
    summary.sessions = sessions.len();
    summary.acl_lists = acls.len();
    Ok(Snapshot {
        zxid: tree.last_processed_zxid,
        acls,
        nodes,
        sessions,
    })
}

/// Writes the snapshot into corral's data directory and reads it back
/// through the code the server starts from. With --force, corral's older
/// snapshots and log segments are deleted once the new snapshot is
/// durable: left in place, a newer snapshot or log records after the
/// imported zxid would be restored over the import.
fn write(opts: &Options, snap: &Snapshot, summary: &mut Summary) -> Result<(), ImportError> {
    check_target(&opts.data_dir, opts.force)?;
    let old = if opts.force {
        corral_files(&opts.data_dir)?
    } else {
        Vec::new()
    };
    let snap_dir = opts.data_dir.join("snap");
    fs::create_dir_all(&snap_dir).map_err(io(&snap_dir))?;
    let (path, bytes) = storage::snapshot::write(&snap_dir, snap)?;
    for f in old.iter().filter(|f| **f != path) {
        fs::remove_file(f).map_err(io(f))?;
    }
    summary.replaced = old.len();
    let check = storage::snapshot::load(&path, |a| {
        crate::snap::from_archived(a, opts.extended_types)
            .map(|(t, s)| (t.node_count(), t.last_zxid, s.len()))
    })?;
    match check {
        Ok((nodes, zxid, sessions))
            if nodes == snap.nodes.len()
                && zxid == snap.zxid
                && sessions == snap.sessions.len() => {}
        Ok(other) => {
            return Err(ImportError::Invalid(format!(
                "{} reads back as {other:?} (nodes, zxid, sessions)",
                path.display()
            )))
        }
        Err(why) => {
            return Err(ImportError::Invalid(format!(
                "{} does not load: {why}",
                path.display()
            )))
        }
    }
    summary.written = path;
    summary.written_bytes = bytes;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::format::testing::{entry, log, snapshot};
    use super::format::{
        opcode, FileHeader, SnapNode, StatPersisted, TxnDigest, ZkSnapshot, ZxidDigest, SNAP_MAGIC,
    };
    use super::*;

    struct Dirs {
        root: PathBuf,
    }

    impl Dirs {
        fn new(tag: &str) -> Dirs {
            let root = std::env::temp_dir()
                .join(format!("corral-import-unit-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&root);
            fs::create_dir_all(root.join("zk/version-2")).unwrap();
            Dirs { root }
        }
        fn zk(&self) -> PathBuf {
            self.root.join("zk")
        }
        fn put(&self, name: &str, bytes: &[u8]) -> PathBuf {
            let p = self.root.join("zk/version-2").join(name);
            fs::write(&p, bytes).unwrap();
            p
        }
        fn options(&self) -> Options {
            Options {
                zk_data_dir: self.zk(),
                zk_data_log_dir: None,
                data_dir: self.root.join("corral"),
                force: false,
                extended_types: false,
                ignore_digest_mismatch: false,
            }
        }
    }

    impl Drop for Dirs {
        fn drop(&mut self) {
            if !std::thread::panicking() {
                let _ = fs::remove_dir_all(&self.root);
            }
        }
    }

    fn acl() -> Vec<Acl> {
        vec![Acl::world_all()]
    }

    fn node(path: &str, czxid: i64, cversion: i32, owner: i64) -> SnapNode {
        SnapNode {
            path: path.into(),
            data: Some(Bytes::from(path.to_string())),
            acl: 1,
            stat: StatPersisted {
                czxid,
                mzxid: czxid,
                ctime: 10,
                mtime: 10,
                version: 0,
                cversion,
                aversion: 0,
                ephemeral_owner: owner,
                pzxid: czxid,
            },
        }
    }

    /// A fresh ZooKeeper's tree plus /app, at zxid 2, with session 0x51.
    fn base_snapshot(extra: Vec<SnapNode>) -> ZkSnapshot {
        let mut nodes = vec![
            node("", 0, 2, 0),
            node("/zookeeper", 0, 0, 0),
            node("/zookeeper/quota", 0, 0, 0),
            node("/zookeeper/config", 0, 0, 0),
            node("/app", 2, 0, 0),
        ];
        nodes.extend(extra);
        ZkSnapshot {
            header: FileHeader {
                magic: SNAP_MAGIC,
                version: 2,
                dbid: 0,
            },
            sessions: vec![(0x51, 5000)],
            acls: vec![(1, acl())],
            nodes,
            digest: None,
            last_processed_zxid: None,
        }
    }

    fn create(path: &str, parent_cversion: i32) -> Txn {
        Txn::Create {
            opcode: opcode::CREATE2,
            path: path.into(),
            data: Some(Bytes::from_static(b"x")),
            acl: acl(),
            ephemeral: false,
            parent_cversion,
        }
    }

    #[test]
    fn snapshot_plus_logs_becomes_a_corral_snapshot_the_server_loads() {
        let d = Dirs::new("ok");
        d.put("snapshot.2", &snapshot(&base_snapshot(vec![])));
        d.put(
            "log.1",
            &log(
                &[
                    entry(0x51, 1, create("/old", -1)),
                    entry(0x51, 3, create("/app/a", 1)),
                ],
                64,
            ),
        );
        d.put(
            "log.4",
            &log(
                &[
                    entry(0x52, 4, Txn::CreateSession { timeout_ms: 7000 }),
                    entry(0x51, 5, create("/app/b", 2)),
                ],
                64,
            ),
        );
        let summary = run(&d.options()).unwrap();
        assert_eq!(summary.zxid, 5);
        assert_eq!(summary.transactions, 3, "zxid 1 is before the snapshot");
        assert_eq!(summary.sessions, 2);
        let (tree, sessions) = storage::snapshot::load(&summary.written, |a| {
            crate::snap::from_archived(a, false).unwrap()
        })
        .unwrap();
        assert_eq!(tree.last_zxid, 5);
        let app = tree.get("/app").unwrap().stat();
        assert_eq!((app.num_children, app.cversion, app.pzxid), (2, 2, 5));
        assert!(tree.get("/old").is_none());
        assert!(sessions.contains(&(0x52, 7000)));
        // A second import into the same directory needs --force.
        assert!(matches!(
            run(&d.options()),
            Err(ImportError::TargetNotEmpty { .. })
        ));
        let forced = Options {
            force: true,
            ..d.options()
        };
        assert_eq!(run(&forced).unwrap().replaced, 1);
    }

    #[test]
    fn a_gap_in_the_zxids_is_named_by_file_and_offset() {
        let d = Dirs::new("gap");
        d.put("snapshot.2", &snapshot(&base_snapshot(vec![])));
        let file = log(
            &[
                entry(0x51, 3, create("/app/a", 1)),
                entry(0x51, 5, create("/app/b", 2)),
            ],
            0,
        );
        let second = format::read_log(&file).unwrap().records[1].offset;
        let path = d.put("log.3", &file);
        match run(&d.options()) {
            Err(ImportError::Replay { file, offset, what }) => {
                assert_eq!((file, offset), (path, second));
                assert!(what.contains("0x4..=0x4 are missing"), "{what}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_torn_middle_log_is_skipped_only_if_the_next_log_continues() {
        let d = Dirs::new("torn-middle");
        d.put("snapshot.2", &snapshot(&base_snapshot(vec![])));
        let mut first = log(&[entry(0x51, 3, create("/app/a", 1))], 0);
        // Half of a record for zxid 4, as a crash leaves it; ZooKeeper then
        // started log.4 and logged zxid 4 again.
        let torn = log(&[entry(0x51, 4, create("/app/lost", 2))], 0);
        first.extend_from_slice(&torn[16..30]);
        d.put("log.3", &first);
        d.put("log.4", &log(&[entry(0x51, 4, create("/app/b", 2))], 0));
        let summary = run(&d.options()).unwrap();
        assert_eq!((summary.zxid, summary.transactions), (4, 2));
        assert!(
            summary
                .warnings
                .iter()
                .any(|w| w.contains("log.3") && w.contains("next log continues")),
            "{:?}",
            summary.warnings
        );

        fs::remove_file(d.root.join("zk/version-2/log.4")).unwrap();
        d.put("log.5", &log(&[entry(0x51, 5, create("/app/b", 2))], 0));
        let forced = Options {
            force: true,
            ..d.options()
        };
        match run(&forced) {
            Err(ImportError::Replay { file, what, .. }) => {
                assert!(file.ends_with("log.5"), "{file:?}");
                assert!(what.contains("missing"), "{what}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ephemerals_of_sessions_gone_are_dropped_and_live_ones_kept() {
        let d = Dirs::new("dead");
        let snap = base_snapshot(vec![
            node("/app/live", 2, 0, 0x51),
            node("/app/dead", 2, 0, 0x99),
        ]);
        d.put("snapshot.2", &snapshot(&snap));
        d.put("log.3", &log(&[entry(0x51, 3, create("/app/x", 1))], 0));
        let summary = run(&d.options()).unwrap();
        assert_eq!(summary.dead_session_ephemerals, 1);
        assert_eq!(summary.ephemerals, 1);
        let (tree, _) = storage::snapshot::load(&summary.written, |a| {
            crate::snap::from_archived(a, false).unwrap()
        })
        .unwrap();
        assert!(tree.get("/app/live").is_some());
        assert!(tree.get("/app/dead").is_none());
        // Dropped at the last zxid, as ZooKeeperServer.loadData does.
        assert_eq!(tree.get("/app").unwrap().pzxid, 3);
    }

    #[test]
    fn ttl_nodes_need_extended_types() {
        let d = Dirs::new("ttl");
        let ttl_owner = (0xffu64 << 56) as i64 | 60_000;
        d.put(
            "snapshot.2",
            &snapshot(&base_snapshot(vec![node("/app/t", 2, 0, ttl_owner)])),
        );
        assert!(matches!(
            run(&d.options()),
            Err(ImportError::NeedsExtendedTypes { count: 1, .. })
        ));
        let with = Options {
            extended_types: true,
            ..d.options()
        };
        let summary = run(&with).unwrap();
        assert_eq!((summary.ttls, summary.ephemerals), (1, 0));
    }

    #[test]
    fn digests_are_compared_after_the_fuzzy_window() {
        let d = Dirs::new("digest");
        let snap = base_snapshot(vec![]);
        d.put("snapshot.2", &snapshot(&snap));
        // The digests ZooKeeper would log, computed on a replayed tree.
        let mut tree = ZkTree::from_snapshot(&snap, 2, false).unwrap();
        let mut entries = vec![
            entry(0x51, 3, create("/app/a", 1)),
            entry(0x51, 4, create("/app/b", 2)),
        ];
        for e in &mut entries {
            tree.process_txn(&e.header, &e.txn, false).unwrap();
            e.digest = Some(TxnDigest {
                version: DIGEST_VERSION,
                tree_digest: tree.digest(),
            });
        }
        d.put("log.3", &log(&entries, 0));
        let summary = run(&d.options()).unwrap();
        assert_eq!(
            (summary.digests_verified, summary.digest_mismatches),
            (2, 0)
        );

        entries[1].digest = Some(TxnDigest {
            version: DIGEST_VERSION,
            tree_digest: 42,
        });
        d.put("log.3", &log(&entries, 0));
        let forced = Options {
            force: true,
            ..d.options()
        };
        assert!(matches!(
            run(&forced),
            Err(ImportError::DigestMismatch {
                count: 1,
                zxid: 4,
                expected: 42,
                ..
            })
        ));
        let ignored = Options {
            ignore_digest_mismatch: true,
            ..forced
        };
        assert_eq!(run(&ignored).unwrap().digest_mismatches, 1);
    }

    #[test]
    fn a_snapshot_disagreeing_with_its_own_digest_is_fine_if_the_replay_resolves_it() {
        // The story: ZooKeeper wrote snapshot.2 while applying zxid 3, so
        // /app/a's create was half in it (the parent's cversion and pzxid
        // already moved) while the digest it recorded was zxid 2's. Replay
        // of zxid 3 completes the change and the digests agree again.
        let d = Dirs::new("fuzzy-digest");
        let mut snap = base_snapshot(vec![]);
        let clean = ZkTree::from_snapshot(&snap, 2, false).unwrap().digest();
        let app = snap.nodes.iter_mut().find(|n| n.path == "/app").unwrap();
        app.stat.cversion = 1;
        app.stat.pzxid = 3;
        snap.digest = Some(ZxidDigest {
            zxid: 2,
            version: DIGEST_VERSION,
            digest: clean,
        });
        d.put("snapshot.2", &snapshot(&snap));
        let mut tree = ZkTree::from_snapshot(&snap, 2, false).unwrap();
        let mut e = entry(0x51, 3, create("/app/a", 1));
        tree.process_txn(&e.header, &e.txn, false).unwrap();
        e.digest = Some(TxnDigest {
            version: DIGEST_VERSION,
            tree_digest: tree.digest(),
        });
        d.put("log.3", &log(&[e], 0));
        let summary = run(&d.options()).unwrap();
        assert_eq!(summary.digest_mismatches, 1);
        assert!(summary.digest_agrees_at_end);
        assert!(
            summary.warnings.iter().any(|w| w.contains("agreed again")),
            "{:?}",
            summary.warnings
        );
    }

    #[test]
    fn refusals_name_the_problem() {
        let d = Dirs::new("refuse");
        assert!(matches!(run(&d.options()), Err(ImportError::Empty { .. })));
        d.put("log.1", &log(&[entry(0x51, 1, create("/a", 1))], 0));
        assert!(matches!(
            run(&d.options()),
            Err(ImportError::NoSnapshot { logs: 1, .. })
        ));
        d.put("snapshot.1", b"not a snapshot at all");
        assert!(matches!(
            run(&d.options()),
            Err(ImportError::NoValidSnapshot { .. })
        ));
        let not_zk = Options {
            zk_data_dir: d.root.join("nowhere"),
            ..d.options()
        };
        assert!(matches!(
            run(&not_zk),
            Err(ImportError::NotZooKeeper { .. })
        ));
    }

    #[test]
    fn follows_allows_a_new_epoch_only() {
        assert!(follows(0x1_0000_0005, 0x1_0000_0006).is_ok());
        assert!(follows(0x1_0000_0005, 0x2_0000_0001).is_ok());
        assert!(follows(0x1_0000_0005, 0x1_0000_0007).is_err());
        assert!(follows(0x1_0000_0005, 0x1_0000_0005).is_err());
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
    }
}
