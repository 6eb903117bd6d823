//! Inline SVG charts for the report: axes with ticks, lines, shaded bands, a legend. Colours
//! come from the page's stylesheet (classes `s0`–`s7`, `band`), so the SVG holds only geometry
//! and escaped text.

use super::html::esc;
use std::fmt::Write as _;

/// One axis: a value range, linear or logarithmic.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    /// Smallest value shown.
    pub min: f64,
    /// Largest value shown.
    pub max: f64,
    /// Logarithmic (base 10); `min` must then be positive.
    pub log: bool,
}

impl Scale {
    /// A linear scale; an empty range is widened so every value has a place.
    pub fn linear(min: f64, max: f64) -> Scale {
        let max = if max > min { max } else { min + 1.0 };
        Scale {
            min,
            max,
            log: false,
        }
    }

    /// A log scale from the power of ten at or below `min` to the one at or above `max`.
    pub fn log(min: f64, max: f64) -> Scale {
        let lo = 10f64.powf(min.max(1e-9).log10().floor());
        let hi = 10f64.powf(max.max(lo).log10().ceil());
        Scale {
            min: lo,
            max: if hi > lo { hi } else { lo * 10.0 },
            log: true,
        }
    }

    /// Position of `v` between 0 (min) and 1 (max), clamped.
    pub fn frac(&self, v: f64) -> f64 {
        let f = if self.log {
            (v.max(self.min).log10() - self.min.log10()) / (self.max.log10() - self.min.log10())
        } else {
            (v - self.min) / (self.max - self.min)
        };
        if f.is_finite() {
            f.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    /// Tick positions: powers of ten for a log scale, about `n` round numbers otherwise.
    pub fn ticks(&self, n: usize) -> Vec<f64> {
        if self.log {
            let (a, b) = (
                self.min.log10().round() as i32,
                self.max.log10().round() as i32,
            );
            return (a..=b).map(|e| 10f64.powi(e)).collect();
        }
        let raw = (self.max - self.min) / n.max(1) as f64;
        let mag = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 2.5, 5.0, 10.0]
            .iter()
            .map(|m| m * mag)
            .find(|s| raw <= *s)
            .unwrap_or(10.0 * mag);
        let mut v = (self.min / step).ceil() * step;
        let mut out = Vec::new();
        while v <= self.max + step * 1e-9 && out.len() < 50 {
            out.push(v);
            v += step;
        }
        out
    }
}

/// A chart being drawn.
pub struct Chart {
    w: f64,
    h: f64,
    left: f64,
    top: f64,
    pw: f64,
    ph: f64,
    /// Horizontal scale.
    pub x: Scale,
    /// Vertical scale.
    pub y: Scale,
    body: String,
    legend: Vec<(usize, String)>,
}

impl Chart {
    /// A `w` × `h` chart with room for axis labels.
    pub fn new(w: f64, h: f64, x: Scale, y: Scale) -> Chart {
        let (left, right, top, bottom) = (78.0, 16.0, 12.0, 44.0);
        Chart {
            w,
            h,
            left,
            top,
            pw: w - left - right,
            ph: h - top - bottom,
            x,
            y,
            body: String::new(),
            legend: Vec::new(),
        }
    }

    /// Pixel column of value `v`.
    pub fn px(&self, v: f64) -> f64 {
        self.left + self.x.frac(v) * self.pw
    }

    /// Pixel row of value `v`.
    pub fn py(&self, v: f64) -> f64 {
        self.top + (1.0 - self.y.frac(v)) * self.ph
    }

    /// Grid lines and labels at the given ticks, and the axis titles.
    pub fn axes(&mut self, xticks: &[(f64, String)], yticks: &[(f64, String)], xt: &str, yt: &str) {
        let (l, t, r, b) = (self.left, self.top, self.left + self.pw, self.top + self.ph);
        for (v, label) in yticks {
            let y = self.py(*v);
            let _ = write!(
                self.body,
                r#"<line class="grid" x1="{l:.1}" y1="{y:.1}" x2="{r:.1}" y2="{y:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                l - 6.0,
                y + 4.0,
                esc(label)
            );
        }
        for (v, label) in xticks {
            let x = self.px(*v);
            let _ = write!(
                self.body,
                r#"<line class="grid" x1="{x:.1}" y1="{t:.1}" x2="{x:.1}" y2="{b:.1}"/><text class="tick" x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                b + 16.0,
                esc(label)
            );
        }
        let _ = write!(
            self.body,
            r#"<line class="axis" x1="{l:.1}" y1="{b:.1}" x2="{r:.1}" y2="{b:.1}"/><line class="axis" x1="{l:.1}" y1="{t:.1}" x2="{l:.1}" y2="{b:.1}"/><text class="title" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text class="title" transform="translate(14 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            l + self.pw / 2.0,
            self.h - 6.0,
            esc(xt),
            t + self.ph / 2.0,
            esc(yt)
        );
    }

    /// A shaded vertical band from `x0` to `x1`, with a tooltip.
    pub fn band(&mut self, x0: f64, x1: f64, title: &str) {
        let (a, b) = (self.px(x0), self.px(x1));
        let _ = write!(
            self.body,
            r#"<rect class="band" x="{a:.1}" y="{:.1}" width="{:.1}" height="{:.1}"><title>{}</title></rect>"#,
            self.top,
            (b - a).max(2.0),
            self.ph,
            esc(title)
        );
    }

    /// A line through `points` in series colour `series` (0–7), named in the legend. A
    /// non-finite y breaks the line.
    pub fn line(&mut self, points: &[(f64, f64)], series: usize, name: &str) {
        let mut d = String::new();
        let mut pen_up = true;
        for &(x, y) in points {
            if !y.is_finite() {
                pen_up = true;
                continue;
            }
            let _ = write!(
                d,
                "{}{:.1},{:.1}",
                if pen_up { "M" } else { " L" },
                self.px(x),
                self.py(y)
            );
            pen_up = false;
        }
        if d.is_empty() {
            return;
        }
        let _ = write!(
            self.body,
            r#"<path class="s{}" d="{d}"><title>{}</title></path>"#,
            series % 8,
            esc(name)
        );
        // Markers on short series only (a long one is a line).
        if points.len() <= 64 {
            for &(x, y) in points.iter().filter(|p| p.1.is_finite()) {
                let _ = write!(
                    self.body,
                    r#"<circle class="p{}" cx="{:.1}" cy="{:.1}" r="2.5"/>"#,
                    series % 8,
                    self.px(x),
                    self.py(y)
                );
            }
        }
        self.legend.push((series % 8, name.to_string()));
    }

    /// The finished figure: the `<svg>` (`label` is its accessible name) and an HTML legend
    /// below it, which wraps however long the series names are.
    pub fn finish(self, label: &str) -> String {
        let mut legend = String::new();
        for (s, name) in &self.legend {
            let _ = write!(
                legend,
                r#"<span><svg width="12" height="12" aria-hidden="true"><rect class="k{s}" width="12" height="12"/></svg> {}</span>"#,
                esc(name)
            );
        }
        format!(
            r#"<figure class="plot"><svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{label}"><title>{label}</title>{body}</svg><figcaption class="legend">{legend}</figcaption></figure>"#,
            w = self.w,
            h = self.h,
            label = esc(label),
            body = self.body,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_ticks_are_round_and_cover_the_range() {
        let s = Scale::linear(0.0, 97.0);
        assert_eq!(s.ticks(5), vec![0.0, 20.0, 40.0, 60.0, 80.0]);
        let s = Scale::linear(0.0, 1.0);
        assert_eq!(s.ticks(4), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
    }

    #[test]
    fn log_scale_snaps_to_powers_of_ten() {
        let s = Scale::log(35.0, 4_200.0);
        assert_eq!((s.min, s.max), (10.0, 10_000.0));
        assert_eq!(s.ticks(0), vec![10.0, 100.0, 1_000.0, 10_000.0]);
        assert!((s.frac(100.0) - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(s.frac(1.0), 0.0);
        assert_eq!(s.frac(1e9), 1.0);
    }

    #[test]
    fn empty_range_and_nan_do_not_break_the_drawing() {
        let s = Scale::linear(5.0, 5.0);
        assert!(s.max > s.min);
        let mut c = Chart::new(400.0, 200.0, s, Scale::linear(0.0, 1.0));
        c.line(&[(5.0, f64::NAN), (5.5, 0.5), (6.0, f64::NAN)], 0, "x");
        let svg = c.finish("t");
        assert!(svg.contains("M") && !svg.contains("NaN"));
    }

    #[test]
    fn text_is_escaped() {
        let mut c = Chart::new(
            400.0,
            200.0,
            Scale::linear(0.0, 1.0),
            Scale::linear(0.0, 1.0),
        );
        c.line(&[(0.0, 0.0), (1.0, 1.0)], 1, "<script>alert(1)</script>");
        let svg = c.finish("a\"b");
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;") && svg.contains("a&quot;b"));
    }
}
