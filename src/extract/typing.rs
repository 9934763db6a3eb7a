//! Value typing: one Intercom attribute has one type, so every field (CSV column, JSON key,
//! Success Metric) gets a single [`Kind`] inferred over all of its values.

use serde_json::Value;

/// The type of a field over all its values. Ordered as a lattice: `Empty` (no value seen) is
/// the bottom, `String` the top; [`Kind::join`] moves up.
///
/// `Date` is a string that is an ISO 8601 date or date-time at or after 1970 (see
/// [`parse_date`]); it joins with anything but itself to `String`, so a transform that sends
/// dates as strings (the default) sees exactly the kinds it saw before dates were typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Empty,
    Integer,
    Float,
    Boolean,
    Date,
    String,
}

impl Kind {
    /// Least kind that holds values of both `self` and `other`.
    pub fn join(self, other: Kind) -> Kind {
        use Kind::*;
        match (self, other) {
            (Empty, k) | (k, Empty) => k,
            (a, b) if a == b => a,
            (Integer, Float) | (Float, Integer) => Float,
            _ => String,
        }
    }

    /// Intercom's `data_type` for an attribute of this kind (`Empty` fields are never sent).
    pub fn data_type(self) -> &'static str {
        match self {
            Kind::Integer => "integer",
            Kind::Float => "float",
            Kind::Boolean => "boolean",
            Kind::Date => "date",
            Kind::Empty | Kind::String => "string",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Empty => "empty",
            other => other.data_type(),
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        Some(match text {
            "empty" => Kind::Empty,
            "integer" => Kind::Integer,
            "float" => Kind::Float,
            "boolean" => Kind::Boolean,
            "date" => Kind::Date,
            "string" => Kind::String,
            _ => return None,
        })
    }
}

/// Kind of one CSV cell. Numbers follow JSON's number grammar, so `02134`, `+5`, `inf` and
/// `NaN` are strings; an integer must also fit in an `i64` (larger ones are floats); text that
/// [`parse_date`] reads as a date at or after 1970 is a `Date`.
pub fn sniff_text(cell: &str) -> Kind {
    if cell.is_empty() {
        return Kind::Empty;
    }
    match json_number_shape(cell) {
        Some(NumberShape::Integer) if cell.parse::<i64>().is_ok() => Kind::Integer,
        Some(_) => Kind::Float,
        None if cell.eq_ignore_ascii_case("true") || cell.eq_ignore_ascii_case("false") => {
            Kind::Boolean
        }
        None => kind_of_string(cell),
    }
}

/// Kind of one JSON value: JSON values keep their JSON type (a string may be a `Date`).
pub fn kind_of_json(value: &Value) -> Kind {
    match value {
        Value::Null => Kind::Empty,
        Value::Bool(_) => Kind::Boolean,
        Value::Number(n) if n.is_i64() => Kind::Integer,
        Value::Number(_) => Kind::Float,
        Value::String(s) => kind_of_string(s),
        Value::Array(_) | Value::Object(_) => Kind::String,
    }
}

/// `Date` for a usable date, else `String`.
fn kind_of_string(text: &str) -> Kind {
    match parse_date(text) {
        DateText::Date(_) => Kind::Date,
        _ => Kind::String,
    }
}

/// Bumped whenever the kinds a load infers change, so that an export loaded by an older
/// build is loaded again instead of being skipped as unchanged (part of the export digest).
pub const KINDS_VERSION: &str = "kinds-v2 (date)";

/// What a text is as a date.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DateText {
    /// An ISO 8601 date or date-time at or after 1970-01-01T00:00:00Z: its unix seconds.
    Date(i64),
    /// A valid date or date-time before 1970 (Intercom's dates are unsigned unix seconds).
    BeforeEpoch,
    /// Starts like a date (`YYYY-MM-DD`) but is not a valid one (`2027-02-30`,
    /// `2027-03-01T25:00`, `2027-03-01 or later`).
    Invalid,
    /// Not shaped like a date at all.
    NotDate,
}

/// Reads an ISO 8601 (RFC 3339 profile) date or date-time:
/// `YYYY-MM-DD`, or that followed by `T` (or a space) and `hh:mm`, `hh:mm:ss` or
/// `hh:mm:ss.fraction`, then optionally `Z` or an offset `±hh:mm`, `±hhmm` or `±hh`. A date
/// alone is midnight UTC, a date-time without offset is UTC; a fraction of a second is dropped
/// (the instant is rounded down to its second).
pub fn parse_date(text: &str) -> DateText {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let slice = b.get(range)?;
        slice.iter().try_fold(0i64, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
        })
    };
    let (Some(year), Some(month), Some(day)) = (digits(0..4), digits(5..7), digits(8..10)) else {
        return DateText::NotDate;
    };
    if b[4] != b'-' || b[7] != b'-' {
        return DateText::NotDate;
    }
    let parsed = (|| -> Option<i64> {
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return None;
        }
        let mut seconds = days_from_civil(year, month, day) * 86_400;
        let rest = &b[10..];
        if rest.is_empty() {
            return Some(seconds);
        }
        if !matches!(rest[0], b'T' | b' ') {
            return None;
        }
        let (hour, minute) = (digits(11..13)?, digits(14..16)?);
        if b[13] != b':' || hour > 23 || minute > 59 {
            return None;
        }
        seconds += hour * 3600 + minute * 60;
        let mut i = 16;
        if b.get(i) == Some(&b':') {
            let second = digits(i + 1..i + 3)?;
            if second > 59 {
                return None;
            }
            seconds += second;
            i += 3;
            if b.get(i) == Some(&b'.') {
                let fraction = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
                if fraction == 0 {
                    return None;
                }
                i += 1 + fraction;
            }
        }
        let offset = match &b[i..] {
            [] | [b'Z'] => 0,
            [sign @ (b'+' | b'-'), zone @ ..] => {
                let (hours, minutes) = match zone.len() {
                    2 => (digits(i + 1..i + 3)?, 0),
                    4 => (digits(i + 1..i + 3)?, digits(i + 3..i + 5)?),
                    5 if zone[2] == b':' => (digits(i + 1..i + 3)?, digits(i + 4..i + 6)?),
                    _ => return None,
                };
                if hours > 23 || minutes > 59 {
                    return None;
                }
                let offset = hours * 3600 + minutes * 60;
                if *sign == b'+' {
                    offset
                } else {
                    -offset
                }
            }
            _ => return None,
        };
        Some(seconds - offset)
    })();
    match parsed {
        Some(seconds) if seconds >= 0 => DateText::Date(seconds),
        Some(_) => DateText::BeforeEpoch,
        None => DateText::Invalid,
    }
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Why a field that holds mostly dates is not a date attribute: its first value that is not a
/// usable date, preferring one shaped like a date (before 1970, or invalid) over any other.
#[derive(Clone, Debug, Default)]
pub struct DateEvidence {
    /// Values that are dates, or shaped like one.
    dated: u64,
    /// Other non-empty values.
    other: u64,
    refusal: Option<DateRefusal>,
}

#[derive(Clone, Debug)]
struct DateRefusal {
    value: String,
    place: String,
    shaped: bool,
    why: &'static str,
}

impl DateEvidence {
    /// Takes one non-empty value of kind `kind`; `text` is the value when it is text (a CSV
    /// cell, a JSON string). `context` gives the value as written and where it was read; it is
    /// only called for a value kept as the refusal.
    pub fn observe(
        &mut self,
        kind: Kind,
        text: Option<&str>,
        context: impl FnOnce() -> (String, String),
    ) {
        let date = match (kind, text) {
            (Kind::Empty, _) => return,
            (Kind::Date, _) => {
                self.dated += 1;
                return;
            }
            (Kind::String, Some(text)) => parse_date(text),
            _ => DateText::NotDate,
        };
        let (shaped, why) = match date {
            DateText::BeforeEpoch => (true, "is before 1970, which Intercom's dates cannot hold"),
            DateText::Invalid => (true, "is not a valid ISO 8601 date or date-time"),
            DateText::Date(_) | DateText::NotDate => (false, "is not a date"),
        };
        if shaped {
            self.dated += 1;
        } else {
            self.other += 1;
        }
        let kept = self.refusal.as_ref().map(|r| r.shaped);
        if kept.is_none() || (shaped && kept == Some(false)) {
            let (value, place) = context();
            self.refusal = Some(DateRefusal {
                value,
                place,
                shaped,
                why,
            });
        }
    }

    /// For a field typed `kind` over all its values: why it is a string although most of its
    /// values are dates (`None` when they are not, or when it is a date).
    pub fn note(&self, kind: Kind) -> Option<String> {
        let refusal = self
            .refusal
            .as_ref()
            .filter(|_| self.dated > self.other && kind == Kind::String)?;
        Some(format!(
            "`{}` ({}) {}",
            refusal.value, refusal.place, refusal.why
        ))
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum NumberShape {
    Integer,
    Decimal,
}

/// Whether `text` matches JSON's number grammar
/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, and if so whether it is written as an
/// integer (no fraction, no exponent).
pub fn json_number_shape(text: &str) -> Option<NumberShape> {
    let bytes = text.as_bytes();
    let mut i = 0;
    if bytes.first() == Some(&b'-') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < bytes.len() && bytes[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    match bytes.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return None,
    }
    let mut shape = NumberShape::Integer;
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return None;
        }
        shape = NumberShape::Decimal;
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return None;
        }
        shape = NumberShape::Decimal;
    }
    (i == bytes.len()).then_some(shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_number_grammar_rejects_what_json_rejects() {
        for text in [
            "02134", "+5", "inf", "NaN", "1.", ".5", "1e", "-", "", "1_000", " 1", "0x10",
        ] {
            assert_eq!(json_number_shape(text), None, "{text:?}");
        }
        for text in ["0", "-0", "12", "-3"] {
            assert_eq!(
                json_number_shape(text),
                Some(NumberShape::Integer),
                "{text:?}"
            );
        }
        for text in ["0.5", "-1.25", "1e3", "1E-2", "2.5e+10"] {
            assert_eq!(
                json_number_shape(text),
                Some(NumberShape::Decimal),
                "{text:?}"
            );
        }
    }

    #[test]
    fn sniffing_types_cells() {
        assert_eq!(sniff_text(""), Kind::Empty);
        assert_eq!(sniff_text("42"), Kind::Integer);
        assert_eq!(sniff_text("99999999999999999999"), Kind::Float);
        assert_eq!(sniff_text("4.5"), Kind::Float);
        assert_eq!(sniff_text("TRUE"), Kind::Boolean);
        assert_eq!(sniff_text("False"), Kind::Boolean);
        assert_eq!(sniff_text("02134"), Kind::String);
        assert_eq!(sniff_text("yes"), Kind::String);
    }

    #[test]
    fn iso_dates_and_date_times_read_as_unix_seconds() {
        let cases = [
            ("1970-01-01", 0),
            ("2027-03-01", 1_803_859_200),
            ("2024-02-29", 1_709_164_800),
            ("2027-03-01T10:00:00Z", 1_803_895_200),
            ("2027-03-01T10:00:00", 1_803_895_200),
            ("2027-03-01 10:00:00", 1_803_895_200),
            ("2027-03-01T10:00Z", 1_803_895_200),
            ("2027-03-01T10:00:00.999Z", 1_803_895_200),
            ("2027-03-01T11:30:00+01:30", 1_803_895_200),
            ("2027-03-01T11:30:00+0130", 1_803_895_200),
            ("2027-03-01T08:00:00-02", 1_803_895_200),
            ("1970-01-01T01:00:00+01:00", 0),
        ];
        for (text, seconds) in cases {
            assert_eq!(parse_date(text), DateText::Date(seconds), "{text}");
            assert_eq!(sniff_text(text), Kind::Date, "{text}");
        }
        for text in ["1969-12-31", "1970-01-01T00:59:59+01:00", "0001-01-01"] {
            assert_eq!(parse_date(text), DateText::BeforeEpoch, "{text}");
            assert_eq!(sniff_text(text), Kind::String, "{text}");
        }
        for text in [
            "2027-02-29",
            "2027-13-01",
            "2027-03-00",
            "2027-03-01T24:00:00Z",
            "2027-03-01T10:60",
            "2027-03-01T10:00:00.Z",
            "2027-03-01T10:00:00+24:00",
            "2027-03-01T10:00:00 UTC",
            "2027-03-01T10",
            "2027-03-01 or later",
            "2027-03-01x",
        ] {
            assert_eq!(parse_date(text), DateText::Invalid, "{text}");
        }
        for text in [
            "",
            "20270301",
            "2027-3-1",
            "01/03/2027",
            "March 1, 2027",
            "2027",
        ] {
            assert_eq!(parse_date(text), DateText::NotDate, "{text}");
        }
        assert_eq!(kind_of_json(&Value::from("2027-03-01")), Kind::Date);
        assert_eq!(kind_of_json(&Value::from("1969-03-01")), Kind::String);
    }

    #[test]
    fn date_evidence_names_the_value_that_keeps_a_column_from_being_a_date() {
        let at = |value: &str, line: &str| {
            let context = (value.to_string(), format!("a:{line}"));
            move || context
        };
        let mut evidence = DateEvidence::default();
        evidence.observe(Kind::Date, Some("2027-03-01"), at("2027-03-01", "2"));
        assert_eq!(evidence.note(Kind::Date), None);
        evidence.observe(Kind::String, Some("soon"), at("soon", "3"));
        // Half dates, half not: a text column, nothing to say.
        assert_eq!(evidence.note(Kind::String), None);
        evidence.observe(Kind::Date, Some("2027-03-02"), at("2027-03-02", "4"));
        assert_eq!(
            evidence.note(Kind::String).as_deref(),
            Some("`soon` (a:3) is not a date")
        );
        evidence.observe(Kind::String, Some("1969-07-20"), at("1969-07-20", "5"));
        evidence.observe(Kind::String, Some("2027-02-30"), at("2027-02-30", "6"));
        assert_eq!(
            evidence.note(Kind::String).as_deref(),
            Some("`1969-07-20` (a:5) is before 1970, which Intercom's dates cannot hold")
        );
        // Values that are all shaped like dates, none usable: still a date column gone wrong.
        let mut old = DateEvidence::default();
        old.observe(Kind::String, Some("1950-01-01"), at("1950-01-01", "2"));
        assert_eq!(
            old.note(Kind::String).as_deref(),
            Some("`1950-01-01` (a:2) is before 1970, which Intercom's dates cannot hold")
        );
        // No date at all: nothing to say.
        let mut text = DateEvidence::default();
        text.observe(Kind::String, Some("hello"), at("hello", "2"));
        text.observe(Kind::Integer, None, at("12", "3"));
        assert_eq!(text.note(Kind::String), None);
    }

    #[test]
    fn join_is_the_column_rule() {
        use Kind::*;
        assert_eq!(Date.join(Date), Date);
        assert_eq!(Empty.join(Date), Date);
        assert_eq!(Date.join(String), String);
        assert_eq!(Integer.join(Date), String);
        assert_eq!(Integer.join(Float), Float);
        assert_eq!(Empty.join(Boolean), Boolean);
        assert_eq!(Integer.join(Boolean), String);
        assert_eq!(Float.join(String), String);
        assert_eq!(Boolean.join(Boolean), Boolean);
    }
}
