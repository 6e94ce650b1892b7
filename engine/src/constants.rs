//! Every limit of the engine, in one place. Relationships between limits are
//! checked at compile time.

/// ZooKeeper's `jute.maxbuffer` default: 1 MiB - 1 (0xfffff). Requests larger
/// than this are refused; replies larger than this are turned into errors.
pub const JUTE_MAXBUFFER_DEFAULT: usize = 0xfffff;

/// Upper bound an operator may configure for `jute.maxbuffer`.
pub const JUTE_MAXBUFFER_MAX: usize = 64 * 1024 * 1024;

/// Operations in one multi or multiRead.
pub const MULTI_OPS_MAX: usize = 100_000;

/// Entries of one list in a request (ACLs, setWatches paths).
pub const LIST_ITEMS_MAX: usize = 1_000_000;

/// Bytes of log records handed to one group-commit write.
pub const BATCH_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Proposals handed to one group-commit write.
pub const BATCH_PROPOSALS_MAX: usize = 16 * 1024;

/// Transactions a server keeps in memory to sync a follower with a DIFF
/// (ZooKeeper's `zookeeper.commitLogCount` is 500 proposals; ours are
/// cheap, shared `Bytes`). A follower further behind gets a SNAP.
pub const HISTORY_TXNS_MAX: usize = 100_000;

/// Bytes of transactions (their encoded payloads) the DIFF history may hold
/// besides its count bound: 100,000 records of 1 KiB would otherwise pin
/// 100 MB. Whichever bound is reached first trims the oldest committed
/// records; a follower further behind gets a SNAP.
pub const HISTORY_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The smallest byte bound a configuration may set (`commitLogBytes`):
/// what the rounds a leader has in flight may hold.
pub const HISTORY_BYTES_MIN: usize = BATCH_BYTES_MAX * ROUNDS_IN_FLIGHT_MAX;

/// Rounds (batches) a leader proposes before the oldest commits.
pub const ROUNDS_IN_FLIGHT_MAX: usize = 8;

/// How long a leader asked to hand over leadership (`ydld`, `rqld`) waits
/// for a successor that holds everything it logged. It cuts no new rounds
/// meanwhile, so writes stall for at most this long if the handover fails.
pub const YIELD_WAIT_MS_MAX: u64 = 1_000;

/// ZooKeeper's default tickTime in milliseconds.
pub const TICK_TIME_MS_DEFAULT: u64 = 2000;

/// Length of a session password, as ZooKeeper's.
pub const SESSION_PASSWORD_LEN: usize = 16;

/// Maximal TTL of a TTL node: ZooKeeper stores it in the low 40 bits of
/// ephemeralOwner (`EphemeralType.TTL`, 0xFF in the top byte).
pub const TTL_MS_MAX: i64 = (1i64 << 40) - 1;

const _: () = assert!(JUTE_MAXBUFFER_DEFAULT <= JUTE_MAXBUFFER_MAX);
const _: () = assert!(BATCH_BYTES_MAX >= JUTE_MAXBUFFER_MAX / 16);
// The rounds a leader may have in flight fit in the history's byte bound,
// so that bound trims committed records rather than being exceeded by the
// uncommitted tail it must keep.
const _: () = assert!(HISTORY_BYTES_MAX >= HISTORY_BYTES_MIN);
