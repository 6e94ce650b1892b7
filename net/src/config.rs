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
    /// corral's `commitLogBytes`: the same history bounded in bytes too.
    pub commit_log_bytes: usize,
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
    /// secureClientPort: client TLS (see `tls`). When it is set and
    /// clientPort is not, there is no plaintext port (`client_port` 0).
    pub secure_client_port: Option<u16>,
    /// The `ssl.*` keys, checked when secureClientPort is set.
    pub tls: Option<crate::tls::TlsSettings>,
    /// enforce.auth.enabled / enforce.auth.schemes: a session must
    /// authenticate with one of these schemes before anything but auth.
    pub enforce_auth_schemes: Vec<String>,
    /// Requests slower than this (receipt to reply) are logged with their
    /// opcode, path and latency; 0 turns the log off.
    pub slow_request_ms: u64,
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
            commit_log_bytes: engine::constants::HISTORY_BYTES_MAX,
            read_only_mode: false,
            snap_count: 100_000,
            snap_retain_count: 3,
            admin_enable_server: true,
            admin_server_address: "0.0.0.0".parse().expect("literal"),
            admin_server_port: 8080,
            admin_command_url: "/commands".to_string(),
            secure_client_port: None,
            tls: None,
            enforce_auth_schemes: Vec::new(),
            slow_request_ms: SLOW_REQUEST_MS_DEFAULT,
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

/// Requests slower than this are logged (`slowRequestThresholdMs`).
pub const SLOW_REQUEST_MS_DEFAULT: u64 = 1000;

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
    // corral serves TLS itself; ZooKeeper needs its Netty factory for it.
    "serverCnxnFactory",
    "ssl.keyStore.password",
    "ssl.trustStore.password",
    "ssl.authProvider",
    // Client certificates are checked against the trust store; the
    // client's host name is not (ZooKeeper's client hostname check).
    "ssl.hostnameVerification",
    "ssl.clientHostnameVerification",
];

impl Config {
    /// Parses zoo.cfg text; `base` resolves `myid` in dataDir. Returns the
    /// config and warnings (unknown keys).
    pub fn from_zoo_cfg(text: &str) -> Result<(Config, Vec<String>), ConfigError> {
        let mut c = Config::default();
        let mut warnings = Vec::new();
        let mut kv = BTreeMap::new();
        let mut ssl = SslKeys::default();
        let mut enforce_auth = false;
        let mut enforce_schemes: Option<Vec<String>> = None;
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
                // corral's own: the same history bounded in bytes; at least
                // what one round of proposals can hold.
                "commitLogBytes" => {
                    let n: usize = num(k, v)?;
                    let min = engine::constants::HISTORY_BYTES_MIN;
                    if n < min {
                        return Err(bad(k, v, format!("must be at least {min}")));
                    }
                    c.commit_log_bytes = n;
                }
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
                "secureClientPort" => c.secure_client_port = Some(num(k, v)?),
                "ssl.keyStore.location" => ssl.key_store = Some(PathBuf::from(v)),
                "ssl.trustStore.location" => ssl.trust_store = Some(PathBuf::from(v)),
                "ssl.keyStore.type" | "ssl.trustStore.type" => {
                    if !v.eq_ignore_ascii_case("PEM") {
                        return Err(bad(
                            k,
                            v,
                            "corral reads PEM files only (convert with openssl or keytool)",
                        ));
                    }
                }
                "ssl.clientAuth" => {
                    ssl.client_auth = Some(
                        crate::tls::ClientAuth::parse(v)
                            .ok_or_else(|| bad(k, v, "expected none, want or need"))?,
                    )
                }
                "ssl.protocol" => {
                    crate::tls::Protocol::parse(v)
                        .ok_or_else(|| bad(k, v, "expected TLSv1.2 or TLSv1.3"))?;
                }
                "ssl.enabledProtocols" => {
                    let mut list = Vec::new();
                    for p in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                        list.push(
                            crate::tls::Protocol::parse(p)
                                .ok_or_else(|| bad(k, v, "only TLSv1.2 and TLSv1.3 are offered"))?,
                        );
                    }
                    if list.is_empty() {
                        return Err(bad(k, v, "no protocol listed"));
                    }
                    ssl.protocols = Some(list);
                }
                "ssl.handshakeDetectionTimeoutMillis" => {
                    let ms: u64 = num(k, v)?;
                    if ms == 0 {
                        return Err(bad(k, v, "must be positive"));
                    }
                    ssl.handshake_timeout_ms = Some(ms);
                }
                "ssl.ciphersuites" => warnings.push(format!(
                    "{k} ignored: corral offers rustls's TLS 1.2/1.3 cipher suites"
                )),
                "ssl.crl" | "ssl.ocsp" => {
                    if boolean(k, v)? {
                        return Err(bad(k, v, "revocation checking is not supported"));
                    }
                }
                "client.portUnification" => {
                    if boolean(k, v)? {
                        return Err(bad(
                            k,
                            v,
                            "not supported: use clientPort and secureClientPort",
                        ));
                    }
                }
                "enforce.auth.enabled" | "zookeeper.enforce.auth.enabled" => {
                    enforce_auth = boolean(k, v)?
                }
                "enforce.auth.schemes" | "zookeeper.enforce.auth.schemes" => {
                    let schemes: Vec<String> = v
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect();
                    for s in &schemes {
                        if !matches!(s.as_str(), "digest" | "ip" | "x509" | "super") {
                            return Err(bad(k, v, format!("no authentication provider for scheme {s:?} (corral has digest, ip, x509)")));
                        }
                    }
                    enforce_schemes = Some(schemes);
                }
                "slowRequestThresholdMs" => c.slow_request_ms = num(k, v)?,
                _ if k.starts_with("server.") => c.servers.push(parse_server(k, v)?),
                _ if IGNORED_KEYS.contains(&k.as_str()) => {}
                _ => warnings.push(format!("unknown zoo.cfg key {k:?} ignored")),
            }
        }
        c.servers.sort_by_key(|s| s.id);
        if let Some(port) = c.secure_client_port {
            if !kv.contains_key("clientPort") {
                c.client_port = 0;
            } else if port == c.client_port {
                return Err(bad(
                    "secureClientPort",
                    &port.to_string(),
                    "the same port as clientPort",
                ));
            }
            c.tls = Some(ssl.settings()?);
        } else if ssl.key_store.is_some() {
            warnings.push("ssl.* keys ignored: secureClientPort is not set".to_string());
        }
        if enforce_auth {
            // ZooKeeper's default scheme list is empty, which refuses
            // startup there; corral asks for it explicitly too.
            match enforce_schemes {
                Some(s) if !s.is_empty() => c.enforce_auth_schemes = s,
                _ => {
                    return Err(bad(
                        "enforce.auth.schemes",
                        "",
                        "enforce.auth.enabled=true needs the schemes to accept, e.g. digest",
                    ))
                }
            }
        }
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

/// The `ssl.*` keys as read, turned into settings once all are known.
#[derive(Default)]
struct SslKeys {
    key_store: Option<PathBuf>,
    trust_store: Option<PathBuf>,
    client_auth: Option<crate::tls::ClientAuth>,
    protocols: Option<Vec<crate::tls::Protocol>>,
    handshake_timeout_ms: Option<u64>,
}

impl SslKeys {
    fn settings(self) -> Result<crate::tls::TlsSettings, ConfigError> {
        let key_store = self.key_store.ok_or_else(|| {
            bad(
                "ssl.keyStore.location",
                "",
                "secureClientPort needs a PEM key store (private key and certificate chain)",
            )
        })?;
        Ok(crate::tls::TlsSettings {
            key_store,
            trust_store: self.trust_store,
            // ZooKeeper's default: a client certificate is required.
            client_auth: self.client_auth.unwrap_or(crate::tls::ClientAuth::Need),
            protocols: self
                .protocols
                .unwrap_or_else(|| vec![crate::tls::Protocol::Tls13, crate::tls::Protocol::Tls12]),
            handshake_timeout: std::time::Duration::from_millis(
                self.handshake_timeout_ms.unwrap_or(5000),
            ),
        })
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
    fn tls_keys() {
        let (c, w) = Config::from_zoo_cfg(
            "secureClientPort=2281\nserverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n\
             ssl.keyStore.location=/k.pem\nssl.keyStore.type=PEM\nssl.trustStore.location=/ca.pem\n\
             ssl.trustStore.type=pem\nssl.clientAuth=want\nssl.enabledProtocols=TLSv1.3\n",
        )
        .unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.secure_client_port, Some(2281));
        assert_eq!(c.client_port, 0, "no clientPort: no plaintext port");
        let t = c.tls.unwrap();
        assert_eq!(t.client_auth, crate::tls::ClientAuth::Want);
        assert_eq!(t.protocols, vec![crate::tls::Protocol::Tls13]);
        let (c, _) = Config::from_zoo_cfg(
            "clientPort=2181\nsecureClientPort=2281\nssl.keyStore.location=/k.pem\n",
        )
        .unwrap();
        assert_eq!(c.client_port, 2181);
        assert_eq!(c.tls.unwrap().client_auth, crate::tls::ClientAuth::Need);
        for bad_cfg in [
            "secureClientPort=2281\n",
            "secureClientPort=2281\nssl.keyStore.location=/k\nssl.keyStore.type=JKS\n",
            "secureClientPort=2281\nssl.keyStore.location=/k\nssl.enabledProtocols=TLSv1\n",
            "secureClientPort=2281\nssl.keyStore.location=/k\nssl.clientAuth=sometimes\n",
            "clientPort=2281\nsecureClientPort=2281\nssl.keyStore.location=/k\n",
        ] {
            assert!(Config::from_zoo_cfg(bad_cfg).is_err(), "{bad_cfg}");
        }
    }

    #[test]
    fn commit_log_bytes() {
        let (c, _) = Config::from_zoo_cfg("commitLogBytes=134217728\n").unwrap();
        assert_eq!(c.commit_log_bytes, 128 << 20);
        assert!(Config::from_zoo_cfg("commitLogBytes=1024\n").is_err());
    }

    #[test]
    fn enforce_auth_keys() {
        let (c, _) =
            Config::from_zoo_cfg("enforce.auth.enabled=true\nenforce.auth.schemes=digest,x509\n")
                .unwrap();
        assert_eq!(c.enforce_auth_schemes, vec!["digest", "x509"]);
        let (c, _) = Config::from_zoo_cfg("enforce.auth.schemes=digest\n").unwrap();
        assert!(
            c.enforce_auth_schemes.is_empty(),
            "schemes alone do not enforce"
        );
        assert!(Config::from_zoo_cfg("enforce.auth.enabled=true\n").is_err());
        let e = Config::from_zoo_cfg("enforce.auth.enabled=true\nenforce.auth.schemes=sasl\n")
            .unwrap_err();
        assert!(e.to_string().contains("sasl"), "{e}");
    }

    #[test]
    fn malformed_value_names_the_key() {
        let e = Config::from_zoo_cfg("tickTime=abc\n").unwrap_err();
        assert!(e.to_string().starts_with("tickTime:"), "{e}");
    }
}
