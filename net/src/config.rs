//! Server configuration: Apache ZooKeeper's `zoo.cfg` keys plus corral's
//! flags. An unknown key is a warning; a malformed value is an error naming
//! the key (the binary exits 2).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct ServerEntry {
    pub id: u64,
    pub host: String,
    pub quorum_port: u16,
    pub election_port: u16,
    pub observer: bool,
    pub client: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub client_port: u16,
    pub client_port_address: IpAddr,
    pub data_dir: PathBuf,
    pub data_log_dir: Option<PathBuf>,
    pub tick_time_ms: u64,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub max_client_cnxns: usize,
    pub four_letter_words: Vec<String>,
    pub extended_types: bool,
    pub jute_max_buffer: usize,
    pub super_digest: Option<String>,
    pub servers: Vec<ServerEntry>,
    pub my_id: Option<u64>,
    pub force_sync: bool,
    pub pre_alloc_bytes: usize,
    pub container_check_interval_ms: u64,
    pub cores: usize,
    pub init_limit: u32,
    pub sync_limit: u32,
    pub commit_log_count: usize,
    /// Serve read-only clients while there is no quorum.
    pub read_only_mode: bool,
    /// ZooKeeper's snapCount: transactions between snapshots (each server
    /// uses a random point between half and all of it).
    pub snap_count: u64,
    /// ZooKeeper's autopurge.snapRetainCount (at least 3).
    pub snap_retain_count: usize,
    /// ZooKeeper's admin.enableServer: the HTTP admin server (commands,
    /// metrics, health). On by default, as in ZooKeeper 3.5+.
    pub admin_enable_server: bool,
    /// admin.serverAddress and admin.serverPort (ZooKeeper's defaults:
    /// 0.0.0.0:8080).
    pub admin_server_address: IpAddr,
    pub admin_server_port: u16,
    /// admin.commandURL: where the commands live (default `/commands`).
    pub admin_command_url: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            client_port: 2181,
            client_port_address: "0.0.0.0".parse().expect("literal"),
            data_dir: PathBuf::from("corral-data"),
            data_log_dir: None,
            tick_time_ms: 2000,
            min_session_timeout_ms: -1,
            max_session_timeout_ms: -1,
            max_client_cnxns: 60,
            // ZooKeeper's default whitelist is "srvr" only.
            four_letter_words: vec!["srvr".to_string()],
            extended_types: false,
            jute_max_buffer: engine::constants::JUTE_MAXBUFFER_DEFAULT,
            super_digest: None,
            servers: Vec::new(),
            my_id: None,
            force_sync: true,
            pre_alloc_bytes: storage::wal::SEGMENT_BYTES_DEFAULT,
            container_check_interval_ms: 60_000,
            cores: 0,
            init_limit: 10,
            sync_limit: 5,
            commit_log_count: engine::constants::HISTORY_TXNS_MAX,
            read_only_mode: false,
            snap_count: 100_000,
            snap_retain_count: 3,
            admin_enable_server: true,
            admin_server_address: "0.0.0.0".parse().expect("literal"),
            admin_server_port: 8080,
            admin_command_url: "/commands".to_string(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{key}: invalid value {value:?}: {why}")]
    Value {
        key: String,
        value: String,
        why: String,
    },
    #[error("line {line}: expected key=value, got {text:?}")]
    Syntax { line: usize, text: String },
}

fn bad(key: &str, value: &str, why: impl Into<String>) -> ConfigError {
    ConfigError::Value {
        key: key.to_string(),
        value: value.to_string(),
        why: why.into(),
    }
}

fn num<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, ConfigError> {
    v.trim()
        .parse()
        .map_err(|_| bad(key, v, "not a number in range"))
}

fn boolean(key: &str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" => Ok(true),
        "false" | "no" => Ok(false),
        _ => Err(bad(key, v, "expected true/false or yes/no")),
    }
}

/// Keys of zoo.cfg that ZooKeeper knows and corral accepts without acting
/// on them (they are listed in docs/OPERATIONS.md).
const IGNORED_KEYS: &[&str] = &[
    "autopurge.purgeInterval",
    "globalOutstandingLimit",
    "admin.idleTimeout",
    "standaloneEnabled",
    "reconfigEnabled",
    "metricsProvider.className",
    "quorumListenOnAllIPs",
    "electionAlg",
    "peerType",
    "syncEnabled",
    "leaderServes",
    "cnxTimeout",
    "localSessionsEnabled",
    "localSessionsUpgradingEnabled",
    "skipACL",
];

impl Config {
    /// Parses zoo.cfg text; `base` resolves `myid` in dataDir. Returns the
    /// config and warnings (unknown keys).
    pub fn from_zoo_cfg(text: &str) -> Result<(Config, Vec<String>), ConfigError> {
        let mut c = Config::default();
        let mut warnings = Vec::new();
        let mut kv = BTreeMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(ConfigError::Syntax {
                    line: i + 1,
                    text: raw.to_string(),
                });
            };
            kv.insert(k.trim().to_string(), v.trim().to_string());
        }
        for (k, v) in &kv {
            let v = v.as_str();
            match k.as_str() {
                "clientPort" => c.client_port = num(k, v)?,
                "clientPortAddress" => {
                    c.client_port_address = v.parse().map_err(|_| bad(k, v, "not an IP address"))?
                }
                "dataDir" => c.data_dir = PathBuf::from(v),
                "dataLogDir" => c.data_log_dir = Some(PathBuf::from(v)),
                "tickTime" => {
                    c.tick_time_ms = num(k, v)?;
                    if c.tick_time_ms == 0 {
                        return Err(bad(k, v, "must be positive"));
                    }
                }
                "minSessionTimeout" => c.min_session_timeout_ms = num(k, v)?,
                "maxSessionTimeout" => c.max_session_timeout_ms = num(k, v)?,
                "maxClientCnxns" => c.max_client_cnxns = num(k, v)?,
                "initLimit" => c.init_limit = num(k, v)?,
                "syncLimit" => c.sync_limit = num(k, v)?,
                "4lw.commands.whitelist" => {
                    c.four_letter_words = v
                        .split(',')
                        .map(|w| w.trim().to_string())
                        .filter(|w| !w.is_empty())
                        .collect()
                }
                "extendedTypesEnabled" | "zookeeper.extendedTypesEnabled" => {
                    c.extended_types = boolean(k, v)?
                }
                "jute.maxbuffer" => {
                    let n: usize = num(k, v)?;
                    if n == 0 || n > engine::constants::JUTE_MAXBUFFER_MAX {
                        return Err(bad(k, v, "must be between 1 and 64 MiB"));
                    }
                    c.jute_max_buffer = n;
                }
                "superDigest" | "zookeeper.DigestAuthenticationProvider.superDigest" => {
                    if !v.contains(':') {
                        return Err(bad(k, v, "expected user:base64digest"));
                    }
                    c.super_digest = Some(v.to_string());
                }
                "forceSync" => c.force_sync = boolean(k, v)?,
                // ZooKeeper's zookeeper.commitLogCount (a system property
                // there): transactions kept in memory to sync a follower
                // with a DIFF; one further behind gets a SNAP.
                "commitLogCount" | "zookeeper.commitLogCount" => c.commit_log_count = num(k, v)?,
                // ZooKeeper's readonlymode.enabled (a system property there).
                "readonlymode.enabled" | "zookeeper.readonlymode.enabled" => {
                    c.read_only_mode = boolean(k, v)?
                }
                "preAllocSize" => {
                    let kib: usize = num(k, v)?;
                    c.pre_alloc_bytes = kib * 1024;
                }
                "znode.container.checkIntervalMs" => c.container_check_interval_ms = num(k, v)?,
                "snapCount" => {
                    c.snap_count = num(k, v)?;
                    if c.snap_count < 2 {
                        return Err(bad(k, v, "must be at least 2"));
                    }
                }
                "autopurge.snapRetainCount" => c.snap_retain_count = num::<usize>(k, v)?.max(3),
                "admin.enableServer" => c.admin_enable_server = boolean(k, v)?,
                "admin.serverAddress" => {
                    c.admin_server_address =
                        v.parse().map_err(|_| bad(k, v, "not an IP address"))?
                }
                "admin.serverPort" => c.admin_server_port = num(k, v)?,
                "admin.commandURL" => {
                    if !v.starts_with('/') || v.len() < 2 || v.ends_with('/') {
                        return Err(bad(k, v, "expected a path such as /commands"));
                    }
                    c.admin_command_url = v.to_string();
                }
                _ if k.starts_with("server.") => c.servers.push(parse_server(k, v)?),
                _ if IGNORED_KEYS.contains(&k.as_str()) => {}
                _ => warnings.push(format!("unknown zoo.cfg key {k:?} ignored")),
            }
        }
        c.servers.sort_by_key(|s| s.id);
        Ok((c, warnings))
    }

    pub fn load(path: &Path) -> Result<(Config, Vec<String>), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let (mut c, w) = Config::from_zoo_cfg(&text)?;
        let myid = c.data_dir.join("myid");
        if let Ok(s) = std::fs::read_to_string(&myid) {
            c.my_id = Some(num("myid", s.trim())?);
        }
        Ok((c, w))
    }

    /// ZooKeeper's defaults: 2 and 20 ticks.
    pub fn session_timeout_bounds(&self) -> (i32, i32) {
        let min = if self.min_session_timeout_ms > 0 {
            self.min_session_timeout_ms
        } else {
            self.tick_time_ms as i32 * 2
        };
        let max = if self.max_session_timeout_ms > 0 {
            self.max_session_timeout_ms
        } else {
            self.tick_time_ms as i32 * 20
        };
        (min, max.max(min))
    }

    pub fn client_addr(&self) -> SocketAddr {
        SocketAddr::new(self.client_port_address, self.client_port)
    }

    pub fn admin_addr(&self) -> SocketAddr {
        SocketAddr::new(self.admin_server_address, self.admin_server_port)
    }

    pub fn snap_dir(&self) -> PathBuf {
        self.data_dir.join("snap")
    }

    pub fn log_dir(&self) -> PathBuf {
        self.data_log_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.clone())
            .join("log")
    }

    pub fn four_letter_word_allowed(&self, w: &str) -> bool {
        self.four_letter_words.iter().any(|x| x == "*" || x == w)
    }
}

fn parse_server(k: &str, v: &str) -> Result<ServerEntry, ConfigError> {
    let id: u64 = num(k, &k["server.".len()..])?;
    let (main, client) = match v.split_once(';') {
        Some((m, c)) => (m, Some(c.trim().to_string())),
        None => (v, None),
    };
    let parts: Vec<&str> = main.split(':').collect();
    if parts.len() < 3 {
        return Err(bad(
            k,
            v,
            "expected host:quorumPort:electionPort[:participant|:observer]",
        ));
    }
    let observer = match parts.get(3).copied() {
        None | Some("participant") => false,
        Some("observer") => true,
        Some(_) => return Err(bad(k, v, "role must be participant or observer")),
    };
    Ok(ServerEntry {
        id,
        host: parts[0].to_string(),
        quorum_port: num(k, parts[1])?,
        election_port: num(k, parts[2])?,
        observer,
        client,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_zoo_cfg() {
        let (c, w) = Config::from_zoo_cfg(
            "tickTime=1000\nclientPort=3000\ndataDir=/x\n4lw.commands.whitelist=ruok, srvr\n\
             server.1=127.0.0.1:2888:3888\nserver.2=h:1:2:observer;0.0.0.0:2182\nmystery=1\n",
        )
        .unwrap();
        assert_eq!(c.tick_time_ms, 1000);
        assert_eq!(c.client_port, 3000);
        assert_eq!(c.four_letter_words, vec!["ruok", "srvr"]);
        assert_eq!(c.servers.len(), 2);
        assert!(c.servers[1].observer);
        assert_eq!(c.session_timeout_bounds(), (2000, 20000));
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn admin_server_keys() {
        let (c, w) = Config::from_zoo_cfg("").unwrap();
        assert!(c.admin_enable_server);
        assert_eq!(c.admin_addr().to_string(), "0.0.0.0:8080");
        assert_eq!(c.admin_command_url, "/commands");
        assert!(w.is_empty());
        let (c, w) = Config::from_zoo_cfg(
            "admin.enableServer=false\nadmin.serverPort=9090\nadmin.serverAddress=127.0.0.1\n\
             admin.commandURL=/zk\nadmin.idleTimeout=30000\n",
        )
        .unwrap();
        assert!(!c.admin_enable_server);
        assert_eq!(c.admin_addr().to_string(), "127.0.0.1:9090");
        assert_eq!(c.admin_command_url, "/zk");
        assert!(w.is_empty(), "{w:?}");
        let e = Config::from_zoo_cfg("admin.serverPort=80800\n").unwrap_err();
        assert!(e.to_string().starts_with("admin.serverPort:"), "{e}");
    }

    #[test]
    fn malformed_value_names_the_key() {
        let e = Config::from_zoo_cfg("tickTime=abc\n").unwrap_err();
        assert!(e.to_string().starts_with("tickTime:"), "{e}");
    }
}
