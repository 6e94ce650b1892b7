//! A server's two ZAB epochs, persisted together ↔ ZooKeeper's
//! `acceptedEpoch` and `currentEpoch` files.
//!
//! ZooKeeper keeps two files written one after the other; corral keeps one
//! file, `epochs`, so the pair always changes atomically (the protocol needs
//! `accepted >= current` at every instant, including after a crash between
//! two writes):
//!
//! ```text
//! offset  size  field
//!      0     8  magic "CRLEPOCH"
//!      8     4  accepted epoch (u32, little-endian)
//!     12     4  current epoch  (u32, little-endian)
//!     16     4  crc32c of bytes 0..16
//! ```
//!
//! Written to `epochs.tmp`, fsynced, renamed over `epochs`, and the
//! directory fsynced: after a crash the file is either the old pair or the
//! new one. A missing file is a server that never took part in an epoch
//! (both 0); a corrupt one stops startup, since guessing an epoch could let
//! the server accept a stale leader.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"CRLEPOCH";
/// The file's name in the data directory.
pub const FILE: &str = "epochs";
const LEN: usize = 20;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Epochs {
    pub accepted: u32,
    pub current: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum EpochError {
    #[error("{file}: {source}")]
    Io {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file} is corrupt: {what}")]
    Corrupt { file: PathBuf, what: String },
}

fn encode(e: Epochs) -> [u8; LEN] {
    let mut b = [0u8; LEN];
    b[0..8].copy_from_slice(MAGIC);
    b[8..12].copy_from_slice(&e.accepted.to_le_bytes());
    b[12..16].copy_from_slice(&e.current.to_le_bytes());
    let crc = crc32c::crc32c(&b[0..16]);
    b[16..20].copy_from_slice(&crc.to_le_bytes());
    b
}

fn decode(b: &[u8]) -> Result<Epochs, String> {
    if b.len() != LEN {
        return Err(format!("{} bytes, expected {LEN}", b.len()));
    }
    if &b[0..8] != MAGIC {
        return Err("bad magic".into());
    }
    let crc = u32::from_le_bytes(b[16..20].try_into().expect("4 bytes"));
    if crc != crc32c::crc32c(&b[0..16]) {
        return Err("checksum mismatch".into());
    }
    let e = Epochs {
        accepted: u32::from_le_bytes(b[8..12].try_into().expect("4 bytes")),
        current: u32::from_le_bytes(b[12..16].try_into().expect("4 bytes")),
    };
    if e.current > e.accepted {
        return Err(format!(
            "current epoch {} is above the accepted epoch {}",
            e.current, e.accepted
        ));
    }
    Ok(e)
}

/// Reads the epochs in `dir` (both 0 if the server never had any).
pub fn read(dir: &Path) -> Result<Epochs, EpochError> {
    let file = dir.join(FILE);
    match fs::read(&file) {
        Ok(b) => decode(&b).map_err(|what| EpochError::Corrupt { file, what }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Epochs::default()),
        Err(source) => Err(EpochError::Io { file, source }),
    }
}

/// Replaces the epochs in `dir` durably and atomically.
pub fn write(dir: &Path, e: Epochs) -> Result<(), EpochError> {
    assert!(
        e.current <= e.accepted,
        "current epoch above accepted: {e:?}"
    );
    let io = |file: PathBuf| move |source| EpochError::Io { file, source };
    let tmp = dir.join(format!("{FILE}.tmp"));
    let path = dir.join(FILE);
    let mut f = fs::File::create(&tmp).map_err(io(tmp.clone()))?;
    f.write_all(&encode(e)).map_err(io(tmp.clone()))?;
    f.sync_all().map_err(io(tmp.clone()))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(io(path.clone()))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("corral-epoch-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn missing_is_zero_and_writes_read_back() {
        let d = dir("rw");
        assert_eq!(read(&d).unwrap(), Epochs::default());
        for (accepted, current) in [(1, 0), (1, 1), (7, 6), (u32::MAX, u32::MAX)] {
            write(&d, Epochs { accepted, current }).unwrap();
            assert_eq!(read(&d).unwrap(), Epochs { accepted, current });
        }
        assert!(!d.join("epochs.tmp").exists());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn every_damaged_file_is_refused() {
        let d = dir("bad");
        let good = encode(Epochs {
            accepted: 5,
            current: 4,
        });
        for i in 0..LEN {
            for bit in 0..8 {
                let mut b = good;
                b[i] ^= 1 << bit;
                fs::write(d.join(FILE), b).unwrap();
                assert!(
                    matches!(read(&d), Err(EpochError::Corrupt { .. })),
                    "byte {i} bit {bit}"
                );
            }
        }
        for n in 0..LEN {
            fs::write(d.join(FILE), &good[..n]).unwrap();
            assert!(read(&d).is_err());
        }
        // A pair that breaks the protocol's invariant is refused too.
        let mut b = encode(Epochs {
            accepted: 5,
            current: 4,
        });
        b[8..12].copy_from_slice(&3u32.to_le_bytes());
        let crc = crc32c::crc32c(&b[0..16]);
        b[16..20].copy_from_slice(&crc.to_le_bytes());
        fs::write(d.join(FILE), b).unwrap();
        assert!(read(&d).is_err());
        fs::remove_dir_all(&d).unwrap();
    }
}
