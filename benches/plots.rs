//! Draws the latency distributions the benches wrote: one PNG per
//! target/bench/*.csv (`series,value`; milliseconds, or microseconds when
//! the name ends in `-us.csv`), beside it, with one CDF line per series on
//! a logarithmic latency axis.
//!
//!   cargo bench --bench plots
//!   PODSTART_BENCH_SMOKE=1 cargo test --bench plots   # with a sample CSV of its own if none exist
//!
//! Text (title, axes, legend) is drawn by plotters' `ab_glyph` backend from
//! a TrueType file read at run time: `PODSTART_BENCH_FONT`, else the first
//! `.ttf` under /usr/share/fonts (DejaVu Sans preferred). No fontconfig is
//! involved. Without any font file the plots are drawn without text.
//! Prints the list of PNGs written.
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use plotters::prelude::*;

const SIZE: (u32, u32) = (1000, 640);

/// Line colours, distinct on white (matplotlib's tab10).
const COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Registers a TrueType font as `sans-serif`; false when none was found.
fn register_font() -> bool {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PODSTART_BENCH_FONT")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    candidates.push("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf".into());
    candidates.extend(ttf_files(Path::new("/usr/share/fonts"), 4));
    for path in candidates {
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
            return true;
        }
    }
    false
}

/// `.ttf` files under `dir`, `depth` levels down at most, sorted.
fn ttf_files(dir: &Path, depth: usize) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() && depth > 0 {
            out.extend(ttf_files(&p, depth - 1));
        } else if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("ttf")) {
            out.push(p);
        }
    }
    out
}

/// Axis labels at 1, 2 and 5 times the powers of ten within `lo..=hi`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi {
        for m in [1.0, 2.0, 5.0] {
            let v = decade * m;
            if (lo..=hi).contains(&v) {
                out.push(v);
            }
        }
        decade *= 10.0;
    }
    out
}

/// The samples of a `series,value` CSV, by series.
fn read_csv(path: &Path) -> BTreeMap<String, Vec<f64>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for line in text.lines().skip(1) {
        let Some((series, value)) = line.rsplit_once(',') else {
            continue;
        };
        if let Ok(v) = value.trim().parse::<f64>() {
            out.entry(series.trim().to_owned()).or_default().push(v);
        }
    }
    for v in out.values_mut() {
        v.sort_by(f64::total_cmp);
    }
    out
}

/// Draws one CSV's series as CDFs into `png`.
fn plot(
    csv: &Path,
    png: &Path,
    text: bool,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let series = read_csv(csv);
    let name = csv
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("samples");
    let unit = if name.ends_with("-us") { "µs" } else { "ms" };
    let all: Vec<f64> = series
        .values()
        .flatten()
        .copied()
        .filter(|v| *v > 0.0)
        .collect();
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = all.iter().copied().fold(0.0, f64::max);
    let (lo, hi) = if all.is_empty() {
        (0.1, 1.0)
    } else {
        (lo * 0.9, (hi * 1.1).max(lo * 1.2))
    };
    let root = BitMapBackend::new(png, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let mut builder = ChartBuilder::on(&root);
    builder.margin(16);
    if text {
        builder
            .caption(format!("{name}: latency CDF"), ("sans-serif", 26))
            .x_label_area_size(48)
            .y_label_area_size(64);
    }
    let mut chart = builder.build_cartesian_2d(
        (lo..hi).log_scale().with_key_points(ticks(lo, hi)),
        0f64..1f64,
    )?;
    let mut mesh = chart.configure_mesh();
    if text {
        mesh.x_desc(format!("latency ({unit}, log scale)"))
            .x_label_formatter(&|v| {
                if *v >= 10.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v}")
                }
            })
            .y_desc("fraction of samples ≤ latency")
            .label_style(("sans-serif", 16));
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw()?;
    for (k, (label, values)) in series.iter().enumerate() {
        let color = COLOURS[k % COLOURS.len()];
        let n = values.len() as f64;
        let points = values
            .iter()
            .enumerate()
            .filter(|(_, v)| **v > 0.0)
            .map(|(i, v)| (*v, (i + 1) as f64 / n));
        let drawn = chart.draw_series(LineSeries::new(points, color.stroke_width(2)))?;
        if text {
            let p50 = values[values.len() / 2];
            drawn
                .label(format!("{label} (n={}, p50 {p50:.3} {unit})", values.len()))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(2))
                });
        }
    }
    if text && !series.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 16))
            .draw()?;
    }
    root.present()?;
    Ok(())
}

fn main() {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("bench");
    std::fs::create_dir_all(&dir).expect("make target/bench");
    let smoke = std::env::var("PODSTART_BENCH_SMOKE").is_ok_and(|v| !v.is_empty() && v != "0");
    let mut csvs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read target/bench")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    // In smoke mode with nothing to draw, a sample file of its own keeps
    // every drawing path exercised.
    if smoke && csvs.is_empty() {
        let sample = dir.join("plots-smoke-us.csv");
        let mut text = String::from("series,value\n");
        for i in 1..=200 {
            text.push_str(&format!("a,{}\nb,{}\n", 100 + i, 150 + 2 * i));
        }
        std::fs::write(&sample, text).expect("write the sample CSV");
        csvs.push(sample);
    }
    csvs.sort();
    let text = register_font();
    if !text {
        eprintln!("no TrueType font found (set PODSTART_BENCH_FONT): plots are drawn without text");
    }
    let mut written = Vec::new();
    for csv in &csvs {
        let png = csv.with_extension("png");
        match plot(csv, &png, text) {
            Ok(()) => written.push(png),
            Err(e) => eprintln!("{}: {e}", csv.display()),
        }
    }
    println!("PNGs written ({} of {} CSVs):", written.len(), csvs.len());
    for p in written {
        println!("{}", p.display());
    }
}
