//! Line charts as inline SVG, drawn here rather than by a script, so `report.html` needs no
//! network and no JavaScript to show every chart. Each series becomes one `<path>` with a
//! `data-series` attribute, which is what the browser test counts.
//!
//! A chart never invents data: a series is cut wherever its caller marks a gap (a point whose y
//! is NaN), so no line is drawn across seconds without samples, and spans the caller knows to be
//! empty are shaded. Every path carries the data it draws (`data-x`, `data-y`: seconds and values,
//! subpaths separated by `|`), and a run-time chart carries its x-range (`data-x0`, `data-x1`), so
//! the browser test can check the picture against the summary without reading pixels.

use super::junit::escape;
use std::fmt::Write;

/// Default width of the drawing, in SVG units (one unit is about one CSS pixel at full width).
pub const WIDE: f64 = 1040.0;
/// Width of a chart drawn beside another.
pub const HALF: f64 = 520.0;
const H: f64 = 260.0;
const LEFT: f64 = 64.0;
/// Room on the right for the last tick's label (`p99.99` is centred on the axis's end).
const RIGHT: f64 = 28.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 40.0;
/// Height of one row of marker labels above the plot.
const LABEL_ROW: f64 = 12.0;
const COLOURS: [&str; 8] = [
    "#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563", "#ca8a04",
];

/// One line.
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Points, x ascending. A point with a NaN y is a gap: the line stops before it and starts
    /// again after it.
    pub points: Vec<(f64, f64)>,
    /// Drawn thin and dashed, under the other lines (the max of a percentile chart: it must not
    /// hide the p99 when the two coincide).
    pub faint: bool,
}

impl Series {
    /// A solid line.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Series {
        Series {
            name: name.into(),
            points,
            faint: false,
        }
    }
}

/// A vertical marker (a timeline fault), labelled above the plot.
pub struct Marker {
    /// Where on the x axis.
    pub x: f64,
    /// Its label (shown above the plot, cut short when long).
    pub label: String,
    /// Its tooltip: the label and whatever detail there is.
    pub tip: String,
}

/// How the x axis is scaled.
#[derive(Clone, Copy, PartialEq)]
pub enum XAxis {
    /// Linear, labelled with the unit, range and ticks from the data.
    Linear,
    /// The run's time axis: seconds from `0` to `end`, ticks every `step` seconds. Every chart
    /// over the run's time gets the same one, so that they can be compared.
    Run {
        /// Right end of the axis (a multiple of `step`).
        end: f64,
        /// Distance between ticks.
        step: f64,
    },
    /// Percentile spectrum: x is a percentile in [50, 99.99], placed at -log10(1 - p/100).
    Percentile,
}

impl XAxis {
    /// The run axis for a run whose data ends at `last` seconds: round ticks (1, 2, 5, 10, 15,
    /// 30 s, minutes ...), at most ten of them, the end on a tick.
    pub fn run(last: f64) -> XAxis {
        let last = if last.is_finite() && last > 0.0 { last } else { 1.0 };
        // A run's last sample lands a few milliseconds past its planned end: 2 % of a step of
        // slack keeps a 50.075 s run on a 0..50 axis instead of 0..60 (its last point drawn less
        // than a pixel past the end).
        let intervals = |step: f64| (last / step - 0.02).ceil().max(1.0);
        let step = [
            1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
        ]
        .into_iter()
        .find(|s| intervals(*s) <= 10.0)
        .unwrap_or_else(|| (last / 10.0 / 3600.0).ceil() * 3600.0);
        XAxis::Run {
            end: intervals(step) * step,
            step,
        }
    }
}

/// A chart.
pub struct Chart<'a> {
    /// The element id (for the browser test and anchors).
    pub id: &'a str,
    /// Heading.
    pub title: &'a str,
    /// X axis label.
    pub x_label: &'a str,
    /// Y axis label.
    pub y_label: &'a str,
    /// The lines.
    pub series: Vec<Series>,
    /// Vertical markers.
    pub markers: Vec<Marker>,
    /// X scaling.
    pub x_axis: XAxis,
    /// Spans of x (from, to) known to have no samples at all: shaded.
    pub empty: Vec<(f64, f64)>,
    /// Width of the drawing ([`WIDE`] or [`HALF`]).
    pub width: f64,
}

fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if v <= m * mag {
            return m * mag;
        }
    }
    10.0 * mag
}

fn fmt_num(v: f64) -> String {
    let s = if v >= 1000.0 || v == v.trunc() {
        return format!("{v:.0}");
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.4}")
    };
    // 0.50 reads as a measurement to two places; as a tick it is 0.5.
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A data value for a `data-` attribute: short, exact enough to check sums and seconds.
fn fmt_data(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

/// Splits points at the gaps (NaN y) into runs of drawable points.
fn runs(points: &[(f64, f64)]) -> Vec<&[(f64, f64)]> {
    points
        .split(|(x, y)| y.is_nan() || !x.is_finite())
        .filter(|r| !r.is_empty())
        .collect()
}

impl Chart<'_> {
    /// A chart over the run's time with the given axis, full width, no gaps shaded.
    pub fn over_run<'a>(id: &'a str, title: &'a str, y_label: &'a str, series: Vec<Series>, axis: XAxis) -> Chart<'a> {
        Chart {
            id,
            title,
            x_label: "seconds since the start",
            y_label,
            series,
            markers: vec![],
            x_axis: axis,
            empty: vec![],
            width: WIDE,
        }
    }

    fn tx(&self, x: f64) -> f64 {
        match self.x_axis {
            XAxis::Linear | XAxis::Run { .. } => x,
            XAxis::Percentile => -(1.0 - (x / 100.0).min(0.999_999)).log10(),
        }
    }

    /// Marker labels placed in rows above the plot so that none overlaps another: (marker,
    /// row, anchored at its end).
    fn label_rows(&self, sx: &dyn Fn(f64) -> f64, right: f64) -> Vec<(usize, usize, bool)> {
        let mut order: Vec<usize> = (0..self.markers.len()).collect();
        order.sort_by(|a, b| self.markers[*a].x.total_cmp(&self.markers[*b].x));
        let mut row_ends: Vec<f64> = Vec::new();
        let mut out = Vec::new();
        for i in order {
            let px = sx(self.tx(self.markers[i].x));
            let w = label_text(&self.markers[i].label).chars().count() as f64 * 5.6 + 6.0;
            // A label that would run off the right edge hangs to the left of its line.
            let left_hang = px + w > right;
            let (from, to) = if left_hang { (px - w, px) } else { (px, px + w) };
            let row = row_ends.iter().position(|end| *end < from).unwrap_or(row_ends.len());
            if row == row_ends.len() {
                row_ends.push(to);
            } else {
                row_ends[row] = to;
            }
            out.push((i, row, left_hang));
        }
        out
    }

    /// Renders the chart as a `<figure>` with an inline `<svg>`.
    pub fn render(&self) -> String {
        let width = if self.width > 0.0 { self.width } else { WIDE };
        let pts = self
            .series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|(x, y)| x.is_finite() && y.is_finite());
        let (mut x0, mut x1, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
        for &(x, y) in pts {
            x0 = x0.min(self.tx(x));
            x1 = x1.max(self.tx(x));
            y1 = y1.max(y);
        }
        for m in &self.markers {
            x0 = x0.min(self.tx(m.x));
            x1 = x1.max(self.tx(m.x));
        }
        match self.x_axis {
            XAxis::Run { end, .. } => (x0, x1) = (0.0, end),
            XAxis::Percentile => (x0, x1) = (self.tx(50.0), self.tx(99.99)),
            XAxis::Linear => {}
        }
        if !x0.is_finite() || !x1.is_finite() {
            (x0, x1) = (0.0, 1.0);
        }
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        // A linear axis starts and ends on round ticks too (never 10.8, 20.6 ...).
        let linear_step = nice_max((x1 - x0) / 8.0);
        if self.x_axis == XAxis::Linear {
            x0 = (x0 / linear_step).floor() * linear_step;
            x1 = (x1 / linear_step).ceil() * linear_step;
        }
        let y1 = nice_max(y1);
        let right = width - RIGHT;
        let sx = |x: f64| LEFT + (x - x0) / (x1 - x0) * (right - LEFT);
        let labels = self.label_rows(&sx, right);
        let rows = labels.iter().map(|(_, r, _)| r + 1).max().unwrap_or(0);
        let top = TOP + rows as f64 * LABEL_ROW;
        let height = H + rows as f64 * LABEL_ROW;
        let sy = |y: f64| top + (1.0 - y / y1) * (height - top - BOTTOM);
        let mut svg = String::new();
        let range = match self.x_axis {
            XAxis::Run { .. } => format!(r#" data-x0="{}" data-x1="{}""#, fmt_data(x0), fmt_data(x1)),
            _ => String::new(),
        };
        let _ = write!(
            svg,
            r#"<figure class="chart" id="{id}"><figcaption>{title}</figcaption><svg viewBox="0 0 {width} {height}" style="max-width:{width}px" role="img" aria-label="{title}"{range}>"#,
            id = escape(self.id),
            title = escape(self.title)
        );
        // Spans without samples, under everything else.
        for &(from, to) in &self.empty {
            let (a, b) = (sx(self.tx(from)).max(LEFT), sx(self.tx(to)).min(right));
            if b > a {
                let _ = write!(
                    svg,
                    r##"<rect class="nodata" data-from="{}" data-to="{}" x="{a:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="#f3f4f6"><title>no samples from {} s to {} s</title></rect>"##,
                    fmt_data(from),
                    fmt_data(to),
                    b - a,
                    height - top - BOTTOM,
                    fmt_num(from),
                    fmt_num(to)
                );
            }
        }
        // Axes and grid.
        for k in 0..=4 {
            let y = y1 * f64::from(k) / 4.0;
            let py = sy(y);
            let _ = write!(
                svg,
                r##"<line x1="{LEFT}" y1="{py:.1}" x2="{right:.1}" y2="{py:.1}" stroke="#e5e7eb"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
                LEFT - 6.0,
                py + 4.0,
                fmt_num(y)
            );
        }
        let ticks: Vec<(f64, String)> = match self.x_axis {
            XAxis::Percentile => [50.0, 90.0, 99.0, 99.9, 99.99]
                .iter()
                .map(|p| (self.tx(*p), format!("p{p}")))
                .collect(),
            XAxis::Run { end, step } => {
                let n = (end / step).round() as u32;
                (0..=n).map(|k| f64::from(k) * step).map(|x| (x, fmt_num(x))).collect()
            }
            XAxis::Linear => {
                let n = ((x1 - x0) / linear_step).round() as u32;
                (0..=n)
                    .map(|k| x0 + f64::from(k) * linear_step)
                    .map(|x| (x, fmt_num(x)))
                    .collect()
            }
        };
        for (x, label) in ticks {
            let px = sx(x);
            let _ = write!(
                svg,
                r##"<line x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{:.1}" stroke="#9ca3af"/><text class="tick" x="{px:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"##,
                height - BOTTOM,
                height - BOTTOM + 4.0,
                height - BOTTOM + 16.0,
                escape(&label)
            );
        }
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text><text x="12" y="{:.1}" font-size="11" transform="rotate(-90 12 {:.1})" text-anchor="middle">{}</text>"#,
            (LEFT + right) / 2.0,
            height - 6.0,
            escape(self.x_label),
            height / 2.0,
            height / 2.0,
            escape(self.y_label)
        );
        for (i, row, left_hang) in labels {
            let m = &self.markers[i];
            let px = sx(self.tx(m.x));
            let ty = TOP + row as f64 * LABEL_ROW;
            let (tx, anchor) = if left_hang {
                (px - 3.0, "end")
            } else {
                (px + 3.0, "start")
            };
            let _ = write!(
                svg,
                r##"<g class="marker" data-x="{}"><title>{}</title><line x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{:.1}" stroke="#d97706" stroke-dasharray="4 3"/><text x="{tx:.1}" y="{:.1}" font-size="10" fill="#92400e" text-anchor="{anchor}">{}</text></g>"##,
                fmt_data(m.x),
                escape(&m.tip),
                ty - 8.0,
                height - BOTTOM,
                ty + 1.0,
                escape(&label_text(&m.label))
            );
        }
        // Faint lines first, so that a solid one drawn on the same pixels stays visible.
        let mut order: Vec<usize> = (0..self.series.len()).collect();
        order.sort_by_key(|i| !self.series[*i].faint);
        for i in order {
            let s = &self.series[i];
            let colour = COLOURS[i % COLOURS.len()];
            let mut d = String::new();
            let (mut dx, mut dy) = (String::new(), String::new());
            for (k, run) in runs(&s.points).into_iter().enumerate() {
                if k > 0 {
                    dx.push('|');
                    dy.push('|');
                }
                let xs: Vec<String> = run.iter().map(|p| fmt_data(p.0)).collect();
                let ys: Vec<String> = run.iter().map(|p| fmt_data(p.1)).collect();
                dx.push_str(&xs.join(" "));
                dy.push_str(&ys.join(" "));
                if let [(x, y)] = run {
                    // A lone sample has no neighbour to join: a short dash keeps it visible
                    // without inventing a line.
                    let (px, py) = (sx(self.tx(*x)), sy(*y));
                    let _ = write!(d, "M{:.1},{py:.1} L{:.1},{py:.1} ", px - 3.0, px + 3.0);
                    continue;
                }
                for (j, &(x, y)) in run.iter().enumerate() {
                    let _ = write!(
                        d,
                        "{}{:.1},{:.1} ",
                        if j == 0 { 'M' } else { 'L' },
                        sx(self.tx(x)),
                        sy(y)
                    );
                }
            }
            // A series with no sample at all keeps its path with an empty `d`, which draws
            // nothing and is valid SVG; a lone "M" is a syntax error browsers log (seen live: a
            // storm's per-profile curve before any of that profile's users came back).
            let style = if s.faint {
                r#" stroke-width="1.2" stroke-dasharray="5 3" stroke-opacity="0.7""#
            } else {
                r#" stroke-width="1.8" stroke-linecap="round""#
            };
            let _ = write!(
                svg,
                r#"<path data-series="{}" data-x="{dx}" data-y="{dy}" d="{}" fill="none" stroke="{colour}"{style}/>"#,
                escape(&s.name),
                d.trim_end()
            );
        }
        svg.push_str("</svg><div class=\"legend\">");
        for (i, s) in self.series.iter().enumerate() {
            let _ = write!(
                svg,
                r#"<span><i style="background:{}"></i>{}{}</span>"#,
                COLOURS[i % COLOURS.len()],
                escape(&s.name),
                if s.faint { " (dashed)" } else { "" }
            );
        }
        if !self.empty.is_empty() {
            svg.push_str(r#"<span><i style="background:#f3f4f6;border:1px solid #d1d5db"></i>no samples</span>"#);
        }
        svg.push_str("</div></figure>");
        svg
    }
}

/// What a marker shows above the plot: its label, cut short (the tooltip has all of it).
fn label_text(label: &str) -> String {
    const MAX: usize = 40;
    if label.chars().count() <= MAX {
        label.to_owned()
    } else {
        let mut s: String = label.chars().take(MAX - 1).collect();
        s.push('…');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(series: Vec<Series>, markers: Vec<Marker>, x_axis: XAxis) -> String {
        Chart {
            id: "c",
            title: "<t>",
            x_label: "s",
            y_label: "ms",
            series,
            markers,
            x_axis,
            empty: vec![],
            width: WIDE,
        }
        .render()
    }

    #[test]
    fn one_path_per_series_and_escaped_labels() {
        let svg = chart(
            vec![
                Series::new("p50", vec![(0.0, 1.0), (1.0, 2.0)]),
                Series::new("a&b", vec![(0.0, 3.0)]),
            ],
            vec![Marker {
                x: 0.5,
                label: "drop <all>".into(),
                tip: "drop <all>: ok".into(),
            }],
            XAxis::Linear,
        );
        assert_eq!(svg.matches("<path data-series=").count(), 2);
        assert!(svg.contains("&lt;t&gt;") && svg.contains("a&amp;b") && svg.contains("drop &lt;all&gt;"));
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn a_series_without_samples_has_an_empty_path() {
        let svg = chart(
            vec![
                Series::new("seen", vec![(1.0, 1.0), (2.0, 2.0)]),
                Series::new("none", vec![]),
            ],
            vec![],
            XAxis::run(10.0),
        );
        let ds: Vec<&str> = svg.split(" d=\"").skip(1).filter_map(|r| r.split('"').next()).collect();
        assert_eq!(ds.len(), 2, "{svg}");
        // Every path's data is empty or starts with a moveto followed by a number: a lone "M" is
        // an error in a browser's console.
        for d in ds {
            assert!(d.is_empty() || d.starts_with('M') && d.len() > 1, "{d}");
        }
    }

    #[test]
    fn a_gap_cuts_the_line() {
        let nan = f64::NAN;
        let svg = chart(
            vec![Series::new("p50", vec![(1.0, 1.0), (2.0, 2.0), (3.0, nan), (9.0, 4.0)])],
            vec![],
            XAxis::run(10.0),
        );
        let d = svg
            .split(" d=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("");
        assert_eq!(d.matches('M').count(), 2, "two subpaths: {d}");
        assert!(svg.contains(r#"data-x="1 2|9""#), "{svg}");
        assert!(svg.contains(r#"data-x0="0" data-x1="10""#), "{svg}");
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn run_axis_has_round_ticks() {
        for (last, end, step) in [
            (0.4, 1.0, 1.0),
            (8.3, 9.0, 1.0),
            (50.075, 50.0, 5.0),
            (51.2, 60.0, 10.0),
            (95.0, 100.0, 10.0),
            (600.5, 600.0, 60.0),
        ] {
            match XAxis::run(last) {
                XAxis::Run { end: e, step: s } => assert_eq!((e, s), (end, step), "{last}"),
                _ => unreachable!(),
            }
        }
    }

    #[test]
    fn overlapping_marker_labels_go_to_separate_rows() {
        let svg = chart(
            vec![Series::new("u", vec![(0.0, 1.0), (10.0, 1.0)])],
            vec![
                Marker {
                    x: 2.0,
                    label: "block_websocket for 9s".into(),
                    tip: String::new(),
                },
                Marker {
                    x: 2.5,
                    label: "drop_sockets 20%".into(),
                    tip: String::new(),
                },
            ],
            XAxis::run(10.0),
        );
        assert_eq!(svg.matches("class=\"marker\"").count(), 2);
        assert!(
            svg.contains("viewBox=\"0 0 1040 284\""),
            "two label rows make it taller: {svg}"
        );
    }

    #[test]
    fn empty_chart_is_well_formed() {
        let svg = chart(vec![], vec![], XAxis::Percentile);
        assert!(!svg.contains("NaN"));
    }
}
