//! SVG charts, drawn with plotters: of a compare run, throughput per
//! workload (one bar per server), latency percentiles per workload on a
//! log scale and throughput against the session count; of a ramp run, p99 against the offered rate. Labels under the bars are placed by hand: plotters chooses
//! its own tick positions on a numeric axis, which need not fall on a bar.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::Row;

fn color(server: &str) -> RGBColor {
    if server.starts_with("zookeeper") {
        RGBColor(214, 96, 77)
    } else {
        RGBColor(33, 102, 172)
    }
}

fn distinct<'a>(it: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for s in it {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plotting: {e:?}")
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// A white canvas of `width` x 460 with `text` centred in a strip of
/// `strip` pixels at the top; returns the canvas, the strip and the rest.
fn titled<'a>(
    path: &'a Path,
    width: u32,
    strip: u32,
    text: &str,
) -> Result<(Area<'a>, Area<'a>, Area<'a>)> {
    let root = SVGBackend::new(path, (width, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (title, body) = root.split_vertically(strip);
    title
        .draw(&Text::new(
            text.to_string(),
            (width as i32 / 2, 10),
            TextStyle::from(("sans-serif", 22).into_font()).pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(err)?;
    Ok((root, title, body))
}

/// A line through `pts` with a dot on each, in `c`; with a legend entry
/// when `label` is given.
fn line<X, Y>(
    chart: &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<X, Y>>,
    pts: &[(f64, f64)],
    c: RGBColor,
    label: Option<&str>,
) -> Result<()>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let series = chart
        .draw_series(LineSeries::new(pts.to_vec(), c.stroke_width(2)))
        .map_err(err)?;
    if let Some(label) = label {
        series
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
    }
    chart
        .draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))
        .map_err(err)?;
    Ok(())
}

/// The legend of the series drawn with labels, boxed, at `at`.
fn legend<'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, CT>,
    at: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(at)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .draw()
        .map_err(err)
}

/// Grouped bars: ops/s per workload, one bar per server, value on top.
pub fn throughput(path: &Path, rows: &[Row], ensemble: bool) -> Result<()> {
    let workloads = distinct(rows.iter().map(|r| r.workload.as_str()));
    let servers = distinct(rows.iter().map(|r| r.server.as_str()));
    let top = rows.iter().map(|r| r.ops_per_s).fold(1.0, f64::max) * 1.15;
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Throughput, corral vs ZooKeeper 3.8 ({})",
                if ensemble { "3 servers" } else { "standalone" }
            ),
            ("sans-serif", 22),
        )
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..workloads.len() as f64, 0f64..top)
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .x_label_formatter(&|_| String::new())
        .y_desc("operations per second")
        .y_label_formatter(&|v| format!("{:.0}k", v / 1000.0))
        .draw()
        .map_err(err)?;
    let width = 0.8 / servers.len().max(1) as f64;
    for (k, server) in servers.iter().enumerate() {
        let c = color(server);
        let bars: Vec<(f64, f64)> = workloads
            .iter()
            .enumerate()
            .filter_map(|(i, w)| {
                rows.iter()
                    .find(|r| r.workload == *w && r.server == *server)
                    .map(|r| (i as f64 + 0.1 + k as f64 * width, r.ops_per_s))
            })
            .collect();
        chart
            .draw_series(bars.iter().map(|&(x, v)| {
                Rectangle::new([(x + 0.01, 0.0), (x + width - 0.01, v)], c.filled())
            }))
            .map_err(err)?
            .label(*server)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 12, y + 6)], c.filled()));
        let on_top = TextStyle::from(("sans-serif", 13).into_font())
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        chart
            .draw_series(bars.iter().map(|&(x, v)| {
                Text::new(
                    format!("{:.0}k", v / 1000.0),
                    (x + width / 2.0, v),
                    on_top.clone(),
                )
            }))
            .map_err(err)?;
    }
    let below =
        TextStyle::from(("sans-serif", 16).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    for (i, w) in workloads.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
        root.draw(&Text::new(w.to_string(), (px, py + 8), below.clone()))
            .map_err(err)?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    root.present().map_err(err)?;
    Ok(())
}

/// One panel per workload: p50, p90, p99, p99.9 and max on a log scale,
/// one line per server. A percentile of 0 (an event that came before its
/// write's reply) is drawn at the panel's floor.
pub fn latency(path: &Path, rows: &[Row]) -> Result<()> {
    const LABELS: [&str; 5] = ["p50", "p90", "p99", "p99.9", "max"];
    let points = |r: &Row| [r.p50_ms, r.p90_ms, r.p99_ms, r.p999_ms, r.max_ms];
    let workloads = distinct(rows.iter().map(|r| r.workload.as_str()));
    let servers = distinct(rows.iter().map(|r| r.server.as_str()));
    let width = 330 * workloads.len().max(1) as u32;
    let (root, _, body) = titled(path, width, 40, "Latency percentiles (ms, log scale)")?;
    let panels = body.split_evenly((1, workloads.len().max(1)));
    for (panel, w) in panels.iter().zip(&workloads) {
        // Each panel its own range: a watch event can take microseconds
        // where a write takes tens of milliseconds.
        let (lo, hi) = rows
            .iter()
            .filter(|r| r.workload == *w)
            .flat_map(points)
            .filter(|v| *v > 0.0)
            .fold((f64::MAX, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let (lo, hi) = if hi > 0.0 {
            (lo / 1.5, hi * 1.5)
        } else {
            (0.001, 1.0)
        };
        let mut chart = ChartBuilder::on(panel)
            .caption(*w, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(55)
            .build_cartesian_2d(-0.3f64..4.3f64, (lo..hi).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .x_label_formatter(&|_| String::new())
            .y_labels(6)
            .max_light_lines(2)
            .y_label_formatter(&|v| {
                if *v >= 1.0 {
                    format!("{v:.0}")
                } else if *v >= 0.01 {
                    format!("{v:.2}")
                } else {
                    format!("{v:.3}")
                }
            })
            .draw()
            .map_err(err)?;
        for server in &servers {
            let Some(r) = rows
                .iter()
                .find(|r| r.workload == *w && r.server == *server)
            else {
                continue;
            };
            let c = color(server);
            let pts: Vec<(f64, f64)> = points(r)
                .iter()
                .enumerate()
                .map(|(i, v)| (i as f64, v.max(lo)))
                .collect();
            line(&mut chart, &pts, c, Some(server))?;
        }
        let below =
            TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
        for (i, l) in LABELS.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(i as f64, lo));
            root.draw(&Text::new(l.to_string(), (px, py + 6), below.clone()))
                .map_err(err)?;
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

/// One panel per workload: ops/s against the session count (log scale),
/// one line per server, each point labelled with its value.
pub fn clients(path: &Path, points: &[(usize, Row)], ensemble: bool) -> Result<()> {
    let workloads = distinct(points.iter().map(|(_, r)| r.workload.as_str()));
    let servers = distinct(points.iter().map(|(_, r)| r.server.as_str()));
    let width = 480 * workloads.len().max(1) as u32;
    let text = format!(
        "Throughput against sessions ({}; sessions on a log scale)",
        if ensemble { "3 servers" } else { "standalone" }
    );
    let (root, _, body) = titled(path, width, 40, &text)?;
    let panels = body.split_evenly((1, workloads.len().max(1)));
    for (panel, w) in panels.iter().zip(&workloads) {
        let mine: Vec<&(usize, Row)> = points.iter().filter(|(_, r)| r.workload == *w).collect();
        let n_max = mine.iter().map(|(n, _)| *n).max().unwrap_or(1).max(2) as f64;
        let top = mine.iter().map(|(_, r)| r.ops_per_s).fold(1.0, f64::max) * 1.2;
        let mut chart = ChartBuilder::on(panel)
            .caption(*w, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((0.8f64..n_max * 1.25).log_scale(), 0f64..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("sessions")
            .y_desc("operations per second")
            .max_light_lines(1)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{:.0}k", v / 1000.0))
            .draw()
            .map_err(err)?;
        for server in &servers {
            let c = color(server);
            let mut pts: Vec<(f64, f64)> = mine
                .iter()
                .filter(|(_, r)| r.server == *server)
                .map(|(n, r)| (*n as f64, r.ops_per_s))
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            line(&mut chart, &pts, c, Some(server))?;
            let above = TextStyle::from(("sans-serif", 12).into_font())
                .color(&c)
                .pos(Pos::new(HPos::Center, VPos::Bottom));
            chart
                .draw_series(pts.iter().map(|&(x, y)| {
                    Text::new(format!("{:.0}k", y / 1000.0), (x, y * 1.02), above.clone())
                }))
                .map_err(err)?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

/// One panel per base workload of a ramp: p99 against the offered rate,
/// both on log scales, one line per server, the SLA as a horizontal line.
/// `rows` are the ramp results' rows (server, base, steps).
pub fn ramp(path: &Path, rows: &[serde_json::Value], sla_ms: f64) -> Result<()> {
    let bases = distinct(rows.iter().filter_map(|r| r["base"].as_str()));
    let servers = distinct(rows.iter().filter_map(|r| r["server"].as_str()));
    let steps = |r: &serde_json::Value| -> Vec<(f64, f64)> {
        r["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| Some((s["offered_per_s"].as_f64()?, s["p99_ms"].as_f64()?)))
            .filter(|&(x, y)| x > 0.0 && y > 0.0)
            .collect()
    };
    let width = 480 * bases.len().max(1) as u32;
    let text = format!("p99 latency against offered rate (SLA {sla_ms} ms, log scales)");
    let (root, title, body) = titled(path, width, 64, &text)?;
    let panels = body.split_evenly((1, bases.len().max(1)));
    for (panel, base) in panels.iter().zip(&bases) {
        let pts: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r["base"].as_str() == Some(base))
            .flat_map(steps)
            .collect();
        let (x_lo, x_hi, y_lo, y_hi) = pts
            .iter()
            .fold((f64::MAX, 0f64, sla_ms, sla_ms), |(a, b, c, d), &(x, y)| {
                (a.min(x), b.max(x), c.min(y), d.max(y))
            });
        let (x_lo, x_hi) = if x_hi > 0.0 {
            (x_lo / 1.3, x_hi * 1.3)
        } else {
            (1.0, 10.0)
        };
        let mut chart = ChartBuilder::on(panel)
            .caption(*base, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(
                (x_lo..x_hi).log_scale(),
                (y_lo / 1.5..y_hi * 1.5).log_scale(),
            )
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("offered requests/s")
            .y_desc("p99 ms")
            .x_labels(12)
            .y_labels(12)
            .x_label_formatter(&|v| {
                if *v >= 1000.0 {
                    format!("{:.0}k", v / 1000.0)
                } else {
                    format!("{v:.0}")
                }
            })
            .y_label_formatter(&|v| {
                if *v >= 1.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.2}")
                }
            })
            .draw()
            .map_err(err)?;
        chart
            .draw_series(LineSeries::new(
                [(x_lo, sla_ms), (x_hi, sla_ms)],
                RGBColor(128, 128, 128).stroke_width(1),
            ))
            .map_err(err)?;
        for server in &servers {
            let Some(r) = rows
                .iter()
                .find(|r| r["base"].as_str() == Some(base) && r["server"].as_str() == Some(server))
            else {
                continue;
            };
            let c = color(server);
            let pts = steps(r);
            line(&mut chart, &pts, c, None)?;
            // A log axis labels few ticks: each point says its own p99.
            let beside = TextStyle::from(("sans-serif", 12).into_font())
                .color(&c)
                .pos(Pos::new(HPos::Left, VPos::Bottom));
            chart
                .draw_series(pts.iter().map(|&(x, y)| {
                    Text::new(format!("{y:.1}"), (x * 1.04, y * 1.04), beside.clone())
                }))
                .map_err(err)?;
        }
    }
    // The legend goes in the title strip: inside a panel, any corner can
    // be where a ramp's steps land.
    let small =
        TextStyle::from(("sans-serif", 14).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    let entries: Vec<(String, RGBColor)> = servers
        .iter()
        .map(|s| (s.to_string(), color(s)))
        .chain([("SLA".to_string(), RGBColor(128, 128, 128))])
        .collect();
    let advance = |label: &str| 40 + 8 * label.len() as i32;
    let mut x = width as i32 / 2 - entries.iter().map(|(l, _)| advance(l)).sum::<i32>() / 2;
    for (label, c) in &entries {
        title
            .draw(&PathElement::new(
                vec![(x, 48), (x + 18, 48)],
                c.stroke_width(2),
            ))
            .map_err(err)?;
        title
            .draw(&Text::new(label.clone(), (x + 24, 48), small.clone()))
            .map_err(err)?;
        x += advance(label);
    }
    root.present().map_err(err)?;
    Ok(())
}
