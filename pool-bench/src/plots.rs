//! The curves `just bench` draws next to its tables, as SVG files in the run
//! directory: latency distributions (the share of calls at or under each
//! time, on a log scale of time) and figures by group size. Drawn with
//! `plotters`' SVG backend, which writes text as SVG text elements and
//! needs no fonts on the machine.

use anyhow::{Context, Result};
use plotters::coord::ranged1d::ValueFormatter;
use plotters::prelude::*;
use std::path::Path;

const SIZE: (u32, u32) = (960, 600);
const CAPTION_FONT: (&str, u32) = ("sans-serif", 22);
const LEGEND_SWATCH: i32 = 24;

/// A named set of latency samples (µs).
pub struct Samples<'a> {
    pub name: &'a str,
    pub micros: &'a [f64],
}

/// A named curve over group sizes; `dashed` for the second figure of a pair
/// (p99 next to the median).
pub struct BySize {
    pub name: String,
    pub points: Vec<(u16, f64)>,
    pub dashed: bool,
    /// Curves with the same colour index belong together.
    pub colour: usize,
}

/// Draws the distribution of each sample set: x the time (log scale), y
/// the percentage of samples at or under it.
pub fn latency_distribution(path: &Path, title: &str, sets: &[Samples<'_>]) -> Result<()> {
    let all = sets.iter().flat_map(|s| s.micros.iter().copied());
    let (low, high) = all.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if low > high {
        return Ok(()); // nothing to draw
    }
    let range = (low.max(1.0) * 0.8)..(high * 1.25);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, CAPTION_FONT)
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(range.log_scale(), 0.0..100.0)?;
    chart.configure_mesh().x_desc("latency (us, log scale)").y_desc("% of calls at or under").draw()?;
    for (index, set) in sets.iter().enumerate() {
        let mut sorted = set.micros.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len() as f64;
        let points = sorted.iter().enumerate().map(|(i, &v)| (v, (i + 1) as f64 * 100.0 / n));
        let colour = Palette99::pick(index).to_rgba();
        chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
            .label(set.name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + LEGEND_SWATCH, y)], colour.stroke_width(2)));
    }
    draw_legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    root.present().with_context(|| format!("writing {}", path.display()))
}

/// Draws curves over group sizes (x: members, y: `y_label`), the y axis on a
/// log scale when `log_y`.
pub fn by_group_size(path: &Path, title: &str, y_label: &str, curves: &[BySize], log_y: bool) -> Result<()> {
    let sizes = curves.iter().flat_map(|c| c.points.iter().map(|p| p.0));
    let (first, last) = sizes.fold((u16::MAX, 0), |(lo, hi), s| (lo.min(s), hi.max(s)));
    let values = curves.iter().flat_map(|c| c.points.iter().map(|p| p.1));
    let (low, high) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if first > last || low > high {
        return Ok(());
    }
    // x is log2 of the size, labelled with the sizes themselves.
    let x_range = f64::from(first).log2() - 0.2..f64::from(last).log2() + 0.2;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut builder = ChartBuilder::on(&root);
    builder.caption(title, CAPTION_FONT).margin(20).x_label_area_size(45).y_label_area_size(70);
    if log_y {
        let chart = builder
            .build_cartesian_2d(x_range.log_scale(), (low.max(1e-3) * 0.8..high * 1.25).log_scale())?;
        fill_chart(chart, y_label, curves, SeriesLabelPosition::UpperLeft)?;
    } else {
        let chart = builder.build_cartesian_2d(x_range, 0.0..high * 1.15)?;
        fill_chart(chart, y_label, curves, SeriesLabelPosition::UpperRight)?;
    }
    root.present().with_context(|| format!("writing {}", path.display()))
}

const X_DESC: &str = "group members (log scale)";
/// Enough x key points that every power of two gets one.
const X_LABELS: usize = 40;

/// The label of x key point `log2`: the group size at whole powers of two.
fn size_label(log2: &f64) -> String {
    if (log2 - log2.round()).abs() < 1e-6 { format!("{}", 2f64.powf(log2.round())) } else { String::new() }
}

type Chart<'a, X, Y> = ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>;

/// The mesh (group sizes along x), the curves and the legend of a chart
/// whose axes may be linear or logarithmic.
fn fill_chart<'a, X, Y>(
    mut chart: Chart<'a, X, Y>,
    y_label: &str,
    curves: &[BySize],
    legend: SeriesLabelPosition,
) -> Result<()>
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_labels(X_LABELS)
        .x_max_light_lines(0)
        .x_label_formatter(&size_label)
        .x_desc(X_DESC)
        .y_desc(y_label)
        .draw()?;
    draw_curves(&mut chart, curves)?;
    draw_legend(&mut chart, legend)
}

fn draw_curves<'a, X, Y>(chart: &mut Chart<'a, X, Y>, curves: &[BySize]) -> Result<()>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for curve in curves {
        let colour = Palette99::pick(curve.colour).to_rgba();
        let points: Vec<(f64, f64)> = curve.points.iter().map(|&(s, v)| (f64::from(s).log2(), v)).collect();
        let style = colour.stroke_width(if curve.dashed { 1 } else { 3 });
        if curve.dashed {
            chart.draw_series(DashedLineSeries::new(points.clone(), 8, 5, style))?
        } else {
            chart.draw_series(LineSeries::new(points.clone(), style))?
        }
        .label(curve.name.clone())
        .legend(move |(x, y)| PathElement::new([(x, y), (x + LEGEND_SWATCH, y)], style));
        chart.draw_series(points.into_iter().map(|p| Circle::new(p, 3, colour.filled())))?;
    }
    Ok(())
}

fn draw_legend<'a, X: Ranged, Y: Ranged>(
    chart: &mut Chart<'a, X, Y>,
    position: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// Draws one horizontal bar per operation: its instructions (x on a log
/// scale), named on the bar, with its goal (if it has one) as a red mark.
pub fn instruction_bars(path: &Path, title: &str, bars: &[(String, f64, Option<f64>)]) -> Result<()> {
    const FLOOR: f64 = 10.0;
    let high = bars.iter().map(|(_, count, goal)| count.max(goal.unwrap_or(0.0))).fold(FLOOR, f64::max);
    if bars.is_empty() {
        return Ok(());
    }
    let rows = bars.len() as f64;
    let height = 120 + 34 * bars.len() as u32;
    let root = SVGBackend::new(path, (SIZE.0, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, CAPTION_FONT)
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(10)
        .build_cartesian_2d((FLOOR..high * 3.0).log_scale(), 0.0..rows)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .x_desc("guest instructions per operation (log scale); red: the goal")
        .draw()?;
    // The first operation at the top.
    let row = |index: usize| rows - index as f64 - 1.0;
    let colour = Palette99::pick(0).mix(0.35);
    chart.draw_series(bars.iter().enumerate().map(|(i, (_, count, _))| {
        Rectangle::new([(FLOOR, row(i) + 0.15), (count.max(FLOOR), row(i) + 0.85)], colour.filled())
    }))?;
    chart.draw_series(bars.iter().enumerate().filter_map(|(i, (_, _, goal))| {
        goal.map(|goal| PathElement::new([(goal, row(i) + 0.05), (goal, row(i) + 0.95)], RED.stroke_width(3)))
    }))?;
    chart.draw_series(bars.iter().enumerate().map(|(i, (name, count, _))| {
        Text::new(format!("{name}: {count:.0}"), (FLOOR * 1.1, row(i) + 0.7), ("sans-serif", 15))
    }))?;
    root.present().with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_svg(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("boot-plots-{}-{name}.svg", std::process::id()))
    }

    #[test]
    fn a_distribution_is_drawn_with_its_names() {
        let path = temp_svg("distribution");
        let fast: Vec<f64> = (1..=100).map(f64::from).collect();
        let slow: Vec<f64> = fast.iter().map(|v| v * 40.0).collect();
        let sets =
            [Samples { name: "fast path", micros: &fast }, Samples { name: "slow path", micros: &slow }];
        latency_distribution(&path, "test distribution", &sets).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(svg.starts_with("<svg"), "not an SVG file");
        for text in ["test distribution", "fast path", "slow path"] {
            assert!(svg.contains(text), "{text} missing from the drawing");
        }
        assert!(svg.matches("<polyline").count() >= 2, "one line per sample set");
    }

    #[test]
    fn curves_by_size_are_drawn_on_either_scale() {
        for log_y in [false, true] {
            let path = temp_svg(&format!("sizes-{log_y}"));
            let curves = [
                BySize {
                    name: "median".into(),
                    points: vec![(2, 300.0), (16, 900.0)],
                    dashed: false,
                    colour: 0,
                },
                BySize {
                    name: "p99".into(),
                    points: vec![(2, 700.0), (16, 4000.0)],
                    dashed: true,
                    colour: 0,
                },
            ];
            by_group_size(&path, "by size", "us", &curves, log_y).unwrap();
            let svg = std::fs::read_to_string(&path).unwrap();
            std::fs::remove_file(&path).unwrap();
            assert!(svg.contains("median") && svg.contains("p99") && svg.contains("by size"));
        }
    }

    #[test]
    fn nothing_to_draw_writes_nothing() {
        let path = temp_svg("empty");
        latency_distribution(&path, "empty", &[]).unwrap();
        by_group_size(&path, "empty", "us", &[], false).unwrap();
        assert!(!path.exists());
    }
}
