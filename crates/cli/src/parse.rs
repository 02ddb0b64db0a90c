//! Parsers of argument values clap does not know: durations, `NAME=VALUE` pairs, shifts.

/// Seconds in `90s`, `30m`, `1h30m`, `2h` or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<f64, String> {
    let secs = match s.trim().parse::<f64>() {
        Ok(v) => v,
        Err(_) => humantime::parse_duration(s.trim())
            .map_err(|e| format!("{e}; write a duration like 90s, 30m or 1h30m"))?
            .as_secs_f64(),
    };
    if secs > 0.0 && secs.is_finite() {
        Ok(secs)
    } else {
        Err("the time budget must be positive".into())
    }
}

/// `NAME=VALUE` for repeatable labelled arguments.
pub fn parse_named<T: std::str::FromStr>(s: &str) -> Result<(String, T), String>
where
    T::Err: std::fmt::Display,
{
    let (name, value) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected NAME=VALUE"))?;
    let v = value.parse::<T>().map_err(|e| format!("{value:?}: {e}"))?;
    Ok((name.to_string(), v))
}

/// `ROWS,COLS` as two non-negative integers.
pub fn parse_shift(s: &str) -> Result<[usize; 2], String> {
    let parts: Vec<Result<usize, _>> = s.split(',').map(|p| p.trim().parse::<usize>()).collect();
    match parts.as_slice() {
        [Ok(r), Ok(c)] => Ok([*r, *c]),
        _ => Err(format!("{s:?}: expected ROWS,COLS, two non-negative integers such as 8,1")),
    }
}
