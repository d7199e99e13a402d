//! Prometheus/OpenMetrics text parser: the parser before the OpenMetrics work (HEAD) vs now,
//! on the same bodies in one run. Not a workspace member; see RESULTS.md for the command.
#![allow(dead_code)]
mod new;
mod old;
use std::hint::black_box;
use std::time::Instant;

fn body(meta: bool) -> String {
    let mut s = String::new();
    for f in 0..250 {
        if meta {
            s.push_str(&format!("# HELP fam{f} Requests handled.\n# TYPE fam{f} counter\n# UNIT fam{f} requests\n"));
        }
        for c in ["200", "404", "500", "503"] {
            s.push_str(&format!("fam{f}_total{{route=\"/api/v1/x\",code=\"{c}\",method=\"GET\"}} {}.0\n", f * 7 + 3));
            s.push_str(&format!("fam{f}_created{{route=\"/api/v1/x\",code=\"{c}\",method=\"GET\"}} 1.7e9\n"));
        }
    }
    s.push_str("# EOF\n");
    s
}

fn measure(runs: usize, f: &mut dyn FnMut() -> usize) -> f64 {
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let st = Instant::now();
            for _ in 0..10 { black_box(f()); }
            st.elapsed().as_secs_f64() / 10.0
        })
        .collect();
    t.sort_by(|a, b| a.total_cmp(b));
    t[runs / 2]
}

fn main() {
    let runs = 31;
    for meta in [false, true] {
        let b = body(meta);
        let lines = b.lines().count() as f64;
        let o = measure(runs, &mut || old::parse_prometheus_text(black_box(&b)).0.len());
        let n = measure(runs, &mut || new::parse_prometheus_text(black_box(&b)).0.len());
        let om = measure(runs, &mut || new::parse_exposition(black_box(&b), new::ExpositionFormat::OpenMetrics).samples.len());
        println!("body {} lines ({} B), metadata={meta}: ns/line median: old {:.0}  new(prom) {:.0}  new(openmetrics) {:.0}  ratio new/old {:.2}",
            lines, b.len(), o * 1e9 / lines, n * 1e9 / lines, om * 1e9 / lines, n / o);
    }
}
