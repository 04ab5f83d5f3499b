//! Latency statistics per request type, from an HDR histogram: count, errors, mean, p50, p90,
//! p99 and max, plus the table the tool prints.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::fmt::Write;

/// The request types the tool measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `GET /stocks/{name}`
    Lookup,
    /// `POST /orders`
    Trade,
    /// `GET /orders/{n}` (the verification read-back)
    Query,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 3] = [Kind::Lookup, Kind::Trade, Kind::Query];

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Lookup => "lookup",
            Kind::Trade => "trade",
            Kind::Query => "query",
        }
    }
}

/// One request as measured.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    /// Client session number.
    pub session: usize,
    /// Request type.
    pub kind: Kind,
    /// When it started, in microseconds since the run began.
    pub start_us: u64,
    /// How long it took, in microseconds.
    pub latency_us: u64,
    /// HTTP status, 0 when no answer came.
    pub status: u16,
}

impl Sample {
    /// A failure the client noticed: no answer, or any status but 2xx and 409 (not enough
    /// quantity, a normal market answer).
    pub fn is_error(&self) -> bool {
        !(200..300).contains(&self.status) && self.status != 409
    }
}

/// Summary of one request type.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// Request type.
    pub kind: Kind,
    /// Requests sent.
    pub count: u64,
    /// Requests that failed (see `Sample::is_error`).
    pub errors: u64,
    /// Requests answered 409 (not enough quantity).
    pub rejected: u64,
    /// Mean latency, microseconds.
    pub mean_us: f64,
    /// Median latency, microseconds.
    pub p50_us: u64,
    /// 90th percentile, microseconds.
    pub p90_us: u64,
    /// 99th percentile, microseconds.
    pub p99_us: u64,
    /// Slowest, microseconds.
    pub max_us: u64,
}

/// A histogram for latencies from 1 µs to 100 s at 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid histogram bounds")
}

/// Summarizes the samples of one kind (None when there are none).
pub fn summarize(kind: Kind, samples: &[Sample]) -> Option<Summary> {
    let mut h = histogram();
    let (mut errors, mut rejected) = (0, 0);
    for s in samples.iter().filter(|s| s.kind == kind) {
        h.saturating_record(s.latency_us.max(1));
        errors += s.is_error() as u64;
        rejected += (s.status == 409) as u64;
    }
    (!h.is_empty()).then(|| Summary {
        kind,
        count: h.len(),
        errors,
        rejected,
        mean_us: h.mean(),
        p50_us: h.value_at_quantile(0.50),
        p90_us: h.value_at_quantile(0.90),
        p99_us: h.value_at_quantile(0.99),
        max_us: h.max(),
    })
}

/// Summaries of every kind present.
pub fn summarize_all(samples: &[Sample]) -> Vec<Summary> {
    Kind::ALL
        .iter()
        .filter_map(|k| summarize(*k, samples))
        .collect()
}

fn ms(us: f64) -> String {
    format!("{:.3}", us / 1000.0)
}

/// The per-type table, latencies in milliseconds.
pub fn table(summaries: &[Summary]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<8} {:>7} {:>6} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "type", "count", "errors", "rejected", "mean ms", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    for s in summaries {
        let _ = writeln!(
            out,
            "{:<8} {:>7} {:>6} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
            s.kind.name(),
            s.count,
            s.errors,
            s.rejected,
            ms(s.mean_us),
            ms(s.p50_us as f64),
            ms(s.p90_us as f64),
            ms(s.p99_us as f64),
            ms(s.max_us as f64)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(kind: Kind, latencies: impl IntoIterator<Item = u64>) -> Vec<Sample> {
        latencies
            .into_iter()
            .map(|l| Sample {
                session: 0,
                kind,
                start_us: 0,
                latency_us: l,
                status: 200,
            })
            .collect()
    }

    #[test]
    fn percentiles_of_known_data() {
        // 1..=1000 µs, one each: p50 = 500, p90 = 900, p99 = 990, max = 1000, mean = 500.5.
        let s = summarize(Kind::Lookup, &samples(Kind::Lookup, 1..=1000)).unwrap();
        assert_eq!(s.count, 1000);
        assert_eq!(
            (s.p50_us, s.p90_us, s.p99_us, s.max_us),
            (500, 900, 990, 1000)
        );
        assert!((s.mean_us - 500.5).abs() < 0.5, "{}", s.mean_us);
    }

    #[test]
    fn large_values_keep_three_significant_digits() {
        let s = summarize(
            Kind::Trade,
            &samples(Kind::Trade, [10_000, 20_000, 1_234_567]),
        )
        .unwrap();
        // HDR reports the top of the value's bucket: equal to 3 significant digits.
        assert!((20_000..=20_020).contains(&s.p50_us), "{}", s.p50_us);
        assert!((1_234_000..=1_235_000).contains(&s.max_us), "{}", s.max_us);
    }

    #[test]
    fn errors_and_rejections_are_counted_apart() {
        let mut v = samples(Kind::Trade, [5, 5, 5, 5]);
        v[0].status = 409;
        v[1].status = 503;
        v[2].status = 0;
        let s = summarize(Kind::Trade, &v).unwrap();
        assert_eq!((s.count, s.errors, s.rejected), (4, 2, 1));
        assert!(summarize(Kind::Query, &v).is_none());
        assert!(table(&[s]).contains("trade"));
    }
}
