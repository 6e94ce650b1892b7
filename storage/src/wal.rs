//! The log writer, run on the pipeline core with glommio's O_DIRECT
//! `DmaFile`. Group commit is the caller's loop: while one `append` (one
//! write + one fdatasync) is in flight, the next batch accumulates.
//!
//! Writes are block-aligned: the partial last block is kept in memory and
//! rewritten together with the new records, so every write starts on a
//! block boundary and the preallocated file is only ever overwritten.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::disk::{Background, Disk, DiskFile, GlommioDisk};
use crate::format::{self, BLOCK, HEADER_LEN};
use crate::recovery::Tail;
use crate::segment::SegmentCursor;

#[derive(Clone, Debug)]
pub struct WalConfig {
    pub dir: PathBuf,
    /// Size of a preallocated segment (ZooKeeper's preAllocSize).
    pub segment_bytes: usize,
    /// ZooKeeper's forceSync: when false, no fdatasync (benchmarks only).
    pub force_sync: bool,
}

/// The smallest segment we accept: room for the largest request.
pub const SEGMENT_BYTES_MIN: usize = 4 * 1024 * 1024;
pub const SEGMENT_BYTES_DEFAULT: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("log I/O error on {file}: {source}")]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the log failed earlier and refuses writes (fail-stop)")]
    Failed,
}

/// The log on the real disk: what the server uses.
pub type Wal = WalOn<GlommioDisk>;

/// The log writer over any [`Disk`]; the model test runs it on the
/// fault-injecting twin.
pub struct WalOn<D: Disk> {
    disk: D,
    config: WalConfig,
    file: D::File,
    path: PathBuf,
    segment_len: usize,
    /// Where the next append goes (shared with the model test).
    cursor: SegmentCursor,
    failed: bool,
    spare: Option<Background<Result<PathBuf, WalError>>>,
}

fn io_err(file: &Path) -> impl FnOnce(std::io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        file: file.to_path_buf(),
        source,
    }
}

/// Creates a zero-filled segment of `len` bytes with its header, synced,
/// and syncs the directory so the file itself survives a crash.
fn create_segment<D: Disk>(
    disk: &D,
    dir: &Path,
    first_zxid: i64,
    len: usize,
) -> Result<PathBuf, WalError> {
    let path = dir.join(format::segment_name(first_zxid));
    let tmp = dir.join(format!("{}.tmp", format::segment_name(first_zxid)));
    disk.create_zeroed(&tmp, len, &format::encode_header(first_zxid))
        .map_err(io_err(&tmp))?;
    disk.rename(&tmp, &path).map_err(io_err(&path))?;
    sync_dir_on(disk, dir)?;
    Ok(path)
}

/// The next segment, preallocated in the background while the current one
/// fills, so a roll costs a header write and a rename instead of zeroing
/// 64 MiB on the pipeline core.
const SPARE_NAME: &str = "log.spare";

/// Makes the spare: a recycled segment of the right size if the purge
/// left one (a rename: no bytes written), else a new file zero-filled
/// (with O_DIRECT on the real disk: see `Disk::create_zeroed_direct`) and
/// renamed into place.
async fn create_spare<D: Disk>(disk: D, dir: PathBuf, len: usize) -> Result<PathBuf, WalError> {
    let path = dir.join(SPARE_NAME);
    if let Some(recycled) = take_recycled(&disk, &dir, len)? {
        disk.rename(&recycled, &path).map_err(io_err(&path))?;
        sync_dir_on(&disk, &dir)?;
        tracing::debug!(from = %recycled.display(), "recycled a purged log segment as the spare");
        return Ok(path);
    }
    let tmp = dir.join(format!("{SPARE_NAME}.tmp"));
    disk.create_zeroed_direct(&tmp, len)
        .await
        .map_err(io_err(&tmp))?;
    disk.rename(&tmp, &path).map_err(io_err(&path))?;
    sync_dir_on(&disk, &dir)?;
    Ok(path)
}

/// A recycled segment of `len` bytes from the pool in `dir`, if any. Pool
/// files of another size (the segment size changed) are removed; failing
/// that, they are left: the pool is an optimisation, never a reason to
/// stop the log.
fn take_recycled<D: Disk>(disk: &D, dir: &Path, len: usize) -> Result<Option<PathBuf>, WalError> {
    let names = disk.list(dir).map_err(io_err(dir))?;
    for name in names.iter().filter(|n| format::is_recycled_name(n)) {
        let file = dir.join(name);
        match disk.len(&file) {
            Ok(n) if n as usize == len => return Ok(Some(file)),
            Ok(_) => {
                let _ = disk.remove(&file);
            }
            // Gone meanwhile: nothing to take.
            Err(_) => {}
        }
    }
    Ok(None)
}

/// Turns the spare into the segment starting at `first_zxid`: header first
/// (synced), then the rename, then the directory sync. A crash in between
/// leaves a spare, which recovery ignores.
fn promote_spare<D: Disk>(
    disk: &D,
    dir: &Path,
    spare: &Path,
    first_zxid: i64,
) -> Result<PathBuf, WalError> {
    disk.write_synced(spare, 0, &format::encode_header(first_zxid))
        .map_err(io_err(spare))?;
    let path = dir.join(format::segment_name(first_zxid));
    disk.rename(spare, &path).map_err(io_err(&path))?;
    sync_dir_on(disk, dir)?;
    Ok(path)
}

fn start_spare<D: Disk>(
    disk: &D,
    dir: PathBuf,
    len: usize,
) -> Background<Result<PathBuf, WalError>> {
    disk.spawn(create_spare(disk.clone(), dir, len))
}

/// Deletes every segment of `dir` and starts a new one at `next_zxid`: the
/// removals are synced before the new segment exists, so a crash leaves a
/// suffix of the old segments, nothing, or the new segment alone.
fn start_over<D: Disk>(
    disk: &D,
    dir: &Path,
    next_zxid: i64,
    len: usize,
) -> Result<PathBuf, WalError> {
    let segments = crate::recovery::segments_on(disk, dir).map_err(|e| WalError::Io {
        file: dir.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })?;
    for (_, file) in segments {
        disk.remove(&file).map_err(io_err(&file))?;
    }
    sync_dir_on(disk, dir)?;
    create_segment(disk, dir, next_zxid, len)
}

/// The first zxid a segment may hold, from its name.
fn segment_first(path: &Path) -> Option<i64> {
    path.file_name()?
        .to_str()
        .and_then(format::parse_segment_name)
}

/// The zxid of the last record in the log whose last segment is `tail`;
/// `None` for an empty log. Recovery usually knows; only an empty last
/// segment (a roll just before a crash) after segments recovery skipped
/// takes reading further back.
fn last_zxid<D: Disk>(disk: &D, dir: &Path, tail: &Tail) -> Result<Option<i64>, WalError> {
    if tail.last_zxid.is_some() {
        return Ok(tail.last_zxid);
    }
    let segments = crate::recovery::segments_on(disk, dir).map_err(|e| WalError::Io {
        file: dir.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })?;
    for (_, file) in segments.iter().rev().filter(|(_, f)| *f != tail.path) {
        let bytes = disk.read(file).map_err(io_err(file))?;
        if let Some(r) = crate::recovery::Records::new(&bytes).last() {
            return Ok(Some(r.zxid));
        }
    }
    Ok(None)
}

pub fn sync_dir(dir: &Path) -> Result<(), WalError> {
    sync_dir_on(&GlommioDisk, dir)
}

fn sync_dir_on<D: Disk>(disk: &D, dir: &Path) -> Result<(), WalError> {
    disk.sync_dir(dir).map_err(io_err(dir))
}

impl Wal {
    /// Opens the log for appending after recovery: at `tail` if recovery
    /// found a segment, else in a new segment starting at `next_zxid`.
    pub async fn open(
        config: WalConfig,
        tail: Option<Tail>,
        next_zxid: i64,
    ) -> Result<Wal, WalError> {
        WalOn::open_on(GlommioDisk, config, tail, next_zxid).await
    }
}

impl<D: Disk> WalOn<D> {
    /// `Wal::open` on any disk.
    pub async fn open_on(
        disk: D,
        config: WalConfig,
        tail: Option<Tail>,
        next_zxid: i64,
    ) -> Result<WalOn<D>, WalError> {
        let len = config.segment_bytes.max(disk.segment_bytes_min());
        let (path, pos, block) = match tail {
            Some(tail) => match last_zxid(&disk, &config.dir, &tail)? {
                // The caller recovered its state from a snapshot newer than
                // the whole log: a SNAP (`restart_at`) was cut short by a
                // crash or an I/O error after the snapshot was written and
                // before the old segments were gone. Appending `next_zxid`
                // after them would leave a zxid gap that stops the next
                // startup, so finish the job: start the log over.
                Some(last) if !format::zxid_follows(last, next_zxid) => {
                    assert!(
                        last < next_zxid,
                        "the log holds {last:#x}, past the next zxid {next_zxid:#x}"
                    );
                    tracing::warn!(
                        log_last_zxid = format_args!("{last:#x}"),
                        next_zxid = format_args!("{next_zxid:#x}"),
                        "the log ends before the recovered state (a snapshot holds all of it): starting it over"
                    );
                    (
                        start_over(&disk, &config.dir, next_zxid, len)?,
                        HEADER_LEN,
                        Vec::new(),
                    )
                }
                // An empty last segment named after a batch whose write
                // failed (the roll happened, the records never made it),
                // while the log now continues with a smaller zxid (the
                // failed batch began a new epoch that was never committed,
                // and the new leader's history goes on in an older one).
                // Appending there would put records below the segment's
                // name and the next roll's segment would sort before it:
                // recovery would read them out of order. Replace it with a
                // segment named for `next_zxid`.
                _ if tail.pos == HEADER_LEN
                    && segment_first(&tail.path).is_some_and(|f| f > next_zxid) =>
                {
                    let new = create_segment(&disk, &config.dir, next_zxid, len)?;
                    disk.remove(&tail.path).map_err(io_err(&tail.path))?;
                    sync_dir_on(&disk, &config.dir)?;
                    (new, HEADER_LEN, Vec::new())
                }
                _ => (tail.path, tail.pos, tail.block),
            },
            None => (
                create_segment(&disk, &config.dir, next_zxid, len)?,
                HEADER_LEN,
                Vec::new(),
            ),
        };
        let segment_len = disk.len(&path).map_err(io_err(&path))? as usize;
        // A fresh or restarted segment starts on a block boundary, with no
        // partial block.
        assert_eq!(
            block.len(),
            pos % BLOCK,
            "the partial block recovery kept ends at the tail"
        );
        let file = disk.open_direct(&path).await.map_err(io_err(&path))?;
        Ok(WalOn {
            disk,
            config,
            file,
            path,
            segment_len,
            cursor: SegmentCursor::new(pos, block),
            failed: false,
            // Started by the first append, after the startup probe, so the
            // probe measures the disk alone.
            spare: None,
        })
    }

    pub fn segment_path(&self) -> &Path {
        &self.path
    }

    pub fn is_failed(&self) -> bool {
        self.failed
    }

    fn segment_len_for(&self, needed: usize) -> usize {
        self.config
            .segment_bytes
            .max(self.disk.segment_bytes_min())
            .max((HEADER_LEN + needed + format::END_MARKER_LEN).div_ceil(BLOCK) * BLOCK)
    }

    async fn roll(&mut self, first_zxid: i64, needed: usize) -> Result<(), WalError> {
        let len = self.segment_len_for(needed);
        let t = Instant::now();
        let spare = match self.spare.take() {
            Some(task) => task.await.transpose()?,
            None => None,
        };
        tracing::debug!(
            waited_us = t.elapsed().as_micros() as u64,
            "waited for the spare segment"
        );
        let path = match spare {
            Some(spare)
                if self
                    .disk
                    .len(&spare)
                    .map(|n| n as usize >= len)
                    .unwrap_or(false) =>
            {
                promote_spare(&self.disk, &self.config.dir, &spare, first_zxid)?
            }
            _ => create_segment(&self.disk, &self.config.dir, first_zxid, len)?,
        };
        self.switch_to(path).await?;
        self.spare = Some(start_spare(
            &self.disk,
            self.config.dir.clone(),
            self.segment_len_for(0),
        ));
        Ok(())
    }

    /// Makes the empty segment at `path` the one appends go to.
    async fn switch_to(&mut self, path: PathBuf) -> Result<(), WalError> {
        let file = self.disk.open_direct(&path).await.map_err(io_err(&path))?;
        let old = std::mem::replace(&mut self.file, file);
        old.close().await;
        self.segment_len = self.disk.len(&path).map_err(io_err(&path))? as usize;
        self.path = path;
        self.cursor = SegmentCursor::new(HEADER_LEN, Vec::new());
        Ok(())
    }

    async fn write_and_sync(&mut self, bytes: &[u8]) -> Result<(), WalError> {
        let (offset, len) = self.cursor.write_for(bytes);
        let cursor = &self.cursor;
        let written = self
            .file
            .write_at(offset as u64, len, |buf| cursor.fill(bytes, buf))
            .await
            .map_err(io_err(&self.path))?;
        if written != len {
            return Err(WalError::Io {
                file: self.path.clone(),
                source: std::io::Error::other(format!("short write: {written} of {len} bytes")),
            });
        }
        if self.config.force_sync {
            self.file.fdatasync().await.map_err(io_err(&self.path))?;
        }
        self.cursor.advance(bytes);
        Ok(())
    }

    /// Appends records (zxid, payload) durably: one write and one
    /// fdatasync. On error the log is failed for good.
    pub async fn append<P: AsRef<[u8]>>(&mut self, records: &[(i64, P)]) -> Result<(), WalError> {
        if self.failed {
            return Err(WalError::Failed);
        }
        if records.is_empty() {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity(
            records
                .iter()
                .map(|r| format::record_len(r.1.as_ref().len()))
                .sum(),
        );
        for (zxid, payload) in records {
            format::encode_record(&mut bytes, *zxid, payload.as_ref());
        }
        if self.spare.is_none() {
            self.spare = Some(start_spare(
                &self.disk,
                self.config.dir.clone(),
                self.segment_len_for(0),
            ));
        }
        let result = async {
            // The aligned write must fit: past the preallocated end the
            // file would grow and fdatasync would have metadata to flush.
            let (offset, len) = self.cursor.write_for(&bytes);
            if offset + len > self.segment_len {
                let t = Instant::now();
                self.roll(records[0].0, bytes.len()).await?;
                tracing::debug!(
                    elapsed_us = t.elapsed().as_micros() as u64,
                    "rolled to a new log segment"
                );
            }
            let t = Instant::now();
            let r = self.write_and_sync(&bytes).await;
            let took = t.elapsed();
            if took > Duration::from_millis(50) {
                tracing::warn!(
                    elapsed_ms = took.as_millis() as u64,
                    bytes = bytes.len(),
                    "slow log write+fdatasync"
                );
            }
            r
        }
        .await;
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// Starts the log over after an installed snapshot (ZAB's SNAP): every
    /// segment is deleted and a new one begins at `next_zxid`. The caller
    /// made the snapshot durable first, so a crash at any point leaves the
    /// snapshot plus either no log or the new one; never old records that
    /// would not continue the snapshot.
    pub async fn restart_at(&mut self, next_zxid: i64) -> Result<(), WalError> {
        if self.failed {
            return Err(WalError::Failed);
        }
        let result = async {
            let path = start_over(
                &self.disk,
                &self.config.dir,
                next_zxid,
                self.segment_len_for(0),
            )?;
            self.switch_to(path).await
        }
        .await;
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// Rewrites the current last block and syncs it, timing the round: the
    /// startup check that the disk gives the fast overwrite path.
    /// The best of five rounds: the first write to a fresh segment can pay
    /// one-off costs (page-cache invalidation), while the slow path this
    /// guards against (glommio routing O_DIRECT writes to a polled ring the
    /// disk does not support) is slow every time.
    ///
    /// When the last record ends exactly at the end of a full segment there
    /// is no block to rewrite (a write there would grow the preallocated
    /// file): the probe is skipped and reports zero.
    pub async fn probe_sync_latency(&mut self) -> Result<Duration, WalError> {
        let mut best = Duration::MAX;
        if self.failed {
            return Err(WalError::Failed);
        }
        let (offset, len) = self.cursor.write_for(&[]);
        if offset + len > self.segment_len {
            tracing::debug!("the log segment is full: no sync latency probe");
            return Ok(Duration::ZERO);
        }
        for _ in 0..5 {
            let start = Instant::now();
            // The rewritten block holds synced records: an error here is
            // as final as one in `append`.
            if let Err(e) = self.write_and_sync(&[]).await {
                self.failed = true;
                return Err(e);
            }
            best = best.min(start.elapsed());
        }
        Ok(best)
    }
}
