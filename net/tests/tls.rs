//! Client TLS (`secureClientPort`), enforce.auth and the slow-request log,
//! with the `zookeeper-client` crate (its rustls TLS) and raw sockets
//! against a real corral process.
//!
//! Certificates are made here with rcgen: a CA, the server's certificate
//! (localhost, 127.0.0.1), a client certificate, a client certificate of
//! another CA and an expired one.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{free_port, raw, Server};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use zookeeper_client as zk;

struct Issuer {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Issuer {
    fn new(name: &str) -> Issuer {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Issuer { cert, key }
    }

    /// A leaf certificate and its key, both PEM.
    fn issue(&self, cn: &str, sans: &[&str], expired: bool) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "corral tests");
        params.distinguished_name.push(DnType::CommonName, cn);
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

struct Pki {
    dir: PathBuf,
    ca: String,
    client: (String, String),
    rogue_client: (String, String),
    expired_client: (String, String),
    rogue_ca: String,
}

impl Pki {
    fn new() -> Pki {
        let dir = std::env::temp_dir().join(format!(
            "corral-tls-test-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = Issuer::new("corral test CA");
        let rogue = Issuer::new("rogue CA");
        let (cert, key) = ca.issue("localhost", &["localhost", "127.0.0.1"], false);
        std::fs::write(dir.join("server.pem"), format!("{key}{cert}")).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.cert.pem()).unwrap();
        Pki {
            ca: ca.cert.pem(),
            client: ca.issue("app-1", &[], false),
            rogue_client: rogue.issue("app-1", &[], false),
            expired_client: ca.issue("app-1", &[], true),
            rogue_ca: rogue.cert.pem(),
            dir,
        }
    }

    /// A zoo.cfg with both ports; `extra` lines appended.
    fn zoo_cfg(&self, secure_port: u16, extra: &str) -> PathBuf {
        let p = self.dir.join(format!("zoo-{secure_port}.cfg"));
        std::fs::write(
            &p,
            format!(
                "tickTime=2000\nclientPort=2181\nsecureClientPort={secure_port}\n\
                 serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n\
                 ssl.keyStore.location={}\nssl.keyStore.type=PEM\n\
                 ssl.trustStore.location={}\nssl.trustStore.type=PEM\n{extra}",
                self.dir.join("server.pem").display(),
                self.dir.join("ca.pem").display()
            ),
        )
        .unwrap();
        p
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start(pki: &Pki, extra_cfg: &str) -> (Server, u16) {
    let secure = free_port();
    let cfg = pki.zoo_cfg(secure, extra_cfg);
    let server = Server::start(&["--zoo-cfg", cfg.to_str().unwrap()]);
    (server, secure)
}

fn tls_options(ca: &str, identity: Option<&(String, String)>) -> zk::TlsOptions {
    // The client crate's rustls has both providers compiled in here.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut o = zk::TlsOptions::default().with_pem_ca(ca).unwrap();
    if let Some((cert, key)) = identity {
        o = o.with_pem_identity(cert, key).unwrap();
    }
    o
}

async fn tls_client(port: u16, options: zk::TlsOptions) -> Result<zk::Client, zk::Error> {
    zk::Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .with_connection_timeout(Duration::from_secs(3))
        .with_fail_eagerly()
        .with_tls(options)
        .secure_connect(&format!("127.0.0.1:{port}"))
        .await
}

fn count(log: &str, needle: &str) -> usize {
    log.matches(needle).count()
}

const OPEN: &zk::CreateOptions<'static> =
    &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_serves_verified_clients_and_refuses_the_rest() {
    let pki = Pki::new();
    let (server, secure) = start(&pki, "ssl.clientAuth=need\n");

    // A client with a certificate of the trusted CA: a session over TLS,
    // authenticated as its certificate's subject.
    let c = tls_client(secure, tls_options(&pki.ca, Some(&pki.client)))
        .await
        .expect("TLS session");
    c.create("/tls", b"over tls", OPEN).await.unwrap();
    let users = c.list_auth_users().await.unwrap();
    assert!(
        users
            .iter()
            .any(|u| u.scheme() == "x509" && u.user() == "CN=app-1,O=corral tests"),
        "{users:?}"
    );
    // An ACL naming the certificate: the TLS session may read, a plaintext
    // one may not.
    let only_app = [zk::Acl::new(
        zk::Permission::ALL,
        zk::AuthId::new("x509", "CN=app-1,O=corral tests"),
    )];
    let mode = zk::CreateMode::Persistent.with_acls(zk::Acls::new(&only_app));
    c.create("/app-only", b"secret", &mode).await.unwrap();
    assert_eq!(c.get_data("/app-only").await.unwrap().0, b"secret");

    // The plaintext port serves the same tree at the same time.
    let plain = common::client(&server).await;
    assert_eq!(plain.get_data("/tls").await.unwrap().0, b"over tls");
    assert_eq!(
        plain.get_data("/app-only").await.unwrap_err(),
        zk::Error::NoAuth
    );

    let before = count(&server.log(), "TLS handshake failed");
    // Refused: a certificate of another CA, an expired certificate, no
    // certificate at all.
    for (what, identity) in [
        ("rogue CA", Some(&pki.rogue_client)),
        ("expired", Some(&pki.expired_client)),
        ("no certificate", None),
    ] {
        let refused = match tls_client(secure, tls_options(&pki.ca, identity)).await {
            // TLS 1.3 finishes the client's side of the handshake before the
            // server has checked the certificate: the refusal then shows as
            // a connection that never carries a session.
            Ok(c) => c.get_data("/tls").await.is_err(),
            Err(_) => true,
        };
        assert!(refused, "{what}: a session was established");
    }
    // A client that does not trust the server's CA refuses the server.
    assert!(
        tls_client(secure, tls_options(&pki.rogue_ca, Some(&pki.client)))
            .await
            .is_err()
    );
    // Plaintext ZooKeeper on the TLS port: no session, the connection closes.
    let mut s = TcpStream::connect(("127.0.0.1", secure)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&raw::connect_request(0, 10_000, 0, &[0; 16]))
        .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(
        buf.len() < 20,
        "a plaintext connect got {} bytes back: {buf:?}",
        buf.len()
    );

    // Each refusal is a log line with the client's address.
    let log = server.log_with("TLS handshake failed", before + 4);
    assert!(
        count(&log, "TLS handshake failed") >= before + 4,
        "expected a log line per refused handshake:\n{log}"
    );
    // ... and the server keeps serving both ports.
    let again = tls_client(secure, tls_options(&pki.ca, Some(&pki.client)))
        .await
        .expect("TLS after refusals");
    assert_eq!(again.get_data("/tls").await.unwrap().0, b"over tls");
    plain.create("/after", b"", OPEN).await.unwrap();
    assert!(c.check_stat("/after").await.unwrap().is_some());
    let metrics_line = server.four_letter_word("mntr").unwrap();
    assert!(metrics_line.contains("zk_server_state"), "{metrics_line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_auth_none_and_want_accept_clients_without_a_certificate() {
    let pki = Pki::new();
    for auth in ["none", "want"] {
        let (_server, secure) = start(&pki, &format!("ssl.clientAuth={auth}\n"));
        let c = tls_client(secure, tls_options(&pki.ca, None))
            .await
            .unwrap_or_else(|e| panic!("clientAuth={auth}: {e}"));
        c.create("/x", b"1", OPEN).await.unwrap();
        let users = c.list_auth_users().await.unwrap();
        assert!(users.iter().all(|u| u.scheme() != "x509"), "{users:?}");
        if auth == "want" {
            // A certificate offered is still verified and used.
            let c = tls_client(secure, tls_options(&pki.ca, Some(&pki.client)))
                .await
                .unwrap();
            let users = c.list_auth_users().await.unwrap();
            assert!(users.iter().any(|u| u.scheme() == "x509"), "{users:?}");
        }
    }
}

#[test]
fn a_bad_key_store_stops_startup_with_a_clear_error() {
    let pki = Pki::new();
    let cfg = pki.dir.join("bad.cfg");
    std::fs::write(
        &cfg,
        format!(
            "clientPort={}\nsecureClientPort={}\nssl.keyStore.location={}\nssl.clientAuth=none\n",
            free_port(),
            free_port(),
            pki.dir.join("ca.pem").display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(["server", "--check-config", "--zoo-cfg"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("ca.pem") && err.contains("PRIVATE KEY"),
        "{err}"
    );
}

fn write_zoo_cfg(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("enforce.cfg");
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforce_auth_closes_unauthenticated_sessions() {
    let pki = Pki::new();
    let cfg = write_zoo_cfg(
        &pki.dir,
        "enforce.auth.enabled=true\nenforce.auth.schemes=digest\n",
    );
    let server = Server::start(&["--zoo-cfg", cfg.to_str().unwrap()]);

    // A session that never authenticates: its first request is answered
    // SessionClosedRequireSasl (-124) and the connection closes.
    let mut s = raw::session(&server);
    let mut req = Vec::new();
    req.extend_from_slice(&7i32.to_be_bytes());
    req.extend_from_slice(&4i32.to_be_bytes()); // getData
    raw::put_str(&mut req, b"/");
    req.push(0);
    s.write_all(&raw::frame(&req)).unwrap();
    let reply = raw::read_frame(&mut s);
    assert_eq!(&reply[0..4], &7i32.to_be_bytes(), "the request's xid");
    assert_eq!(&reply[12..16], &(-124i32).to_be_bytes(), "{reply:?}");
    assert!(raw::closed_by_server(s));

    // With digest auth first, everything works (zookeeper-client sends the
    // auth right after the handshake).
    let c = zk::Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .with_auth("digest", b"alice:secret")
        .connect(&server.addr())
        .await
        .unwrap();
    c.create("/enforced", b"ok", OPEN).await.unwrap();
    assert_eq!(c.get_data("/enforced").await.unwrap().0, b"ok");
    // An unauthenticated client of the crate never gets to use its session.
    let anon = zk::Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .connect(&server.addr())
        .await;
    if let Ok(anon) = anon {
        assert!(anon.get_data("/enforced").await.is_err());
    }
    let log = server.log_with("enforce.auth", 1);
    assert!(log.contains("enforce.auth"), "{log}");
    let mntr = server.four_letter_word("srvr").unwrap();
    assert!(mntr.contains("Mode"), "still serving: {mntr}");
}

#[test]
fn slow_requests_are_logged_with_opcode_path_and_latency_and_rate_limited() {
    let pki = Pki::new();
    let cfg = write_zoo_cfg(&pki.dir, "slowRequestThresholdMs=1\n");
    let server = Server::start(&["--zoo-cfg", cfg.to_str().unwrap()]);
    let mut s = raw::session(&server);
    // 3000 pipelined 1 KiB setData: the last ones wait behind thousands of
    // others, far longer than a millisecond, on any machine.
    let mut create = Vec::new();
    create.extend_from_slice(&1i32.to_be_bytes());
    create.extend_from_slice(&1i32.to_be_bytes()); // create
    raw::put_str(&mut create, b"/slow");
    raw::put_str(&mut create, b"");
    create.extend_from_slice(&1i32.to_be_bytes()); // one ACL: world:anyone, all
    create.extend_from_slice(&31i32.to_be_bytes());
    raw::put_str(&mut create, b"world");
    raw::put_str(&mut create, b"anyone");
    create.extend_from_slice(&0i32.to_be_bytes());
    let mut out = raw::frame(&create);
    const N: i32 = 3000;
    for xid in 2..N + 2 {
        let mut set = Vec::new();
        set.extend_from_slice(&xid.to_be_bytes());
        set.extend_from_slice(&5i32.to_be_bytes()); // setData
        raw::put_str(&mut set, b"/slow");
        raw::put_str(&mut set, &[7u8; 1024]);
        set.extend_from_slice(&(-1i32).to_be_bytes());
        out.extend_from_slice(&raw::frame(&set));
    }
    let started = std::time::Instant::now();
    s.write_all(&out).unwrap();
    for _ in 0..N + 1 {
        let reply = raw::read_frame(&mut s);
        assert_eq!(&reply[12..16], &0i32.to_be_bytes());
    }
    let log = server.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("slow request")).collect();
    assert!(!lines.is_empty(), "no slow request logged:\n{log}");
    let l = lines.last().unwrap();
    assert!(
        l.contains("op=setData") && l.contains("path=/slow") && l.contains("latency_ms="),
        "{l}"
    );
    // Rate-limited: at most 10 lines per second (of the server's clock)
    // that the run touched.
    let seconds = started.elapsed().as_secs() + 2;
    assert!(
        (lines.len() as u64) <= 10 * seconds,
        "{} lines in under {seconds} s",
        lines.len()
    );
}

/// `corral cli` over TLS, configured as zkCli is: `-client-configuration`
/// with the Java client's `zookeeper.client.secure` and PEM stores.
#[test]
fn corral_cli_connects_over_tls_with_a_client_configuration_file() {
    let pki = Pki::new();
    let (server, secure) = start(&pki, "ssl.clientAuth=need\n");
    let client_pem = pki.dir.join("client.pem");
    std::fs::write(&client_pem, format!("{}{}", pki.client.1, pki.client.0)).unwrap();
    let props = pki.dir.join("client.properties");
    std::fs::write(
        &props,
        format!(
            "zookeeper.client.secure=true\n\
             zookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty\n\
             zookeeper.ssl.keyStore.location={}\nzookeeper.ssl.keyStore.type=PEM\n\
             zookeeper.ssl.trustStore.location={}\nzookeeper.ssl.trustStore.type=PEM\n",
            client_pem.display(),
            pki.dir.join("ca.pem").display()
        ),
    )
    .unwrap();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_corral"))
            .arg("cli")
            .arg("-client-configuration")
            .arg(&props)
            .arg("-server")
            .arg(format!("127.0.0.1:{secure}"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let (code, _) = cli(&["create", "/from-cli", "hello"]);
    assert_eq!(code, Some(0));
    let (code, out) = cli(&["get", "/from-cli"]);
    assert_eq!(code, Some(0));
    assert!(out.lines().any(|l| l == "hello"), "{out}");
    let (_, out) = cli(&["whoami"]);
    assert!(out.contains("x509") && out.contains("CN=app-1"), "{out}");
    // The same data on the plaintext port, without the configuration.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(["cli", "-server", &server.addr(), "get", "/from-cli"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l == "hello"),
        "{out:?}"
    );
    // Without a key store the server (clientAuth=need) refuses the CLI.
    std::fs::write(
        &props,
        format!(
            "zookeeper.client.secure=true\nzookeeper.ssl.trustStore.location={}\n",
            pki.dir.join("ca.pem").display()
        ),
    )
    .unwrap();
    let (code, _) = cli(&["-timeout", "2000", "get", "/from-cli"]);
    assert_ne!(code, Some(0));
}
