//! The page a compare run leaves in docs/benchmarks/: what ran, on what
//! machine, the table, corral/ZooKeeper ratios and the plots.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use crate::Row;

/// Today's date (UTC) as YYYY-MM-DD, from the system clock.
pub fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to (year, month, day): Howard Hinnant's
/// `civil_from_days`, valid for the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The command line that ran, as `cargo run` spells it.
pub fn command() -> String {
    format!(
        "cargo run -p bench --release -- {}",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    )
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The sum of the processes' peak RSS (VmHWM), MiB.
pub fn peak_rss_mib(pids: &[u32]) -> f64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .filter_map(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .sum::<f64>()
        / 1024.0
}

/// A process's resident set from /proc/PID/status, KiB: VmRSS and its
/// anonymous and file-backed parts (RssAnon, RssFile: a file the server
/// maps, such as a snapshot, counts in VmRSS while its pages are cached).
/// Zeros if the process is gone.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rss {
    pub total_kib: u64,
    pub anon_kib: u64,
    pub file_kib: u64,
}

impl Rss {
    pub fn of(pid: u32) -> Rss {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Rss {
            total_kib: field("VmRSS:"),
            anon_kib: field("RssAnon:"),
            file_kib: field("RssFile:"),
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "rss_kib": self.total_kib, "anon_kib": self.anon_kib, "file_kib": self.file_kib,
        })
    }
}

fn first_line(path: &str, prefix: &str) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(prefix))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default()
}

fn git(args: &[&str]) -> String {
    std::process::Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// What ran, where, and how busy the machine was.
pub fn meta(
    args: &serde_json::Value,
    loadavg_before: &str,
    peak_rss: &[(String, f64)],
) -> serde_json::Value {
    serde_json::json!({
        "date": today(),
        "args": args,
        "commit": git(&["rev-parse", "--short", "HEAD"]),
        "tree_dirty": !git(&["status", "--porcelain", "--untracked-files=no"]).is_empty(),
        "cpu": first_line("/proc/cpuinfo", "model name"),
        "vcpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "mem": format!(
            "{:.0} GiB",
            first_line("/proc/meminfo", "MemTotal")
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .unwrap_or(0.0)
                / (1024.0 * 1024.0)
        ),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "loadavg_before": loadavg_before,
        "loadavg_after": loadavg(),
        "peak_rss_mib": peak_rss.iter().map(|(k, v)| serde_json::json!({"server": k, "mib": v})).collect::<Vec<_>>(),
    })
}

/// Where a page's figures come from: the command and the commit.
fn provenance(meta: &serde_json::Value) -> String {
    format!(
        "Generated by the bench driver; every figure below comes from this command, \
         at commit {}{}:\n\n```sh\ncargo build --release -p net -p loadgen\n{}\n```\n\n",
        meta["commit"].as_str().unwrap_or("?"),
        if meta["tree_dirty"].as_bool().unwrap_or(false) {
            " (with uncommitted changes in the tree)"
        } else {
            ""
        },
        meta["args"]["command"].as_str().unwrap_or("")
    )
}

/// The opening of the pages of `million`, `failover`, `kafka` and `ramp`:
/// the title, the command that produced every figure, and the machine,
/// with the warning that the client and the servers share its cores.
pub fn preamble(title: &str, meta: &serde_json::Value) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# {title} ({})\n", meta["date"].as_str().unwrap_or(""));
    md.push_str(&provenance(meta));
    let _ = writeln!(
        md,
        "## Machine\n\n{} vCPUs ({}), {} of memory, Linux {}. The client (bench \
         itself or corral-loadgen), the server(s) and anything else running share \
         these {} vCPUs, so every figure includes their competition for the CPU. \
         Load average before the run: {}; after: {}.\n",
        meta["vcpus"],
        meta["cpu"].as_str().unwrap_or("?"),
        meta["mem"].as_str().unwrap_or("?"),
        meta["kernel"].as_str().unwrap_or("?"),
        meta["vcpus"],
        meta["loadavg_before"].as_str().unwrap_or("?"),
        meta["loadavg_after"].as_str().unwrap_or("?"),
    );
    md
}

/// Writes a run's results as <dir>/<name>.json and its page as
/// <dir>/<name>.md (the page drawn by `page` from the JSON alone, so that
/// `bench report` can redraw it).
pub fn save(
    dir: &Path,
    name: &str,
    results: &serde_json::Value,
    page: fn(&Path, &str, &serde_json::Value) -> Result<String>,
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join(format!("{name}.json")),
        serde_json::to_string_pretty(results)?,
    )?;
    let md = page(dir, name, results)?;
    std::fs::write(dir.join(format!("{name}.md")), md)?;
    eprintln!("wrote {}", dir.join(format!("{name}.md")).display());
    Ok(())
}

/// `a / b`, or NaN (printed as such) when `b` is 0.
pub fn ratio(a: f64, b: f64) -> f64 {
    if b != 0.0 {
        a / b
    } else {
        f64::NAN
    }
}

/// The median of `v` (the mean of the middle two for an even count); None
/// for no values.
pub fn median(v: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

pub fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| server | workload | ops/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | server CPU µs/op | server RSS MiB | errors |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {:.0} | {} |",
            r.server,
            r.workload,
            r.ops_per_s,
            r.p50_ms,
            r.p90_ms,
            r.p99_ms,
            r.p999_ms,
            r.max_ms,
            r.server_cpu_us_per_op,
            r.server_rss_mib,
            r.errors
        );
    }
    s
}

/// corral against ZooKeeper, workload by workload, where both ran.
fn ratios(rows: &[Row]) -> String {
    let mut s = String::from(
        "| workload | throughput corral/ZooKeeper | p99 ZooKeeper/corral | server CPU per op ZooKeeper/corral |\n\
         |---|---|---|---|\n",
    );
    let mut workloads: Vec<&str> = Vec::new();
    for r in rows {
        if !workloads.contains(&r.workload.as_str()) {
            workloads.push(&r.workload);
        }
    }
    for w in workloads {
        let find = |k: &str| {
            rows.iter()
                .find(|r| r.workload == w && r.server.starts_with(k))
        };
        if let (Some(z), Some(c)) = (find("zookeeper"), find("corral")) {
            let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
            let _ = writeln!(
                s,
                "| {w} | {:.1}x | {:.1}x | {:.1}x |",
                ratio(c.ops_per_s, z.ops_per_s),
                ratio(z.p99_ms, c.p99_ms),
                ratio(z.server_cpu_us_per_op, c.server_cpu_us_per_op)
            );
        }
    }
    s
}

/// Writes <dir>/<name>.md and its plots from a results JSON.
pub fn write(dir: &Path, name: &str, results: &serde_json::Value) -> Result<()> {
    let rows: Vec<Row> = results["rows"]
        .as_array()
        .map(|a| a.iter().map(Row::from_json).collect::<Result<_>>())
        .transpose()?
        .unwrap_or_default();
    let meta = &results["meta"];
    let a = &meta["args"];
    let ensemble = a["ensemble"].as_bool().unwrap_or(false);
    let throughput_svg = format!("{name}-throughput.svg");
    let latency_svg = format!("{name}-latency.svg");
    crate::plot::throughput(&dir.join(&throughput_svg), &rows, ensemble)?;
    crate::plot::latency(&dir.join(&latency_svg), &rows)?;
    let cores = a["corral_cores"].as_u64().unwrap_or(0);
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# corral vs Apache ZooKeeper 3.8, {} ({})\n",
        if ensemble {
            "three-server ensembles"
        } else {
            "standalone"
        },
        meta["date"].as_str().unwrap_or("")
    );
    md.push_str(&provenance(meta));
    let _ = writeln!(
        md,
        "## Machine\n\n{} vCPUs ({}), {} of memory, Linux {}. The load generator, \
         the server(s) and anything else running share these cores, so saturated \
         throughput understates the servers; server CPU per operation \
         (utime+stime from /proc/PID/stat over the measured window, divided by \
         the operations measured) is the fairer comparison. Load average before \
         the run: {}; after: {}.\n",
        meta["vcpus"],
        meta["cpu"].as_str().unwrap_or("?"),
        meta["mem"].as_str().unwrap_or("?"),
        meta["kernel"].as_str().unwrap_or("?"),
        meta["loadavg_before"].as_str().unwrap_or("?"),
        meta["loadavg_after"].as_str().unwrap_or("?"),
    );
    let _ = writeln!(
        md,
        "## Configuration\n\n\
         - Both servers read the same zoo.cfg (only ports and dataDir differ): \
         tickTime={}, forceSync=yes, maxClientCnxns=0, no admin server{}.\n\
         - ZooKeeper: Debian's 3.8 jars, `java -Xms{h} -Xmx{h} -cp ... QuorumPeerMain zoo.cfg`, \
         its JIT warmed by {} s of read and {} s of write load before anything is measured.\n\
         - corral: `corral server --zoo-cfg zoo.cfg`{}.\n\
         - corral-loadgen: {} sessions x {} requests in flight{}, {} B values, {} keys; \
         {} s warm-up then {} s measured per run; `mixed` is 90 % getData, 10 % setData.\n\
         - All servers start first; then each workload runs against each server in turn.\n",
        a["tick_time_ms"],
        if ensemble {
            ", three servers on 127.0.0.1 (initLimit=10, syncLimit=5)"
        } else {
            ""
        },
        a["zk_jit_warmup_s"],
        a["zk_jit_warmup_s"],
        if cores > 0 {
            format!(" `--cores {cores}`")
        } else {
            " (every core)".to_string()
        },
        a["clients"],
        a["inflight"],
        if ensemble {
            ", spread over the three servers"
        } else {
            ""
        },
        a["value_size"],
        a["keys"],
        a["warmup_s"],
        a["duration_s"],
        h = a["zk_heap"].as_str().unwrap_or("?"),
    );
    let _ = writeln!(md, "## Results\n\n{}", table(&rows));
    if rows.iter().any(|r| r.workload == "watch") {
        let _ = writeln!(
            md,
            "`watch`: --clients watcher sessions hold a getData watch on one node that one \
             writer session changes with setData, one write at a time once every watcher has \
             re-armed; ops/s are events delivered per second, latency runs from the write's \
             reply to each event (an event that arrives before the writer's reply counts as \
             0), server CPU is per event. loadgen's own JSON also has the latency from the \
             write's send.\n"
        );
    }
    if ensemble {
        let _ = writeln!(
            md,
            "CPU and RSS are summed over the three servers of an ensemble.\n"
        );
    }
    let _ = writeln!(
        md,
        "Ratios (above 1 means corral is better):\n\n{}",
        ratios(&rows)
    );
    if let Some(peaks) = meta["peak_rss_mib"].as_array() {
        let list: Vec<String> = peaks
            .iter()
            .map(|p| {
                format!(
                    "{} {:.0} MiB",
                    p["server"].as_str().unwrap_or("?"),
                    p["mib"].as_f64().unwrap_or(0.0)
                )
            })
            .collect();
        let _ = writeln!(
            md,
            "Peak RSS over the whole run (VmHWM): {}.\n",
            list.join(", ")
        );
    }
    let sweep: Vec<(usize, Row)> = results["sweep"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            Ok((
                p["clients"].as_u64().context("sweep: clients")? as usize,
                Row::from_json(p)?,
            ))
        })
        .collect::<Result<_>>()?;
    let mut sweep_plot = String::new();
    if !sweep.is_empty() {
        let clients_svg = format!("{name}-clients.svg");
        crate::plot::clients(&dir.join(&clients_svg), &sweep, ensemble)?;
        sweep_plot = format!("![throughput against sessions]({clients_svg})\n\n");
        let _ = writeln!(
            md,
            "## Throughput against sessions\n\nThe same load with other session counts \
             ({} requests in flight per session, {} s measured per point), each point \
             alternating between the servers.\n\n{}",
            a["inflight"],
            a["sweep_duration_s"],
            sweep_table(&sweep)
        );
    }
    let _ = writeln!(
        md,
        "## Plots\n\n![throughput per workload]({throughput_svg})\n\n\
         ![latency percentiles per workload]({latency_svg})\n\n{sweep_plot}\
         Raw results: [{name}.json]({name}.json); `cargo run -p bench --release -- report \
         docs/benchmarks/{name}.json` redraws this page and the plots from them."
    );
    std::fs::write(dir.join(format!("{name}.md")), md)?;
    Ok(())
}

/// The sweep as one line per workload and session count: each server's
/// ops/s, p99 and CPU per op, and the throughput ratio.
fn sweep_table(points: &[(usize, Row)]) -> String {
    let mut keys: Vec<(&str, usize)> = Vec::new();
    for (n, r) in points {
        if !keys.contains(&(r.workload.as_str(), *n)) {
            keys.push((r.workload.as_str(), *n));
        }
    }
    let find = |w: &str, n: usize, zk: bool| {
        points
            .iter()
            .find(|(m, r)| *m == n && r.workload == w && r.server.starts_with("zookeeper") == zk)
            .map(|(_, r)| r)
    };
    let cell = |r: Option<&Row>| match r {
        Some(r) => format!(
            "{:.0} | {:.2} | {:.1}",
            r.ops_per_s, r.p99_ms, r.server_cpu_us_per_op
        ),
        None => "- | - | -".to_string(),
    };
    let mut t = String::from(
        "| workload | sessions | ZooKeeper ops/s | p99 ms | CPU µs/op | corral ops/s | p99 ms | CPU µs/op | throughput ratio |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for (w, n) in keys {
        let (zk, corral) = (find(w, n, true), find(w, n, false));
        let ratio = match (zk, corral) {
            (Some(z), Some(c)) if z.ops_per_s > 0.0 => format!("{:.1}x", c.ops_per_s / z.ops_per_s),
            _ => "-".to_string(),
        };
        let _ = writeln!(
            t,
            "| {w} | {n} | {} | {} | {ratio} |",
            cell(zk),
            cell(corral)
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::{civil_from_days, median, sweep_table};
    use crate::Row;

    fn row(server: &str, workload: &str, ops_per_s: f64) -> Row {
        Row {
            server: server.into(),
            workload: workload.into(),
            ops_per_s,
            p50_ms: 1.0,
            p90_ms: 2.0,
            p99_ms: 3.0,
            p999_ms: 4.0,
            max_ms: 5.0,
            server_cpu_us_per_op: 6.0,
            server_rss_mib: 7.0,
            errors: 0,
        }
    }

    #[test]
    fn the_sweep_table_pairs_the_servers_point_by_point() {
        let points = vec![
            (1, row("zookeeper", "read", 10_000.0)),
            (1, row("corral", "read", 120_000.0)),
            (4, row("zookeeper x3", "write", 2_000.0)),
            (4, row("corral x3", "write", 5_000.0)),
            (16, row("corral", "read", 400_000.0)),
        ];
        let t = sweep_table(&points);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 5, "{t}");
        assert_eq!(
            lines[2],
            "| read | 1 | 10000 | 3.00 | 6.0 | 120000 | 3.00 | 6.0 | 12.0x |"
        );
        assert_eq!(
            lines[3],
            "| write | 4 | 2000 | 3.00 | 6.0 | 5000 | 3.00 | 6.0 | 2.5x |"
        );
        // A point only one server has: no ratio.
        assert_eq!(
            lines[4],
            "| read | 16 | - | - | - | 400000 | 3.00 | 6.0 | - |"
        );
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_415), (2025, 11, 23));
    }
}
