//! SVG figures drawn from Rust with plotters (SVG backend only: no system font libraries).

use anyhow::Context;
use plotters::prelude::*;
use std::path::Path;

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing: {e}")
}

/// A line chart: one line per series of (x, y) points.
pub fn lines(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> anyhow::Result<()> {
    let x_max = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.0))
        .fold(0.0f64, f64::max);
    let y_max = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| p.1))
        .fold(0.0f64, f64::max);
    let root = SVGBackend::new(path, (720, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..(x_max * 1.05).max(0.1), 0.0..(y_max * 1.15).max(0.001))
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .draw()
        .map_err(err)?;
    for (i, (label, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(err)?
            .label(label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .draw()
        .map_err(err)?;
    root.present()
        .map_err(err)
        .with_context(|| format!("write {}", path.display()))
}

/// One window of a timeline: start (s), median and maximum latency (ms), errors in it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    /// Window start, seconds since the run began.
    pub t: f64,
    /// Median latency in the window, ms.
    pub p50: f64,
    /// Slowest request in the window, ms.
    pub max: f64,
    /// Client-visible errors in the window.
    pub errors: u64,
}

/// A timeline: median and maximum latency per window, errors as red crosses, and labelled
/// vertical marks (kills and restarts). Windows keep the figure small for long runs.
pub fn timeline(
    path: &Path,
    title: &str,
    windows: &[Window],
    marks: &[(f64, String)],
) -> anyhow::Result<()> {
    let x_max = windows
        .iter()
        .map(|w| w.t)
        .chain(marks.iter().map(|m| m.0))
        .fold(1.0f64, f64::max);
    let y_max = windows.iter().map(|w| w.max).fold(1.0f64, f64::max);
    let root = SVGBackend::new(path, (960, 440)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max * 1.02, (0.01f64..y_max * 2.0).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc("latency ms (log)")
        .draw()
        .map_err(err)?;
    for (i, (label, pick)) in [("max per window", 1), ("median per window", 0)]
        .iter()
        .enumerate()
    {
        let color = COLORS[i];
        let points = windows
            .iter()
            .map(|w| (w.t, if *pick == 1 { w.max } else { w.p50 }.max(0.011)));
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(1)))
            .map_err(err)?
            .label(*label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    chart
        .draw_series(
            windows
                .iter()
                .filter(|w| w.errors > 0)
                .map(|w| Cross::new((w.t, w.max.max(0.011)), 5, RED.stroke_width(2))),
        )
        .map_err(err)?;
    for (x, label) in marks {
        let color = if label.starts_with("kill") {
            RED
        } else {
            COLORS[2]
        };
        chart
            .draw_series(LineSeries::new(
                vec![(*x, 0.011), (*x, y_max * 1.9)],
                color.stroke_width(1),
            ))
            .map_err(err)?;
        // Kills labelled high, restarts lower, so close marks do not overwrite each other.
        let y = if label.starts_with("kill") {
            y_max * 1.5
        } else {
            y_max * 0.5
        };
        chart
            .draw_series(std::iter::once(Text::new(
                label.clone(),
                (*x, y),
                ("sans-serif", 11).into_font().color(&color),
            )))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .draw()
        .map_err(err)?;
    root.present()
        .map_err(err)
        .with_context(|| format!("write {}", path.display()))
}

/// The LRU figure: one row per step, the cache's entries from most to least recently used.
pub fn lru_steps(
    path: &Path,
    title: &str,
    capacity: usize,
    steps: &[(String, Vec<String>, String)],
) -> anyhow::Result<()> {
    let cell_w = 96;
    let cell_h = 24;
    let left = 290;
    let width = (left + cell_w * capacity.max(1) + 20) as u32;
    let height = (60 + cell_h * steps.len() + 20) as u32;
    let root = SVGBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    root.draw(&Text::new(
        title.to_string(),
        (10, 10),
        ("sans-serif", 16).into_font(),
    ))
    .map_err(err)?;
    root.draw(&Text::new(
        "step: lookup (outcome)      most recent -> least recent".to_string(),
        (10, 36),
        ("sans-serif", 12).into_font(),
    ))
    .map_err(err)?;
    for (i, (lookup, entries, outcome)) in steps.iter().enumerate() {
        let y = (60 + i * cell_h) as i32;
        root.draw(&Text::new(
            format!("{:>2}: {lookup} ({outcome})", i + 1),
            (10, y + 6),
            ("sans-serif", 12).into_font(),
        ))
        .map_err(err)?;
        for (j, name) in entries.iter().enumerate() {
            let x = (left + j * cell_w) as i32;
            let fill = if name == lookup {
                COLORS[1].mix(0.35)
            } else {
                COLORS[0].mix(0.12)
            };
            root.draw(&Rectangle::new(
                [(x, y), (x + cell_w as i32 - 4, y + cell_h as i32 - 4)],
                fill.filled(),
            ))
            .map_err(err)?;
            root.draw(&Text::new(
                name.clone(),
                (x + 4, y + 5),
                ("sans-serif", 11).into_font(),
            ))
            .map_err(err)?;
        }
    }
    root.present()
        .map_err(err)
        .with_context(|| format!("write {}", path.display()))
}
