//! The HTML rendering of a report: one self-contained page (inline CSS and SVG, no scripts,
//! fonts or links), readable offline and printable, with a chart above each section's table
//! where the report asks for one.

use std::fmt::Write as _;

use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};

use super::render::table;
use super::{Chart, ReportOutput, SectionOutput};
use crate::error::{Error, Result};

const WIDTH: f64 = 760.0;
const SERIES_COLOURS: [&str; 4] = ["#2563eb", "#ea580c", "#16a34a", "#9333ea"];
/// Rows a bar chart draws at most (the table still lists every row).
const MAX_BARS: usize = 20;

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#111827;\
max-width:980px;margin:2rem auto;padding:0 1rem;line-height:1.4}\
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;\
border-bottom:1px solid #e5e7eb;padding-bottom:.3rem}.meta{color:#6b7280;margin:.2rem 0}\
table{border-collapse:collapse;width:100%;font-size:.85rem;margin-top:.6rem}\
th,td{padding:.25rem .5rem;border-bottom:1px solid #f3f4f6;text-align:left}\
th{background:#f9fafb}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}\
svg{display:block;max-width:100%;height:auto}svg text{font-size:11px;fill:#374151}\
.empty{color:#6b7280;font-style:italic}\
@media print{body{margin:0;max-width:none}section{break-inside:avoid}}";

/// HTML-escape `text` for element content and attribute values.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The whole page.
pub(super) fn page(output: &ReportOutput) -> Result<String> {
    let mut html = String::new();
    let title = escape(&output.def.title);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title} ({period})</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <header>\n<h1>{title}</h1>\n<p class=\"meta\">Period {period} ({start} to {end}, UTC) \
         &middot; generated {generated} by SpendQL {version}</p>\n",
        period = escape(&output.period.label),
        start = output.period.start.format("%Y-%m-%d"),
        end = output.period.end.format("%Y-%m-%d"),
        generated = output.generated_at.format("%Y-%m-%d %H:%M UTC"),
        version = env!("CARGO_PKG_VERSION"),
    );
    if !output.def.description.is_empty() {
        let _ = writeln!(html, "<p>{}</p>", escape(&output.def.description));
    }
    html.push_str("</header>\n");
    for section in &output.sections {
        let _ = writeln!(html, "<section>\n<h2>{}</h2>", escape(&section.def.title));
        if let Some(chart) = &section.def.chart {
            html.push_str(&svg(section, chart)?);
        }
        html.push_str(&html_table(section)?);
        html.push_str("</section>\n");
    }
    html.push_str("</body>\n</html>\n");
    Ok(html)
}

fn html_table(section: &SectionOutput) -> Result<String> {
    let t = table(section)?;
    if t.rows.is_empty() {
        return Ok("<p class=\"empty\">No rows.</p>\n".into());
    }
    let class = |numeric: bool| if numeric { " class=\"n\"" } else { "" };
    let mut out = String::from("<table>\n<thead><tr>");
    for (column, &numeric) in t.columns.iter().zip(&t.numeric) {
        // Spaces for underscores, so that long headers can wrap.
        let header = column.replace('_', " ");
        let _ = write!(out, "<th{}>{}</th>", class(numeric), escape(&header));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in &t.rows {
        out.push_str("<tr>");
        for (cell, &numeric) in row.iter().zip(&t.numeric) {
            let _ = write!(out, "<td{}>{}</td>", class(numeric), escape(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
    Ok(out)
}

/// A column of the section as numbers (NULL and non-numbers as `None`).
fn numbers(section: &SectionOutput, name: &str) -> Result<Vec<Option<f64>>> {
    let index = column_index(section, name)?;
    let mut out = Vec::new();
    for batch in &section.batches {
        let column = cast(batch.column(index), &DataType::Float64)?;
        let values = column.as_primitive::<Float64Type>();
        out.extend(
            (0..values.len()).map(|i| {
                (values.is_valid(i) && values.value(i).is_finite()).then(|| values.value(i))
            }),
        );
    }
    Ok(out)
}

/// A column of the section as text.
fn labels(section: &SectionOutput, name: &str) -> Result<Vec<String>> {
    let index = column_index(section, name)?;
    let options = FormatOptions::default().with_null("");
    let mut out = Vec::new();
    for batch in &section.batches {
        let formatter = ArrayFormatter::try_new(batch.column(index).as_ref(), &options)?;
        out.extend((0..batch.num_rows()).map(|i| formatter.value(i).to_string()));
    }
    Ok(out)
}

fn column_index(section: &SectionOutput, name: &str) -> Result<usize> {
    section.schema.index_of(name).map_err(|_| {
        Error::Invalid(format!(
            "section {:?}: its chart names column {name:?}, which the query does not return",
            section.def.title
        ))
    })
}

/// 1234567.8 -> "1,234,568"; numbers under 100 keep two decimals.
fn short_number(value: f64) -> String {
    if value.abs() >= 100.0 {
        let digits = format!("{:.0}", value.abs());
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        if value < 0.0 {
            format!("-{grouped}")
        } else {
            grouped
        }
    } else {
        format!("{value:.2}")
    }
}

/// The opening tag of a chart `height` units tall, labelled with the section's title.
fn svg_open(section: &SectionOutput, height: f64) -> String {
    format!(
        "<svg viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"{}\">\n",
        escape(&section.def.title)
    )
}

fn svg(section: &SectionOutput, chart: &Chart) -> Result<String> {
    match chart {
        Chart::Line { x, ys, band } => line_chart(section, x, ys, band.as_ref()),
        Chart::Bar { label, value } => bar_chart(section, label, value),
        Chart::Budget {
            label,
            value,
            limit,
        } => budget_chart(section, label, value, limit),
    }
}

fn line_chart(
    section: &SectionOutput,
    x: &str,
    ys: &[String],
    band: Option<&(String, String)>,
) -> Result<String> {
    let xs = labels(section, x)?;
    let series: Vec<(String, Vec<Option<f64>>)> = ys
        .iter()
        .map(|name| Ok((name.clone(), numbers(section, name)?)))
        .collect::<Result<_>>()?;
    let band = match band {
        Some((lo, hi)) => Some((numbers(section, lo)?, numbers(section, hi)?)),
        None => None,
    };
    if xs.len() < 2 {
        return Ok(String::new());
    }
    let (height, left, right, top, bottom) = (260.0, 64.0, 12.0, 24.0, 28.0);
    let plot_w = WIDTH - left - right;
    let plot_h = height - top - bottom;
    let all = series
        .iter()
        .flat_map(|(_, v)| v.iter())
        .chain(band.iter().flat_map(|(lo, hi)| lo.iter().chain(hi.iter())))
        .flatten()
        .copied();
    let (min, max) = all.fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let span = if max - min > 0.0 { max - min } else { 1.0 };
    let px = |i: usize| left + plot_w * i as f64 / (xs.len() - 1) as f64;
    let py = |v: f64| top + plot_h * (1.0 - (v - min) / span);

    let mut out = svg_open(section, height);
    for step in 0..=4 {
        let v = min + span * f64::from(step) / 4.0;
        let _ = writeln!(
            out,
            "<line x1=\"{left}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e5e7eb\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            WIDTH - right,
            left - 6.0,
            py(v) + 4.0,
            short_number(v),
            y = py(v),
        );
    }
    for i in [0, xs.len() / 2, xs.len() - 1] {
        let anchor = match i {
            0 => "start",
            i if i == xs.len() - 1 => "end",
            _ => "middle",
        };
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text>",
            px(i),
            height - 8.0,
            escape(&xs[i])
        );
    }
    if let Some((lo, hi)) = &band {
        let points: Vec<usize> = (0..xs.len())
            .filter(|&i| {
                lo.get(i).copied().flatten().is_some() && hi.get(i).copied().flatten().is_some()
            })
            .collect();
        if points.len() >= 2 {
            let mut path = String::new();
            for &i in &points {
                let _ = write!(path, "{:.1},{:.1} ", px(i), py(hi[i].unwrap_or(0.0)));
            }
            for &i in points.iter().rev() {
                let _ = write!(path, "{:.1},{:.1} ", px(i), py(lo[i].unwrap_or(0.0)));
            }
            let _ = writeln!(
                out,
                "<polygon points=\"{}\" fill=\"{}\" fill-opacity=\"0.18\" stroke=\"none\"/>",
                path.trim_end(),
                SERIES_COLOURS[1]
            );
        }
    }
    for (k, (name, values)) in series.iter().enumerate() {
        let colour = SERIES_COLOURS[k % SERIES_COLOURS.len()];
        // A gap in a series (NULL) ends one polyline and starts the next.
        let mut segment = Vec::new();
        let flush = |segment: &mut Vec<String>, out: &mut String| {
            if segment.len() >= 2 {
                let _ = writeln!(
                    out,
                    "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>",
                    segment.join(" ")
                );
            }
            segment.clear();
        };
        for (i, value) in values.iter().enumerate() {
            match value {
                Some(v) => segment.push(format!("{:.1},{:.1}", px(i), py(*v))),
                None => flush(&mut segment, &mut out),
            }
        }
        flush(&mut segment, &mut out);
        let _ = writeln!(
            out,
            "<rect x=\"{:.1}\" y=\"6\" width=\"10\" height=\"10\" fill=\"{colour}\"/>\
             <text x=\"{:.1}\" y=\"15\">{}</text>",
            left + 150.0 * k as f64,
            left + 150.0 * k as f64 + 14.0,
            escape(name)
        );
    }
    out.push_str("</svg>\n");
    Ok(out)
}

/// Rows to draw: not a TOTAL row, at most [`MAX_BARS`].
fn bar_rows(names: &[String]) -> Vec<usize> {
    (0..names.len())
        .filter(|&i| names[i] != "TOTAL")
        .take(MAX_BARS)
        .collect()
}

fn truncated(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut short: String = text.chars().take(max - 1).collect();
        short.push('…');
        short
    }
}

fn bar_chart(section: &SectionOutput, label: &str, value: &str) -> Result<String> {
    let names = labels(section, label)?;
    let values = numbers(section, value)?;
    let rows = bar_rows(&names);
    if rows.is_empty() {
        return Ok(String::new());
    }
    let (left, right, bar_h, gap) = (200.0, 90.0, 16.0, 6.0);
    let height = rows.len() as f64 * (bar_h + gap) + gap;
    let max = rows
        .iter()
        .filter_map(|&i| values[i])
        .fold(0.0f64, f64::max);
    let scale = if max > 0.0 {
        (WIDTH - left - right) / max
    } else {
        0.0
    };
    let mut out = svg_open(section, height);
    for (k, &i) in rows.iter().enumerate() {
        let y = gap + k as f64 * (bar_h + gap);
        let v = values[i].unwrap_or(0.0);
        let w = (v.max(0.0) * scale).max(1.0);
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{left}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{bar_h}\" fill=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            left - 6.0,
            y + 12.0,
            escape(&truncated(&names[i], 30)),
            SERIES_COLOURS[0],
            left + w + 6.0,
            y + 12.0,
            short_number(v)
        );
    }
    out.push_str("</svg>\n");
    Ok(out)
}

fn budget_chart(section: &SectionOutput, label: &str, value: &str, limit: &str) -> Result<String> {
    let names = labels(section, label)?;
    let values = numbers(section, value)?;
    let limits = numbers(section, limit)?;
    let rows = bar_rows(&names);
    if rows.is_empty() {
        return Ok(String::new());
    }
    let (left, right, bar_h, gap) = (220.0, 170.0, 16.0, 8.0);
    let height = rows.len() as f64 * (bar_h + gap) + gap;
    // 100% of a budget sits at two thirds of the track, so overspend up to 150% shows.
    let track = WIDTH - left - right;
    let full = track / 1.5;
    let mut out = svg_open(section, height);
    for (k, &i) in rows.iter().enumerate() {
        let y = gap + k as f64 * (bar_h + gap);
        let spent = values[i].unwrap_or(0.0);
        let amount = limits[i].unwrap_or(0.0);
        let used = if amount > 0.0 { spent / amount } else { 0.0 };
        let colour = if used >= 1.0 {
            "#dc2626"
        } else if used >= 0.8 {
            "#d97706"
        } else {
            "#16a34a"
        };
        let w = (used.clamp(0.0, 1.5) * full).max(1.0);
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{left}\" y=\"{y:.1}\" width=\"{track:.1}\" height=\"{bar_h}\" fill=\"#f3f4f6\"/>\
             <rect x=\"{left}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{bar_h}\" fill=\"{colour}\"/>\
             <line x1=\"{lx:.1}\" x2=\"{lx:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#111827\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{} of {} ({:.0}%)</text>",
            left - 6.0,
            y + 12.0,
            escape(&truncated(&names[i], 32)),
            y - 2.0,
            y + bar_h + 2.0,
            left + track + 6.0,
            y + 12.0,
            short_number(spent),
            short_number(amount),
            used * 100.0,
            lx = left + full,
        );
    }
    out.push_str("</svg>\n");
    Ok(out)
}
