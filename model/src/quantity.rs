//! Kubernetes resource quantities (`3500m`, `16Gi`, `16417180Ki`, `1e3`, `0.5`).
//!
//! Parsed exactly with integer arithmetic where possible, rounding up to the
//! unit asked for (a request of `1.5m` CPU still needs 2 millicores).

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("empty quantity")]
    Empty,
    #[error("malformed quantity {0:?}")]
    Malformed(String),
    #[error("negative quantity {0:?}")]
    Negative(String),
    #[error("quantity {0:?} is too large")]
    TooLarge(String),
}

/// Parses a quantity and returns its value multiplied by `scale`, rounded up.
/// `scale` = 1000 gives millicores for CPU, 1 gives bytes for memory.
pub fn parse_scaled(text: &str, scale: u64) -> Result<u64, QuantityError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(QuantityError::Empty);
    }
    if s.starts_with('-') {
        return Err(QuantityError::Negative(text.to_string()));
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    let number_end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_end);
    if number.is_empty() || number.matches('.').count() > 1 || number == "." {
        return Err(QuantityError::Malformed(text.to_string()));
    }
    // numerator / denominator of the suffix multiplier
    let (mul_num, mul_den): (u128, u128) = match suffix {
        "" => (1, 1),
        "n" => (1, 1_000_000_000),
        "u" => (1, 1_000_000),
        "m" => (1, 1_000),
        "k" => (1_000, 1),
        "M" => (1_000_000, 1),
        "G" => (1_000_000_000, 1),
        "T" => (1_000_000_000_000, 1),
        "P" => (1_000_000_000_000_000, 1),
        "E" => (1_000_000_000_000_000_000, 1),
        "Ki" => (1 << 10, 1),
        "Mi" => (1 << 20, 1),
        "Gi" => (1 << 30, 1),
        "Ti" => (1 << 40, 1),
        "Pi" => (1 << 50, 1),
        "Ei" => (1 << 60, 1),
        other => {
            let exponent = other
                .strip_prefix('e')
                .or_else(|| other.strip_prefix('E'))
                .ok_or_else(|| QuantityError::Malformed(text.to_string()))?;
            let exponent: i32 = exponent.parse().map_err(|_| QuantityError::Malformed(text.to_string()))?;
            if !(-18..=18).contains(&exponent) {
                return Err(QuantityError::TooLarge(text.to_string()));
            }
            if exponent >= 0 { (10u128.pow(exponent as u32), 1) } else { (1, 10u128.pow((-exponent) as u32)) }
        }
    };
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if frac_part.len() > 18 || int_part.len() > 30 {
        return Err(QuantityError::TooLarge(text.to_string()));
    }
    let frac_den: u128 = 10u128.pow(frac_part.len() as u32);
    let digits = format!("{int_part}{frac_part}");
    let mantissa: u128 =
        if digits.is_empty() { 0 } else { digits.parse().map_err(|_| QuantityError::Malformed(text.to_string()))? };
    let too_large = || QuantityError::TooLarge(text.to_string());
    let numerator = mantissa.checked_mul(mul_num).and_then(|v| v.checked_mul(scale as u128)).ok_or_else(too_large)?;
    let denominator = frac_den.checked_mul(mul_den).ok_or_else(too_large)?;
    let value = numerator.div_ceil(denominator);
    u64::try_from(value).map_err(|_| too_large())
}

/// CPU in millicores.
pub fn parse_cpu_millis(text: &str) -> Result<u64, QuantityError> {
    parse_scaled(text, 1000)
}

/// Memory (or any byte quantity) in bytes.
pub fn parse_bytes(text: &str) -> Result<u64, QuantityError> {
    parse_scaled(text, 1)
}

/// A plain count (pods), rounded up.
pub fn parse_count(text: &str) -> Result<u64, QuantityError> {
    parse_scaled(text, 1)
}

/// Formats millicores for people: whole cores when exact, `NNNm` below ten
/// cores (as kubectl does), cores with one decimal above (`1150.8`).
pub fn format_cpu(millis: u64) -> String {
    if millis.is_multiple_of(1000) {
        format!("{}", millis / 1000)
    } else if millis < 10_000 {
        format!("{millis}m")
    } else {
        format!("{:.1}", millis as f64 / 1000.0)
    }
}

/// Formats bytes in binary units with one decimal (`15.7Gi`).
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [(&str, u64); 4] = [("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)];
    for (unit, size) in UNITS {
        if bytes >= size {
            return format!("{:.1}{unit}", bytes as f64 / size as f64);
        }
    }
    format!("{bytes}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_forms() {
        assert_eq!(parse_cpu_millis("3500m"), Ok(3500));
        assert_eq!(parse_cpu_millis("4"), Ok(4000));
        assert_eq!(parse_cpu_millis("0.5"), Ok(500));
        assert_eq!(parse_cpu_millis("1.5m"), Ok(2));
        assert_eq!(parse_cpu_millis("250000000n"), Ok(250));
        assert_eq!(parse_cpu_millis("1e3"), Ok(1_000_000));
    }

    #[test]
    fn memory_forms() {
        assert_eq!(parse_bytes("16Gi"), Ok(16 << 30));
        assert_eq!(parse_bytes("16417180Ki"), Ok(16_417_180 * 1024));
        assert_eq!(parse_bytes("128974848"), Ok(128_974_848));
        assert_eq!(parse_bytes("129M"), Ok(129_000_000));
        assert_eq!(parse_bytes("0"), Ok(0));
    }

    #[test]
    fn malformed() {
        assert!(matches!(parse_bytes(""), Err(QuantityError::Empty)));
        assert!(matches!(parse_bytes("-1Gi"), Err(QuantityError::Negative(_))));
        assert!(matches!(parse_bytes("12Qi"), Err(QuantityError::Malformed(_))));
        assert!(matches!(parse_bytes("1.2.3"), Err(QuantityError::Malformed(_))));
        assert!(matches!(parse_bytes("99999Ei"), Err(QuantityError::TooLarge(_))));
    }

    #[test]
    fn formatting() {
        assert_eq!(format_cpu(4000), "4");
        assert_eq!(format_cpu(3500), "3500m");
        assert_eq!(format_cpu(1_150_800), "1150.8");
        assert_eq!(format_cpu(1_150_800), "1150.8");
        assert_eq!(format_bytes(16 << 30), "16.0Gi");
    }
}
