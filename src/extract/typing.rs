//! Value typing: one Intercom attribute has one type, so every field (CSV column, JSON key,
//! Success Metric) gets a single [`Kind`] inferred over all of its values.

use serde_json::Value;

/// The type of a field over all its values. Ordered as a lattice: `Empty` (no value seen) is
/// the bottom, `String` the top; [`Kind::join`] moves up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Empty,
    Integer,
    Float,
    Boolean,
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
            "string" => Kind::String,
            _ => return None,
        })
    }
}

/// Kind of one CSV cell. Numbers follow JSON's number grammar, so `02134`, `+5`, `inf` and
/// `NaN` are strings; an integer must also fit in an `i64` (larger ones are floats).
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
        None => Kind::String,
    }
}

/// Kind of one JSON value: JSON values keep their JSON type.
pub fn kind_of_json(value: &Value) -> Kind {
    match value {
        Value::Null => Kind::Empty,
        Value::Bool(_) => Kind::Boolean,
        Value::Number(n) if n.is_i64() => Kind::Integer,
        Value::Number(_) => Kind::Float,
        Value::String(_) | Value::Array(_) | Value::Object(_) => Kind::String,
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
    fn join_is_the_column_rule() {
        use Kind::*;
        assert_eq!(Integer.join(Float), Float);
        assert_eq!(Empty.join(Boolean), Boolean);
        assert_eq!(Integer.join(Boolean), String);
        assert_eq!(Float.join(String), String);
        assert_eq!(Boolean.join(Boolean), Boolean);
    }
}
