//! The admin HTTP server of a real corral process: ZooKeeper's admin
//! commands as JSON after real client activity (the Rust `zookeeper-client`
//! crate), `/metrics` checked by a strict Prometheus text parser, health and
//! readiness, the admin keys of zoo.cfg, and bad HTTP that must get an error
//! without stopping anything.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use common::{client, free_port, Server};
use serde_json::{json, Value};
use zookeeper_client as zk;

static OPEN: &zk::CreateOptions<'static> =
    &zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
static EPHEMERAL: &zk::CreateOptions<'static> =
    &zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());

/// Every command corral serves, as `/commands` lists them.
const COMMANDS: &[&str] = &[
    "configuration",
    "connection_stat_reset",
    "connections",
    "create_snapshot",
    "dirs",
    "dump",
    "environment",
    "is_read_only",
    "last_snapshot",
    "leader",
    "log_info",
    "monitor",
    "observer_connection_stat_reset",
    "observers",
    "request_leadership",
    "ruok",
    "server_stats",
    "stat_reset",
    "stats",
    "voting_view",
    "watch_summary",
    "watches",
    "watches_by_path",
    "yield_leadership",
    "zabstate",
];

// ---------------------------------------------------------------- HTTP

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8 body")
    }

    fn json(&self) -> Value {
        assert_eq!(self.header("content-type"), Some("application/json"));
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("invalid JSON ({e}): {}", self.text()))
    }
}

/// Parses a whole response; Content-Length must match the body exactly.
fn parse_response(raw: &[u8]) -> Response {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head in {:?}", String::from_utf8_lossy(raw)));
    let head = std::str::from_utf8(&raw[..end]).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(parts.next(), Some("HTTP/1.1"), "{status_line}");
    let status: u16 = parts.next().unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').expect("header with a colon");
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    let r = Response {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    };
    assert_eq!(r.header("connection"), Some("close"));
    let length: usize = r.header("content-length").unwrap().parse().unwrap();
    // A HEAD response states the length of the body it leaves out.
    assert!(r.body.is_empty() || r.body.len() == length, "{r:?}");
    r
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the admin port");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

fn read_all(mut s: TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            // A reset after the response (we sent more than the server
            // read) still leaves the response we already have.
            Err(e) if !out.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => {
                return out
            }
            Err(e) => panic!("reading the response: {e}"),
        }
    }
}

/// Sends raw bytes as one request and reads the response.
fn exchange(port: u16, request: &[u8]) -> Response {
    let mut s = connect(port);
    // The server may answer (and stop reading) before all of an oversized
    // request is written.
    let _ = s.write_all(request);
    parse_response(&read_all(s))
}

fn get(port: u16, path: &str) -> Response {
    exchange(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n").as_bytes(),
    )
}

fn command(port: u16, name: &str) -> Value {
    let r = get(port, &format!("/commands/{name}"));
    assert_eq!(r.status, 200, "{name}: {}", r.text());
    let v = r.json();
    assert!(v["error"].is_null(), "{name}: {v}");
    v
}

/// The admin thread starts before recovery; commands need every core.
fn wait_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.write_all(b"GET /ready HTTP/1.1\r\n\r\n");
            if parse_response(&read_all(s)).status == 200 {
                return;
            }
        }
        assert!(Instant::now() < deadline, "/ready never answered 200");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start() -> (Server, u16) {
    let port = free_port();
    let server = Server::start(&[
        "--admin-port",
        &port.to_string(),
        "--admin-address",
        "127.0.0.1",
    ]);
    wait_ready(port);
    (server, port)
}

/// The command names `/commands` links to.
fn linked_commands(html: &str, base: &str) -> Vec<String> {
    html.split("<a href=\"")
        .skip(1)
        .map(|rest| {
            let href = &rest[..rest.find('"').expect("closing quote")];
            href.strip_prefix(&format!("{base}/"))
                .unwrap_or_else(|| panic!("link {href} outside {base}"))
                .to_string()
        })
        .collect()
}

// ----------------------------------------------------- Prometheus text

#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

#[derive(Debug, Default)]
struct Family {
    kind: String,
    help: bool,
    samples: Vec<Sample>,
}

fn valid_metric_name(n: &str) -> bool {
    let mut b = n.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

fn valid_label_name(n: &str) -> bool {
    let mut b = n.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => v.parse().map_err(|_| format!("bad value {v:?}")),
    }
}

/// `{a="x",b="y"}` -> labels and the rest of the line.
fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let Some(mut rest) = s.strip_prefix('{') else {
        return Ok((labels, s));
    };
    loop {
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((labels, r));
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let name = &rest[..eq];
        if !valid_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("unquoted label value")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    c => return Err(format!("bad escape \\{c}")),
                },
                (_, c) => value.push(c),
            }
        };
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} twice"));
        }
        rest = &rest[end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
            if rest.starts_with('}') {
                return Err("trailing comma in labels".into());
            }
        } else if !rest.starts_with('}') {
            return Err("labels not separated by commas".into());
        }
    }
}

/// A strict reader of the Prometheus text format (0.0.4) for what a server
/// should emit: HELP and TYPE once per family and before its samples, every
/// sample belonging to a typed family, a family's samples together, no
/// duplicate series, no timestamps, counters non-negative, histogram buckets
/// in increasing `le` with non-decreasing counts ending in `+Inf` equal to
/// `_count`, and `_sum`/`_count` for histograms and summaries.
fn parse_prometheus(text: &str) -> Result<BTreeMap<String, Family>, String> {
    if !text.ends_with('\n') {
        return Err("does not end with a newline".into());
    }
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut finished: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut series: BTreeSet<String> = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        let err = |why: String| format!("line {}: {why}: {line:?}", n + 1);
        if line.is_empty() {
            return Err(err("empty line".into()));
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let (keyword, rest) = rest.split_once(' ').ok_or_else(|| err("comment".into()))?;
            let (name, arg) = rest.split_once(' ').ok_or_else(|| err("no text".into()))?;
            if !valid_metric_name(name) {
                return Err(err("bad metric name".into()));
            }
            if finished.contains(name) {
                return Err(err("family continues after another".into()));
            }
            let f = families.entry(name.to_string()).or_default();
            if !f.samples.is_empty() {
                return Err(err(format!("{keyword} after samples")));
            }
            match keyword {
                "HELP" if !f.help => f.help = true,
                "TYPE" if f.kind.is_empty() => {
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&arg) {
                        return Err(err("unknown type".into()));
                    }
                    f.kind = arg.to_string();
                }
                _ => return Err(err(format!("repeated or unknown {keyword}"))),
            }
            if current.as_deref() != Some(name) {
                if let Some(c) = current.replace(name.to_string()) {
                    finished.insert(c);
                }
            }
            continue;
        }
        if line.starts_with('#') {
            return Err(err("stray comment".into()));
        }
        let name_end = line
            .find(['{', ' '])
            .ok_or_else(|| err("no value".into()))?;
        let name = &line[..name_end];
        if !valid_metric_name(name) {
            return Err(err("bad metric name".into()));
        }
        let (labels, rest) = parse_labels(&line[name_end..]).map_err(err)?;
        let value = rest
            .strip_prefix(' ')
            .ok_or_else(|| err("no space before the value".into()))?;
        if value.contains(' ') {
            return Err(err("timestamps or extra fields".into()));
        }
        let value = parse_value(value).map_err(err)?;
        let family = if families.get(name).is_some_and(|f| !f.kind.is_empty()) {
            name.to_string()
        } else {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    let base = name.strip_suffix(suffix)?;
                    let kind = families.get(base)?.kind.as_str();
                    let fits = kind == "histogram" || (kind == "summary" && *suffix != "_bucket");
                    fits.then(|| base.to_string())
                })
                .ok_or_else(|| err("sample of no typed family".into()))?
        };
        if current.as_deref() != Some(family.as_str()) {
            return Err(err(format!(
                "sample of {family} outside its family's block"
            )));
        }
        let key = format!("{name}{labels:?}");
        if !series.insert(key) {
            return Err(err("duplicate series".into()));
        }
        let f = families.get_mut(&family).expect("family exists");
        if f.kind == "counter" && (value.is_nan() || value < 0.0) {
            return Err(err("negative counter".into()));
        }
        if f.kind == "histogram" && name.ends_with("_bucket") && !labels.contains_key("le") {
            return Err(err("bucket without le".into()));
        }
        f.samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    for (name, f) in &families {
        if f.kind.is_empty() {
            return Err(format!("{name}: HELP without TYPE"));
        }
        if f.samples.is_empty() {
            return Err(format!("{name}: no samples"));
        }
        if f.kind == "histogram" {
            check_histogram(name, f)?;
        }
        if f.kind == "summary" {
            for suffix in ["_sum", "_count"] {
                let want = format!("{name}{suffix}");
                if !f.samples.iter().any(|s| s.name == want) {
                    return Err(format!("{name}: no {want}"));
                }
            }
        }
    }
    Ok(families)
}

fn check_histogram(name: &str, f: &Family) -> Result<(), String> {
    // Buckets grouped by their labels other than `le`.
    let mut groups: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for s in f.samples.iter().filter(|s| s.name.ends_with("_bucket")) {
        let mut rest = s.labels.clone();
        let le = parse_value(&rest.remove("le").expect("checked"))?;
        groups
            .entry(format!("{rest:?}"))
            .or_default()
            .push((le, s.value));
    }
    if groups.is_empty() {
        return Err(format!("{name}: no buckets"));
    }
    for (labels, buckets) in groups {
        for w in buckets.windows(2) {
            if w[0].0 >= w[1].0 {
                return Err(format!("{name}{labels}: le not increasing"));
            }
            if w[0].1 > w[1].1 {
                return Err(format!("{name}{labels}: bucket counts decrease"));
            }
        }
        let (last_le, inf) = *buckets.last().expect("non-empty");
        if last_le != f64::INFINITY {
            return Err(format!("{name}{labels}: no +Inf bucket"));
        }
        let find = |suffix: &str| {
            f.samples.iter().find(|s| {
                s.name == format!("{name}{suffix}") && format!("{:?}", s.labels) == labels
            })
        };
        let count = find("_count").ok_or(format!("{name}{labels}: no _count"))?;
        if count.value != inf {
            return Err(format!(
                "{name}{labels}: +Inf bucket {inf} != _count {}",
                count.value
            ));
        }
        find("_sum").ok_or(format!("{name}{labels}: no _sum"))?;
    }
    Ok(())
}

/// The value of an unlabelled sample.
fn value(m: &BTreeMap<String, Family>, name: &str) -> f64 {
    m.values()
        .flat_map(|f| &f.samples)
        .find(|s| s.name == name && s.labels.is_empty())
        .unwrap_or_else(|| panic!("no sample {name}"))
        .value
}

/// The sum of a family's samples whose labels include `with`.
fn sum_where(m: &BTreeMap<String, Family>, name: &str, with: (&str, &str)) -> f64 {
    m[name]
        .samples
        .iter()
        .filter(|s| s.labels.get(with.0).map(String::as_str) == Some(with.1))
        .map(|s| s.value)
        .sum()
}

#[test]
fn the_prometheus_parser_is_strict() {
    let ok = "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n\
              h_sum 3\nh_count 2\n# TYPE c counter\nc{core=\"0\"} 1\n";
    parse_prometheus(ok).unwrap();
    for (bad, why) in [
        ("c 1\n", "no TYPE"),
        ("# TYPE c counter\nc -1\n", "negative counter"),
        ("# TYPE c counter\nc 1 1700000000\n", "timestamp"),
        ("# TYPE c counter\nc{a=\"x\",} 1\n", "trailing comma"),
        ("# TYPE c counter\nc{a=x} 1\n", "unquoted"),
        ("# TYPE c counter\nc 1\nc 2\n", "duplicate"),
        ("# TYPE c gauge\n# TYPE c gauge\nc 1\n", "two TYPEs"),
        ("# TYPE c gauge\nc 1\n# TYPE d gauge\nd 1\nc{x=\"1\"} 2\n", "split family"),
        ("# TYPE c gauge\nc 1", "no final newline"),
        (
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
            "decreasing buckets",
        ),
        (
            "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
            "+Inf != count",
        ),
        (
            "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
            "no +Inf",
        ),
        (
            "# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
            "le order",
        ),
        ("# TYPE s summary\ns_sum 1\n", "summary without count"),
    ] {
        assert!(parse_prometheus(bad).is_err(), "accepted ({why}): {bad:?}");
    }
}

// ------------------------------------------------------------- tests

#[test]
fn every_listed_command_answers_json_in_zookeepers_envelope() {
    let (_server, port) = start();
    let list = get(port, "/commands");
    assert_eq!(list.status, 200);
    assert!(list
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    let names = linked_commands(&list.text(), "/commands");
    assert_eq!(names, COMMANDS, "{}", list.text());
    assert_eq!(get(port, "/commands/").text(), list.text());
    // No snapshot yet: ZooKeeper's Long.toHexString(-1). (Asked before the
    // loop below, whose create_snapshot writes one.)
    assert_eq!(
        command(port, "last_snapshot")["zxid"],
        json!("ffffffffffffffff")
    );

    for name in COMMANDS {
        let r = get(port, &format!("/commands/{name}"));
        assert_eq!(r.status, 200, "{name}");
        let v = r.json();
        assert!(v.is_object(), "{name}: {v}");
        assert_eq!(v["command"], json!(name), "{name}: {v}");
        // A standalone ZooKeeper 3.8 answers `leader` with this error.
        let error = if *name == "leader" {
            json!("server is not initialized")
        } else {
            Value::Null
        };
        assert_eq!(v["error"], error, "{name}: {v}");
    }
    // The four-letter words (and ZooKeeper's other aliases) name the same
    // commands.
    for (alias, primary) in [
        ("ruok", "ruok"),
        ("srvr", "server_stats"),
        ("stat", "stats"),
        ("mntr", "monitor"),
        ("conf", "configuration"),
        ("config", "configuration"),
        ("cons", "connections"),
        ("crst", "connection_stat_reset"),
        ("srst", "stat_reset"),
        ("envi", "environment"),
        ("env", "environment"),
        ("wchs", "watch_summary"),
        ("wchc", "watches"),
        ("wchp", "watches_by_path"),
        ("dump", "dump"),
        ("dirs", "dirs"),
        ("isro", "is_read_only"),
        ("lsnp", "last_snapshot"),
        ("csnp", "create_snapshot"),
        ("lgif", "log_info"),
        ("rqld", "request_leadership"),
        ("ydld", "yield_leadership"),
    ] {
        assert_eq!(command(port, alias)["command"], json!(primary), "{alias}");
    }
    // As ZooKeeper: an unknown command is a 200 whose error says so.
    let r = get(port, "/commands/nosuch");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"command": "nosuch", "error": "Unknown command: nosuch"})
    );
    // Standalone answers, as ZooKeeper 3.8 standalone gives them.
    assert_eq!(command(port, "isro")["read_only"], json!(false));
    assert_eq!(command(port, "zabstate")["voting"], json!(false));
    assert_eq!(command(port, "observers")["synced_observers"], json!(0));
    assert_eq!(command(port, "voting_view")["current_config"], json!({}));

    let health = get(port, "/health");
    assert_eq!((health.status, health.text().as_str()), (200, "ok\n"));
    assert_eq!(get(port, "/ready").status, 200);
    let head = exchange(port, b"HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert!(
        head.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn commands_and_metrics_report_real_client_activity() {
    let (server, port) = start();
    let c = client(&server).await;
    c.create("/a", b"hello", OPEN).await.unwrap();
    c.create("/a/b", b"", OPEN).await.unwrap();
    c.create("/a/e", b"x", EPHEMERAL).await.unwrap();
    let (_, _, data_watch) = c.get_and_watch_data("/a").await.unwrap();
    let (_, child_watch) = c.list_and_watch_children("/a").await.unwrap();
    let (missing, exists_watch) = c.check_and_watch_stat("/missing").await.unwrap();
    assert!(missing.is_none());
    let sid = c.session_id().0;
    // More sessions, one watch each. Connections land on whichever core
    // the kernel picks; the admin server must add up every core.
    let mut others = Vec::new();
    for i in 0..4 {
        let o = client(&server).await;
        let path = format!("/w{i}");
        o.create(&path, b"", OPEN).await.unwrap();
        let (_, _, w) = o.get_and_watch_data(&path).await.unwrap();
        others.push((o.session_id().0, path, o, w));
    }
    let all_sessions: BTreeSet<i64> = std::iter::once(sid)
        .chain(others.iter().map(|(s, ..)| *s))
        .collect();
    let watched: Vec<(i64, String)> = others.iter().map(|(s, p, ..)| (*s, p.clone())).collect();
    // As ZooKeeper counts: 5 for a fresh tree (its node map holds the root
    // under "" and "/"), + /a, /a/b, /a/e + /w0../w3.
    let znodes = 12;

    let checks = tokio::task::spawn_blocking(move || {
        let mntr = command(port, "mntr");
        assert_eq!(mntr["znode_count"], json!(znodes), "{mntr}");
        assert_eq!(mntr["ephemerals_count"], json!(1));
        // data /a, child /a, exists /missing, one data watch per /wN.
        assert_eq!(mntr["watch_count"], json!(7));
        assert_eq!(mntr["global_sessions"], json!(5));
        assert_eq!(mntr["num_alive_connections"], json!(5));
        assert_eq!(mntr["server_state"], json!("standalone"));
        assert!(mntr["cnt_fsynctime"].as_u64().unwrap() >= 1, "{mntr}");

        let srvr = command(port, "srvr");
        assert_eq!(srvr["node_count"], json!(znodes));
        let stats = &srvr["server_stats"];
        assert_eq!(stats["num_alive_client_connections"], json!(5));
        assert_eq!(stats["server_state"], json!("standalone"));
        assert!(stats["packets_received"].as_u64().unwrap() >= 14, "{srvr}");
        assert!(
            stats["last_processed_zxid"].as_i64().unwrap() >= 12,
            "{srvr}"
        );
        assert!(stats["max_latency"].as_u64().is_some());

        let cons = command(port, "cons");
        let conns = cons["connections"].as_array().unwrap();
        let ids: BTreeSet<i64> = conns
            .iter()
            .map(|c| c["session_id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, all_sessions, "{cons}");
        for conn in conns {
            assert!(conn["remote_socket_address"]
                .as_str()
                .unwrap()
                .starts_with("127.0.0.1:"));
            assert_eq!(conn["session_timeout"], json!(10_000));
            assert!(conn["packets_received"].as_u64().unwrap() >= 2, "{conn}");
        }
        let stat = command(port, "stat");
        assert_eq!(stat["connections"].as_array().unwrap().len(), 5);
        assert_eq!(stat["node_count"], json!(znodes));

        let dump = command(port, "dump");
        assert_eq!(
            dump["session_id_to_ephemeral_paths"],
            json!({ sid.to_string(): ["/a/e"] })
        );
        let expiring: BTreeSet<i64> = dump["expiry_time_to_session_ids"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|ids| ids.as_array().unwrap().iter().map(|i| i.as_i64().unwrap()))
            .collect();
        assert_eq!(expiring, all_sessions, "{dump}");

        // As ZooKeeper's: data watches only, so the child watch on /a is
        // left out (mntr's watch_count above has it).
        let wchs = command(port, "wchs");
        assert_eq!(wchs["num_connections"], json!(5), "{wchs}");
        assert_eq!(wchs["num_paths"], json!(6), "{wchs}");
        assert_eq!(wchs["num_total_watches"], json!(6), "{wchs}");
        let wchc = command(port, "wchc");
        let by_session = &wchc["session_id_to_watched_paths"];
        assert_eq!(by_session[sid.to_string()], json!(["/a", "/missing"]));
        let wchp = command(port, "wchp");
        let by_path = &wchp["path_to_session_ids"];
        assert_eq!(by_path["/a"], json!([sid]));
        assert_eq!(by_path["/missing"], json!([sid]));
        for (s, path) in &watched {
            assert_eq!(by_session[s.to_string()], json!([path]));
            assert_eq!(by_path[path], json!([s]));
        }

        let conf = command(port, "conf");
        assert_eq!(conf["client_port"], json!(server.port));
        assert_eq!(conf["tick_time"], json!(2000));
        assert_eq!(conf["min_session_timeout"], json!(4000));
        assert_eq!(conf["max_session_timeout"], json!(40000));
        assert_eq!(
            conf["data_dir"],
            json!(server.data_dir.display().to_string())
        );
        assert!(command(port, "dirs")["logdir_size"].as_u64().unwrap() > 0);
        assert!(command(port, "envi")["zookeeper.version"]
            .as_str()
            .unwrap()
            .starts_with("3.9.0-corral"));

        // The same figures as the four-letter words on the client port.
        let fourlw = server.four_letter_word("mntr").unwrap();
        let size = fourlw
            .lines()
            .find_map(|l| l.strip_prefix("zk_approximate_data_size\t"))
            .unwrap();
        assert_eq!(
            mntr["approximate_data_size"],
            json!(size.parse::<i64>().unwrap())
        );

        let text = get(port, "/metrics");
        assert_eq!(text.status, 200);
        assert_eq!(
            text.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        let m = parse_prometheus(&text.text()).unwrap_or_else(|e| panic!("{e}\n{}", text.text()));
        assert_eq!(value(&m, "znode_count"), znodes as f64);
        assert_eq!(value(&m, "ephemerals_count"), 1.0);
        assert_eq!(value(&m, "watch_count"), 7.0);
        assert_eq!(value(&m, "global_sessions"), 5.0);
        assert_eq!(value(&m, "num_alive_connections"), 5.0);
        assert_eq!(value(&m, "corral_ready"), 1.0);
        // 7 creates; a createSession is not a request of a session.
        assert!(sum_where(&m, "corral_requests_total", ("kind", "write")) >= 7.0);
        assert!(sum_where(&m, "corral_requests_total", ("kind", "read")) >= 7.0);
        assert_eq!(
            sum_where(&m, "corral_core_connections", ("core", "0"))
                + sum_where(&m, "corral_core_connections", ("core", "1")),
            5.0
        );
        // 7 creates and 5 session creations, each a transaction.
        assert!(value(&m, "corral_group_commit_batch_transactions_sum") >= 12.0);
        let syncs = value(&m, "corral_log_sync_duration_seconds_count");
        assert!(syncs >= 1.0);
        assert_eq!(value(&m, "fsynctime_count"), syncs);
        assert!(value(&m, "corral_group_commit_batch_bytes_sum") > 0.0);
        assert!(value(&m, "corral_write_latency_seconds_count") >= 7.0);
        assert_eq!(value(&m, "corral_sessions_expired_total"), 0.0);
        assert_eq!(value(&m, "corral_connections_throttled_total"), 0.0);

        // stat_reset forgets the latency figures on every core.
        command(port, "stat_reset");
        let after = command(port, "srvr");
        assert_eq!(after["server_stats"]["max_latency"], json!(0), "{after}");
        assert_eq!(after["server_stats"]["avg_latency"], json!(0.0), "{after}");
        command(port, "crst");
        for conn in command(port, "cons")["connections"].as_array().unwrap() {
            // Only pings can have arrived since.
            assert!(conn["packets_received"].as_u64().unwrap() <= 2, "{conn}");
        }
        server
    })
    .await
    .unwrap();
    drop((data_watch, child_watch, exists_watch, others, c));
    drop(checks);
}

#[test]
fn bad_http_gets_errors_and_the_server_keeps_serving() {
    let (server, port) = start();
    assert_eq!(get(port, "/nope").status, 404);
    assert_eq!(get(port, "/commandsx").status, 404);
    assert_eq!(get(port, "/").status, 404);
    let post = exchange(
        port,
        b"POST /commands/ruok HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
    );
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    assert_eq!(exchange(port, b"GET /metrics HTTP/2.0\r\n\r\n").status, 505);
    assert_eq!(exchange(port, b"GET /metrics\r\n\r\n").status, 400);
    assert_eq!(
        exchange(port, b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n").status,
        400
    );
    // A TLS ClientHello, then a blank line's bytes.
    assert_eq!(
        exchange(
            port,
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"
        )
        .status,
        400
    );
    // Garbage and then the end of input.
    let mut s = connect(port);
    s.write_all(b"\x00\xff\xfe garbage with no end of head")
        .unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    assert_eq!(parse_response(&read_all(s)).status, 400);
    // An oversized head is refused without being read to its end.
    let big = format!(
        "GET /metrics HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(256 * 1024)
    );
    assert_eq!(exchange(port, big.as_bytes()).status, 431);

    // Clients that never finish their request hold a connection each until
    // the request timeout. With every slot held, one more is answered 503 at
    // once instead of waiting. (Which of 17 connections is the one over the
    // limit is up to the kernel's accept order, not ours.) First let the
    // server finish with the requests above: it drains a connection briefly
    // after answering, and that would hold a slot.
    std::thread::sleep(Duration::from_millis(500));
    let stalled: Vec<TcpStream> = (0..17)
        .map(|_| {
            let mut s = connect(port);
            s.write_all(b"GET /metr").unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let answered_at_once: Vec<usize> = stalled
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            s.set_nonblocking(true).unwrap();
            let ready = s.peek(&mut [0u8; 1]).is_ok();
            s.set_nonblocking(false).unwrap();
            ready
        })
        .map(|(i, _)| i)
        .collect();
    assert_eq!(answered_at_once.len(), 1, "{answered_at_once:?}");
    let statuses: Vec<u16> = stalled
        .into_iter()
        .map(|s| parse_response(&read_all(s)).status)
        .collect();
    let mut expected = vec![408; 17];
    expected[answered_at_once[0]] = 503;
    assert_eq!(statuses, expected);
    assert_eq!(get(port, "/health").status, 200);

    // Through all of it, clients were served and the admin server works.
    assert_eq!(server.four_letter_word("ruok").unwrap(), "imok");
    let _session = common::raw::session(&server);
    assert_eq!(command(port, "ruok")["command"], json!("ruok"));
    assert_eq!(command(port, "mntr")["num_alive_connections"], json!(1));
}

#[test]
fn a_busy_admin_port_is_logged_and_clients_are_still_served() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let server = Server::start(&[
        "--admin-port",
        &port.to_string(),
        "--admin-address",
        "127.0.0.1",
    ]);
    assert!(
        server.log().contains("cannot start the admin server"),
        "{}",
        server.log()
    );
    assert_eq!(server.four_letter_word("ruok").unwrap(), "imok");
    let (_session, reply) = common::raw::connect(&server, 10_000, 0, &[0u8; 16]);
    // A connect response: protocol version, timeout, a session id.
    assert_eq!(&reply[4..8], &10_000i32.to_be_bytes());
    assert_ne!(&reply[8..16], &[0u8; 8]);
}

#[test]
fn zoo_cfg_sets_the_admin_port_and_command_url_or_turns_it_off() {
    let dir = std::env::temp_dir();
    let port = free_port();
    let cfg = dir.join(format!("corral-admin-{}-{port}.cfg", std::process::id()));
    std::fs::write(
        &cfg,
        format!("admin.serverPort={port}\nadmin.commandURL=/zk\nadmin.idleTimeout=30000\n"),
    )
    .unwrap();
    let server = Server::start(&[
        "--zoo-cfg",
        cfg.to_str().unwrap(),
        "--admin-address",
        "127.0.0.1",
    ]);
    assert!(
        !server.log().contains("unknown zoo.cfg key"),
        "{}",
        server.log()
    );
    wait_ready(port);
    let list = get(port, "/zk");
    assert_eq!(linked_commands(&list.text(), "/zk"), COMMANDS);
    assert_eq!(get(port, "/zk/ruok").json()["command"], json!("ruok"));
    assert_eq!(get(port, "/commands/ruok").status, 404);
    assert_eq!(get(port, "/metrics").status, 200);
    drop(server);

    let off = free_port();
    std::fs::write(
        &cfg,
        format!("admin.enableServer=false\nadmin.serverPort={off}\n"),
    )
    .unwrap();
    let server = Server::start(&[
        "--zoo-cfg",
        cfg.to_str().unwrap(),
        "--admin-address",
        "127.0.0.1",
    ]);
    assert!(server.log().contains("admin server disabled"));
    assert!(TcpStream::connect(("127.0.0.1", off)).is_err());
    assert_eq!(server.four_letter_word("ruok").unwrap(), "imok");
    let _ = std::fs::remove_file(&cfg);
}

/// The status of `GET path`, or None if the port does not answer (the
/// process is restarting).
fn try_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes())
        .ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let line = std::str::from_utf8(&out).ok()?.lines().next()?.to_string();
    line.split(' ').nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_answers_503_until_recovery_is_done() {
    let port = free_port();
    let mut server = Server::start(&[
        "--admin-port",
        &port.to_string(),
        "--admin-address",
        "127.0.0.1",
    ]);
    wait_ready(port);
    // Enough log to make the replay at the next start take a while.
    let c = client(&server).await;
    c.create("/f", b"", OPEN).await.unwrap();
    for chunk in 0..20 {
        let paths: Vec<String> = (0..1000).map(|i| format!("/f/{chunk}-{i}")).collect();
        // Sent as they are called: 1000 pipelined creates.
        let pending: Vec<_> = paths
            .iter()
            .map(|p| c.create(p, &[7u8; 100], OPEN))
            .collect();
        for p in pending {
            p.await.unwrap();
        }
    }
    drop(c);

    server.kill();
    // The watcher stops once it has itself seen the server ready: stopping
    // it when the test thread sees ready could miss that last state.
    let watcher = {
        std::thread::spawn(move || {
            let mut seen: Vec<Option<u16>> = Vec::new();
            let mut while_recovering = None;
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            while std::time::Instant::now() < deadline {
                let s = try_status(port, "/ready");
                if s == Some(503) && while_recovering.is_none() {
                    let srvr = get(port, "/commands/srvr").json();
                    let health = try_status(port, "/health");
                    let metrics = get(port, "/metrics").text();
                    while_recovering = Some((srvr, health, metrics));
                }
                if seen.last() != Some(&s) {
                    seen.push(s);
                }
                if s == Some(200) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            (seen, while_recovering)
        })
    };
    let server = tokio::task::spawn_blocking(move || {
        server.restart();
        server
    })
    .await
    .unwrap();
    wait_ready(port);
    let (seen, while_recovering) = watcher.join().unwrap();
    // Down, then up and not ready while it replays, then ready for good.
    let answered: Vec<u16> = seen.iter().flatten().copied().collect();
    assert_eq!(answered, [503, 200], "{seen:?}");
    assert!(
        server.log().contains("recovered from the log"),
        "{}",
        server.log()
    );
    let (srvr, health, metrics) = while_recovering.unwrap();
    assert_eq!(health, Some(200));
    assert_eq!(
        srvr,
        json!({
            "command": "srvr",
            "error": "This ZooKeeper instance is not currently serving requests"
        })
    );
    let m = parse_prometheus(&metrics).unwrap();
    assert_eq!(value(&m, "corral_ready"), 0.0);
    assert!(
        !m.contains_key("znode_count"),
        "no tree figures before recovery"
    );

    let mntr = command(port, "mntr");
    // A fresh tree counts 5 (the root is keyed twice), + /f + 20,000.
    assert_eq!(mntr["znode_count"], json!(5 + 1 + 20_000));
    let m = parse_prometheus(&get(port, "/metrics").text()).unwrap();
    // The creates, and the session's creation (its close may not have
    // made it before the kill).
    assert!(value(&m, "corral_recovery_transactions") >= 20_002.0);
    assert!(value(&m, "corral_recovery_duration_seconds") > 0.0);
}

/// ClickHouse Keeper's `csnp` and `lgif`, as four-letter words and admin
/// commands: a snapshot taken on request at the last committed zxid, and
/// the log's extent, which moves with writes and snapshots.
#[tokio::test(flavor = "multi_thread")]
async fn csnp_takes_a_snapshot_now_and_lgif_reports_the_log() {
    let (mut server, port) = start();
    let c = client(&server).await;
    for i in 0..20 {
        c.create(&format!("/csnp{i}"), b"x", OPEN).await.unwrap();
    }
    let fields = |text: &str| -> std::collections::BTreeMap<String, i64> {
        text.lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
            .collect()
    };
    let before = fields(&server.four_letter_word("lgif").unwrap());
    assert_eq!(before["last_snapshot_idx"], 0, "{before:?}");
    assert!(before["first_log_idx"] > 0, "{before:?}");
    assert_eq!(before["last_log_idx"], before["last_committed_log_idx"]);
    assert_eq!(before["last_log_term"], before["last_log_idx"] >> 32);

    let answer = server.four_letter_word("csnp").unwrap();
    let zxid: i64 = answer
        .strip_prefix("Snapshot creation scheduled with last committed log index ")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{answer}"));
    assert_eq!(zxid, before["last_committed_log_idx"]);
    let file = server
        .data_dir
        .join("snap")
        .join(format!("snapshot.{zxid:016x}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while fields(&server.four_letter_word("lgif").unwrap())["last_snapshot_idx"] != zxid {
        assert!(Instant::now() < deadline, "csnp wrote no snapshot");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        std::fs::read_dir(server.data_dir.join("snap"))
            .unwrap()
            .any(|e| e.unwrap().path() == file),
        "no {}",
        file.display()
    );

    // The admin command: one more write, one more snapshot at its zxid.
    let (stat, _) = c.create("/csnp-more", b"", OPEN).await.unwrap();
    let v = command(port, "create_snapshot");
    assert_eq!(v["scheduled"], json!(true), "{v}");
    assert_eq!(v["zxid"], json!(format!("{:x}", stat.czxid)));
    let info = command(port, "log_info");
    assert_eq!(info["last_log_idx"], json!(stat.czxid), "{info}");

    // A restart comes back from the requested snapshot plus the log.
    drop(c);
    server.restart();
    let c = client(&server).await;
    assert!(c.check_stat("/csnp19").await.unwrap().is_some());
    assert!(c.check_stat("/csnp-more").await.unwrap().is_some());
}

/// ClickHouse Keeper's `rqld` and `ydld` on a standalone server: there is
/// nobody to hand leadership to, so both refuse, as words and as admin
/// commands, and the server goes on serving.
#[tokio::test(flavor = "multi_thread")]
async fn rqld_and_ydld_refuse_on_a_standalone_server() {
    let (server, port) = start();
    let c = client(&server).await;
    assert_eq!(
        server.four_letter_word("ydld").unwrap(),
        "Failed to yield leadership: this server is the only voter; there is no one to hand over to.\n"
    );
    assert_eq!(
        server.four_letter_word("rqld").unwrap(),
        "Failed to request leadership: this server is the only voter; there is no one to hand over to.\n"
    );
    for name in ["yield_leadership", "request_leadership"] {
        let v = command(port, name);
        assert_eq!(v["moved"], json!(false), "{v}");
        assert!(v["message"].as_str().unwrap().contains("only voter"), "{v}");
    }
    c.create("/still-serving", b"", OPEN).await.unwrap();
}

/// A session that pipelines more writes than a session may have queued
/// (1000) stops being read for a while; the pause is counted.
#[test]
fn a_flooding_session_is_throttled_and_counted() {
    let (server, port) = start();
    let mut s = common::raw::session(&server);
    let mut create = Vec::new();
    create.extend_from_slice(&1i32.to_be_bytes());
    create.extend_from_slice(&1i32.to_be_bytes());
    common::raw::put_str(&mut create, b"/flood");
    common::raw::put_str(&mut create, b"");
    create.extend_from_slice(&1i32.to_be_bytes());
    create.extend_from_slice(&31i32.to_be_bytes());
    common::raw::put_str(&mut create, b"world");
    common::raw::put_str(&mut create, b"anyone");
    create.extend_from_slice(&0i32.to_be_bytes());
    let mut out = common::raw::frame(&create);
    const N: i32 = 5000;
    for xid in 2..N + 2 {
        let mut set = Vec::new();
        set.extend_from_slice(&xid.to_be_bytes());
        set.extend_from_slice(&5i32.to_be_bytes());
        common::raw::put_str(&mut set, b"/flood");
        common::raw::put_str(&mut set, b"v");
        set.extend_from_slice(&(-1i32).to_be_bytes());
        out.extend_from_slice(&common::raw::frame(&set));
    }
    s.write_all(&out).unwrap();
    for xid in 1..N + 2 {
        let reply = common::raw::read_frame(&mut s);
        assert_eq!(&reply[0..4], &xid.to_be_bytes(), "replies in order");
        assert_eq!(&reply[12..16], &0i32.to_be_bytes());
    }
    let m = parse_prometheus(&get(port, "/metrics").text()).unwrap();
    assert!(value(&m, "corral_connections_throttled_total") >= 1.0);
}
