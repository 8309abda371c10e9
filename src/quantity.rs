//! Kubernetes resource quantities ("100m", "0.5", "128Mi", "1G", "1e3"),
//! parsed exactly (no floating point) into integer millicores or bytes.
//!
//! The grammar is the one of `k8s.io/apimachinery/pkg/api/resource`:
//!
//! ```text
//! quantity ::= [sign] number suffix
//! number   ::= digits | digits "." digits | digits "." | "." digits
//! suffix   ::= "" | "m" | "k" | "M" | "G" | "T" | "P" | "E"        (decimal SI)
//!            | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei"              (binary SI)
//!            | ("e" | "E") [sign] digits                            (decimal exponent)
//! ```
//!
//! As in Kubernetes, a value that does not fall on a whole unit is rounded up
//! (away from zero): `"0.1m"` of CPU is 1 millicore, `"100m"` of memory is 1 byte.

/// Why a string is not a usable quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// The string is empty.
    #[error("empty quantity")]
    Empty,
    /// The string does not follow the quantity grammar.
    #[error(
        "{0:?} is not a Kubernetes quantity (a number with an optional suffix: \
         m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or an exponent such as e3)"
    )]
    Syntax(String),
    /// The value does not fit a 64-bit signed integer in the target unit.
    #[error("{0:?} is out of range")]
    OutOfRange(String),
}

/// Parses a CPU quantity into millicores: `"100m"` → 100, `"0.5"` → 500, `"2"` → 2000.
pub fn parse_millis(text: &str) -> Result<i64, QuantityError> {
    Quantity::parse(text)?.scaled(3, text)
}

/// Parses a quantity into whole units (bytes, for memory): `"128Mi"` → 134217728,
/// `"1G"` → 1000000000, `"1e3"` → 1000.
pub fn parse_units(text: &str) -> Result<i64, QuantityError> {
    Quantity::parse(text)?.scaled(0, text)
}

/// The largest power of ten a `u128` holds.
const MAX_POW10: i64 = 38;

/// A parsed quantity: `±mantissa × 10^exp10 × 2^shift2`.
#[derive(Debug, PartialEq, Eq)]
struct Quantity {
    negative: bool,
    mantissa: u128,
    exp10: i64,
    shift2: u32,
}

impl Quantity {
    fn parse(text: &str) -> Result<Self, QuantityError> {
        if text.is_empty() {
            return Err(QuantityError::Empty);
        }
        let syntax = || QuantityError::Syntax(text.to_owned());
        let out_of_range = || QuantityError::OutOfRange(text.to_owned());

        let (negative, rest) = split_sign(text);
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_len);

        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
            return Err(syntax());
        }
        let mut mantissa: u128 = 0;
        for digit in whole.bytes().chain(fraction.bytes()) {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(u128::from(digit - b'0')))
                .ok_or_else(out_of_range)?;
        }
        let fraction_len = i64::try_from(fraction.len()).map_err(|_| out_of_range())?;

        let (exponent, shift2) = match suffix {
            "" => (0, 0),
            "m" => (-3, 0),
            "k" => (3, 0),
            "M" => (6, 0),
            "G" => (9, 0),
            "T" => (12, 0),
            "P" => (15, 0),
            "E" => (18, 0),
            "Ki" => (0, 10),
            "Mi" => (0, 20),
            "Gi" => (0, 30),
            "Ti" => (0, 40),
            "Pi" => (0, 50),
            "Ei" => (0, 60),
            _ => {
                let digits = suffix
                    .strip_prefix('e')
                    .or_else(|| suffix.strip_prefix('E'))
                    .ok_or_else(syntax)?;
                (parse_exponent(digits).ok_or_else(syntax)?, 0)
            }
        };
        Ok(Self {
            negative,
            mantissa,
            exp10: exponent - fraction_len,
            shift2,
        })
    }

    /// The value in units of `10^-extra_exp10`, rounded up away from zero.
    fn scaled(&self, extra_exp10: i64, text: &str) -> Result<i64, QuantityError> {
        let out_of_range = || QuantityError::OutOfRange(text.to_owned());
        let value = self
            .mantissa
            .checked_mul(1u128 << self.shift2)
            .ok_or_else(out_of_range)?;
        if value == 0 {
            return Ok(0);
        }
        let exp10 = self.exp10.saturating_add(extra_exp10);
        let magnitude = if exp10 >= 0 {
            if exp10 > MAX_POW10 {
                return Err(out_of_range());
            }
            value.checked_mul(pow10(exp10)).ok_or_else(out_of_range)?
        } else if -exp10 > MAX_POW10 {
            // value < 10^39 ≤ the divisor: a non-zero fraction of one unit.
            1
        } else {
            let divisor = pow10(-exp10);
            value / divisor + u128::from(value % divisor != 0)
        };
        let magnitude = i64::try_from(magnitude).map_err(|_| out_of_range())?;
        Ok(if self.negative { -magnitude } else { magnitude })
    }
}

fn split_sign(text: &str) -> (bool, &str) {
    if let Some(rest) = text.strip_prefix('-') {
        (true, rest)
    } else {
        (false, text.strip_prefix('+').unwrap_or(text))
    }
}

/// A decimal exponent: `[sign] digits`, clamped far beyond any usable range.
fn parse_exponent(text: &str) -> Option<i64> {
    let (negative, digits) = split_sign(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let magnitude = digits.bytes().fold(0i64, |acc, digit| {
        acc.saturating_mul(10)
            .saturating_add(i64::from(digit - b'0'))
            .min(1_000_000)
    });
    Some(if negative { -magnitude } else { magnitude })
}

/// `10^exp` for `0 ≤ exp ≤ MAX_POW10`.
fn pow10(exp: i64) -> u128 {
    (0..exp).fold(1u128, |acc, _| acc * 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities_in_millicores() {
        let cases: &[(&str, i64)] = &[
            ("100m", 100),
            ("0.5", 500),
            (".5", 500),
            ("5.", 5000),
            ("2", 2000),
            ("+2", 2000),
            ("-1", -1000),
            ("1.25", 1250),
            ("0.0001", 1), // rounded up to a whole millicore
            ("0.1m", 1),
            ("0", 0),
            ("0m", 0),
            ("1e3", 1_000_000),
            ("1E3", 1_000_000),
            ("2e-3", 2),
            ("25e-2", 250),
            ("1k", 1_000_000),
            ("1e-400", 1),
            ("0e400", 0),
        ];
        for (text, want) in cases {
            assert_eq!(parse_millis(text), Ok(*want), "parse_millis({text:?})");
        }
    }

    #[test]
    fn memory_quantities_in_bytes() {
        let cases: &[(&str, i64)] = &[
            ("128Mi", 128 * 1024 * 1024),
            ("1Gi", 1 << 30),
            ("1.5Gi", 3 << 29),
            ("1G", 1_000_000_000),
            ("500k", 500_000),
            ("1e3", 1000),
            ("1E3", 1000),
            ("1e+3", 1000),
            ("64Ki", 65536),
            ("2Ti", 2 << 40),
            ("1Pi", 1 << 50),
            ("1Ei", 1 << 60),
            ("1E", 1_000_000_000_000_000_000),
            ("3M", 3_000_000),
            ("4T", 4_000_000_000_000),
            ("5P", 5_000_000_000_000_000),
            ("100m", 1), // a tenth of a byte rounds up
            ("1500m", 2),
            ("1.0000000001", 2),
            ("123456789", 123_456_789),
            ("9223372036854775807", i64::MAX),
        ];
        for (text, want) in cases {
            assert_eq!(parse_units(text), Ok(*want), "parse_units({text:?})");
        }
    }

    #[test]
    fn malformed_quantities_are_rejected() {
        let syntax = [
            "abc", " 1", "1 ", "1 Mi", "1.2.3", ".", "-", "+", "--1", "Mi", "1K", "1ki", "1mi",
            "1e", "1e+", "1e3.5", "1m5", "1MiB", "1Mi5", "0x10", "1,5", "∞",
        ];
        for text in syntax {
            assert_eq!(
                parse_units(text),
                Err(QuantityError::Syntax(text.to_owned())),
                "parse_units({text:?})"
            );
        }
        assert_eq!(parse_millis(""), Err(QuantityError::Empty));
    }

    #[test]
    fn quantities_beyond_i64_are_out_of_range() {
        for text in ["8Ei", "9223372036854775808", "1e19", "1e400", "10E"] {
            assert_eq!(
                parse_units(text),
                Err(QuantityError::OutOfRange(text.to_owned())),
                "parse_units({text:?})"
            );
        }
        // Fits as bytes, not as millicores.
        assert_eq!(parse_units("1E"), Ok(1_000_000_000_000_000_000));
        assert!(matches!(
            parse_millis("1E"),
            Err(QuantityError::OutOfRange(_))
        ));
        let many_digits = "1".repeat(60);
        assert_eq!(
            parse_units(&many_digits),
            Err(QuantityError::OutOfRange(many_digits.clone()))
        );
    }
}
