//! The log writer, run on the pipeline core with glommio's O_DIRECT
//! `DmaFile`. Group commit is the caller's loop: while one `append` (one
//! write + one fdatasync) is in flight, the next batch accumulates.
//!
//! Writes are block-aligned: the partial last block is kept in memory and
//! rewritten together with the new records, so every write starts on a
//! block boundary and the preallocated file is only ever overwritten.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use glommio::io::{DmaFile, OpenOptions};

use crate::format::{self, BLOCK, HEADER_LEN};
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

pub struct Wal {
    config: WalConfig,
    file: DmaFile,
    path: PathBuf,
    segment_len: usize,
    /// Where the next append goes (shared with the model test).
    cursor: SegmentCursor,
    failed: bool,
    spare: Option<SpareTask>,
}

fn io_err(file: &Path) -> impl FnOnce(std::io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        file: file.to_path_buf(),
        source,
    }
}

fn glommio_err(file: &Path, e: glommio::GlommioError<()>) -> WalError {
    WalError::Io {
        file: file.to_path_buf(),
        source: e.into(),
    }
}

/// Creates a zero-filled segment of `len` bytes with its header, synced,
/// and syncs the directory so the file itself survives a crash.
fn create_segment(dir: &Path, first_zxid: i64, len: usize) -> Result<PathBuf, WalError> {
    let path = dir.join(format::segment_name(first_zxid));
    let tmp = dir.join(format!("{}.tmp", format::segment_name(first_zxid)));
    let mut f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(&format::encode_header(first_zxid))
        .map_err(io_err(&tmp))?;
    let zeros = vec![0u8; 1 << 20];
    let mut written = HEADER_LEN;
    while written < len {
        let n = zeros.len().min(len - written);
        f.write_all(&zeros[..n]).map_err(io_err(&tmp))?;
        written += n;
    }
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    sync_dir(dir)?;
    Ok(path)
}

/// The next segment, preallocated in the background while the current one
/// fills, so a roll costs a header write and a rename instead of zeroing
/// 64 MiB on the pipeline core.
const SPARE_NAME: &str = "log.spare";

/// Zero-fills the spare with O_DIRECT writes on the pipeline core's own
/// io_uring: through the page cache its dirty pages could stall the log's
/// fdatasync, and on a blocking thread it starves for CPU under load (both
/// measured: 100-200 ms stalls per segment at 120k writes/s).
async fn create_spare(dir: PathBuf, len: usize) -> Result<PathBuf, WalError> {
    const CHUNK: usize = 1 << 20;
    let path = dir.join(SPARE_NAME);
    let tmp = dir.join(format!("{SPARE_NAME}.tmp"));
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .dma_open(&tmp)
        .await
        .map_err(|e| glommio_err(&tmp, e))?;
    let mut offset = 0;
    while offset < len {
        let n = CHUNK.min(len - offset).div_ceil(BLOCK) * BLOCK;
        let mut buf = file.alloc_dma_buffer(n);
        buf.as_bytes_mut().fill(0);
        file.write_at(buf, offset as u64)
            .await
            .map_err(|e| glommio_err(&tmp, e))?;
        offset += n;
        // Pace the zero-fill so the log's own writes do not queue behind a
        // long run of 1 MiB writes on the device.
        glommio::timer::sleep(std::time::Duration::from_millis(2)).await;
    }
    file.fdatasync().await.map_err(|e| glommio_err(&tmp, e))?;
    let _ = file.close().await;
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    sync_dir(&dir)?;
    Ok(path)
}

/// Turns the spare into the segment starting at `first_zxid`: header first
/// (synced), then the rename, then the directory sync. A crash in between
/// leaves a spare, which recovery ignores.
fn promote_spare(dir: &Path, spare: &Path, first_zxid: i64) -> Result<PathBuf, WalError> {
    use std::os::unix::fs::FileExt;
    let f = fs::OpenOptions::new()
        .write(true)
        .open(spare)
        .map_err(io_err(spare))?;
    f.write_all_at(&format::encode_header(first_zxid), 0)
        .map_err(io_err(spare))?;
    f.sync_data().map_err(io_err(spare))?;
    let path = dir.join(format::segment_name(first_zxid));
    fs::rename(spare, &path).map_err(io_err(&path))?;
    sync_dir(dir)?;
    Ok(path)
}

type SpareTask = glommio::task::JoinHandle<Result<PathBuf, WalError>>;

fn start_spare(dir: PathBuf, len: usize) -> SpareTask {
    glommio::spawn_local(create_spare(dir, len)).detach()
}

pub fn sync_dir(dir: &Path) -> Result<(), WalError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

impl Wal {
    /// Opens the log for appending after recovery: at `tail` if recovery
    /// found a segment, else in a new segment starting at `next_zxid`.
    pub async fn open(
        config: WalConfig,
        tail: Option<(PathBuf, usize)>,
        next_zxid: i64,
    ) -> Result<Wal, WalError> {
        let (path, pos) = match tail {
            Some(t) => t,
            None => (
                create_segment(
                    &config.dir,
                    next_zxid,
                    config.segment_bytes.max(SEGMENT_BYTES_MIN),
                )?,
                HEADER_LEN,
            ),
        };
        let segment_len = fs::metadata(&path).map_err(io_err(&path))?.len() as usize;
        let block_start = pos / BLOCK * BLOCK;
        let tail_bytes = {
            let all = fs::read(&path).map_err(io_err(&path))?;
            all[block_start..pos].to_vec()
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .dma_open(&path)
            .await
            .map_err(|e| glommio_err(&path, e))?;
        Ok(Wal {
            config,
            file,
            path,
            segment_len,
            cursor: SegmentCursor::new(pos, tail_bytes),
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
            .max(SEGMENT_BYTES_MIN)
            .max((HEADER_LEN + needed).div_ceil(BLOCK) * BLOCK)
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
                if fs::metadata(&spare)
                    .map(|m| m.len() as usize >= len)
                    .unwrap_or(false) =>
            {
                promote_spare(&self.config.dir, &spare, first_zxid)?
            }
            _ => create_segment(&self.config.dir, first_zxid, len)?,
        };
        self.switch_to(path).await?;
        self.spare = Some(start_spare(
            self.config.dir.clone(),
            self.segment_len_for(0),
        ));
        Ok(())
    }

    /// Makes the empty segment at `path` the one appends go to.
    async fn switch_to(&mut self, path: PathBuf) -> Result<(), WalError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .dma_open(&path)
            .await
            .map_err(|e| glommio_err(&path, e))?;
        let old = std::mem::replace(&mut self.file, file);
        let _ = old.close().await;
        self.segment_len = fs::metadata(&path).map_err(io_err(&path))?.len() as usize;
        self.path = path;
        self.cursor = SegmentCursor::new(HEADER_LEN, Vec::new());
        Ok(())
    }

    async fn write_and_sync(&mut self, bytes: &[u8]) -> Result<(), WalError> {
        let (offset, len) = self.cursor.write_for(bytes);
        let mut buf = self.file.alloc_dma_buffer(len);
        self.cursor.fill(bytes, buf.as_bytes_mut());
        let written = self
            .file
            .write_at(buf, offset as u64)
            .await
            .map_err(|e| glommio_err(&self.path, e))?;
        if written != len {
            return Err(WalError::Io {
                file: self.path.clone(),
                source: std::io::Error::other(format!("short write: {written} of {len} bytes")),
            });
        }
        if self.config.force_sync {
            self.file
                .fdatasync()
                .await
                .map_err(|e| glommio_err(&self.path, e))?;
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
                self.config.dir.clone(),
                self.segment_len_for(0),
            ));
        }
        let result = async {
            if self.cursor.pos() + bytes.len() > self.segment_len {
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
            let segments =
                crate::recovery::segments(&self.config.dir).map_err(|e| WalError::Io {
                    file: self.config.dir.clone(),
                    source: std::io::Error::other(e.to_string()),
                })?;
            for (_, file) in segments {
                fs::remove_file(&file).map_err(io_err(&file))?;
            }
            sync_dir(&self.config.dir)?;
            let path = create_segment(&self.config.dir, next_zxid, self.segment_len_for(0))?;
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
    pub async fn probe_sync_latency(&mut self) -> Result<Duration, WalError> {
        let mut best = Duration::MAX;
        for _ in 0..5 {
            let start = Instant::now();
            self.write_and_sync(&[]).await?;
            best = best.min(start.elapsed());
        }
        Ok(best)
    }
}
