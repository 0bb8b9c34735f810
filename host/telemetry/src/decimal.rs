//! A fixed-point number written into a log line (`0.95`, `0.000120`): a count of small units
//! shown in a larger one, written from integers. The request line's latency and cost went
//! through `{:.2}` and `{:.6}` of an `f64`, float formatting that was ~2,800 instructions of a
//! JSON request's ~186,000 (docs/performance.md).

use std::fmt;
use std::time::Duration;

/// `units` of 10^-`places`, written with exactly `places` decimals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decimal {
    units: u64,
    places: u32,
}

impl Decimal {
    /// At most 18 places (a `u64` holds 10^19): more are taken as 18.
    pub fn new(units: u64, places: u32) -> Decimal {
        Decimal {
            units,
            places: places.min(18),
        }
    }

    /// A duration in milliseconds with two decimals (to the nearest 10 µs, halves up).
    pub fn millis(elapsed: Duration) -> Decimal {
        let tens_of_micros = elapsed.as_nanos().saturating_add(5_000) / 10_000;
        Decimal::new(u64::try_from(tens_of_micros).unwrap_or(u64::MAX), 2)
    }

    /// Micro-USD as USD with six decimals: exact, every micro-dollar shown.
    pub fn usd(micro_usd: u64) -> Decimal {
        Decimal::new(micro_usd, 6)
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scale = 10u64.pow(self.places);
        f.write_str(itoa::Buffer::new().format(self.units / scale))?;
        if self.places > 0 {
            // scale + fraction: the fraction's leading zeros, less the leading 1.
            let fraction = u128::from(scale) + u128::from(self.units % scale);
            f.write_str(".")?;
            f.write_str(&itoa::Buffer::new().format(fraction)[1..])?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_as_the_float_formats_wrote_it() {
        for micro_usd in [0, 1, 120, 999_999, 1_000_000, 1_234_567, 98_765_432_100] {
            assert_eq!(
                Decimal::usd(micro_usd).to_string(),
                format!("{:.6}", micro_usd as f64 / 1e6),
                "{micro_usd}"
            );
        }
        assert_eq!(Decimal::new(5, 0).to_string(), "5");
        assert_eq!(Decimal::new(7, 3).to_string(), "0.007");
        assert_eq!(
            Decimal::new(u64::MAX, 18).to_string(),
            "18.446744073709551615"
        );
    }

    #[test]
    fn milliseconds_round_to_ten_microseconds() {
        let ms = |nanos: u64| Decimal::millis(Duration::from_nanos(nanos)).to_string();
        assert_eq!(ms(0), "0.00");
        assert_eq!(ms(4_999), "0.00");
        assert_eq!(ms(5_000), "0.01");
        assert_eq!(ms(954_321), "0.95");
        assert_eq!(ms(955_000), "0.96");
        assert_eq!(ms(12_345_678_901), "12345.68");
        assert_eq!(
            Decimal::millis(Duration::MAX).to_string(),
            Decimal::new(u64::MAX, 2).to_string()
        );
    }
}
