//! Line charts as inline SVG, drawn here rather than by a script, so `report.html` needs no
//! network and no JavaScript to show every chart. Each series becomes one `<path>` with a
//! `data-series` attribute, which is what the browser test counts.

use super::junit::escape;
use std::fmt::Write;

const W: f64 = 720.0;
const H: f64 = 260.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 40.0;
const COLOURS: [&str; 8] = [
    "#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563", "#ca8a04",
];

/// One line.
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Points, x ascending.
    pub points: Vec<(f64, f64)>,
}

/// A vertical marker (a timeline fault).
pub struct Marker {
    /// Where on the x axis.
    pub x: f64,
    /// Its label.
    pub label: String,
}

/// How the x axis is scaled.
#[derive(Clone, Copy, PartialEq)]
pub enum XAxis {
    /// Linear, labelled with the unit.
    Linear,
    /// Percentile spectrum: x is a percentile in [50, 99.99], placed at -log10(1 - p/100).
    Percentile,
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
    if v >= 1000.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

impl Chart<'_> {
    fn tx(&self, x: f64) -> f64 {
        match self.x_axis {
            XAxis::Linear => x,
            XAxis::Percentile => -(1.0 - (x / 100.0).min(0.999_999)).log10(),
        }
    }

    /// Renders the chart as a `<figure>` with an inline `<svg>`.
    pub fn render(&self) -> String {
        let pts = self.series.iter().flat_map(|s| s.points.iter());
        let (mut x0, mut x1, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
        for &(x, y) in pts {
            x0 = x0.min(self.tx(x));
            x1 = x1.max(self.tx(x));
            y1 = y1.max(y);
        }
        for m in &self.markers {
            x0 = x0.min(m.x);
            x1 = x1.max(m.x);
        }
        if !x0.is_finite() || !x1.is_finite() {
            (x0, x1) = (0.0, 1.0);
        }
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        let y1 = nice_max(y1);
        let sx = |x: f64| LEFT + (x - x0) / (x1 - x0) * (W - LEFT - RIGHT);
        let sy = |y: f64| TOP + (1.0 - y / y1) * (H - TOP - BOTTOM);
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<figure class="chart" id="{id}"><figcaption>{title}</figcaption><svg viewBox="0 0 {W} {H}" role="img" aria-label="{title}">"#,
            id = escape(self.id),
            title = escape(self.title)
        );
        // Axes and grid.
        for k in 0..=4 {
            let y = y1 * f64::from(k) / 4.0;
            let py = sy(y);
            let _ = write!(
                svg,
                r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#e5e7eb"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
                W - RIGHT,
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
            XAxis::Linear => (0..=5)
                .map(|k| x0 + (x1 - x0) * f64::from(k) / 5.0)
                .map(|x| (x, fmt_num(x)))
                .collect(),
        };
        for (x, label) in ticks {
            let px = sx(x);
            let _ = write!(
                svg,
                r#"<text x="{px:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"#,
                H - BOTTOM + 16.0,
                escape(&label)
            );
        }
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text><text x="12" y="{:.1}" font-size="11" transform="rotate(-90 12 {:.1})" text-anchor="middle">{}</text>"#,
            (LEFT + W - RIGHT) / 2.0,
            H - 6.0,
            escape(self.x_label),
            H / 2.0,
            H / 2.0,
            escape(self.y_label)
        );
        for m in &self.markers {
            let px = sx(m.x);
            let _ = write!(
                svg,
                r##"<line class="marker" x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{:.1}" stroke="#f59e0b" stroke-dasharray="4 3"><title>{}</title></line>"##,
                H - BOTTOM,
                escape(&m.label)
            );
        }
        for (i, s) in self.series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let mut d = String::new();
            for (k, &(x, y)) in s.points.iter().enumerate() {
                let _ = write!(
                    d,
                    "{}{:.1},{:.1} ",
                    if k == 0 { 'M' } else { 'L' },
                    sx(self.tx(x)),
                    sy(y)
                );
            }
            if s.points.len() == 1 {
                // A lone point has no line to draw: a diamond around it keeps it visible.
                let (x, y) = s.points[0];
                let (px, py) = (sx(self.tx(x)), sy(y));
                d.clear();
                let _ = write!(
                    d,
                    "M{:.1},{py:.1} L{px:.1},{:.1} L{:.1},{py:.1} L{px:.1},{:.1} Z",
                    px - 4.0,
                    py - 4.0,
                    px + 4.0,
                    py + 4.0
                );
            }
            let _ = write!(
                svg,
                r#"<path data-series="{}" d="{}" fill="none" stroke="{colour}" stroke-width="1.8"/>"#,
                escape(&s.name),
                d.trim_end()
            );
        }
        svg.push_str("</svg><div class=\"legend\">");
        for (i, s) in self.series.iter().enumerate() {
            let _ = write!(
                svg,
                r#"<span><i style="background:{}"></i>{}</span>"#,
                COLOURS[i % COLOURS.len()],
                escape(&s.name)
            );
        }
        svg.push_str("</div></figure>");
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_path_per_series_and_escaped_labels() {
        let c = Chart {
            id: "c",
            title: "<t>",
            x_label: "s",
            y_label: "ms",
            series: vec![
                Series {
                    name: "p50".into(),
                    points: vec![(0.0, 1.0), (1.0, 2.0)],
                },
                Series {
                    name: "a&b".into(),
                    points: vec![(0.0, 3.0)],
                },
            ],
            markers: vec![Marker {
                x: 0.5,
                label: "drop <all>".into(),
            }],
            x_axis: XAxis::Linear,
        };
        let svg = c.render();
        assert_eq!(svg.matches("<path data-series=").count(), 2);
        assert!(
            svg.contains(" Z\" fill=\"none\""),
            "the lone point is drawn as a closed diamond: {svg}"
        );
        assert!(svg.contains("&lt;t&gt;") && svg.contains("a&amp;b") && svg.contains("drop &lt;all&gt;"));
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn empty_chart_is_well_formed() {
        let c = Chart {
            id: "e",
            title: "e",
            x_label: "",
            y_label: "",
            series: vec![],
            markers: vec![],
            x_axis: XAxis::Percentile,
        };
        assert!(!c.render().contains("NaN"));
    }
}
