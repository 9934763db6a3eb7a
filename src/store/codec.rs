//! The compact binary encodings of the blobs the store keeps (postcard, varint integers):
//! account fields, account children and payloads. Decoding borrows strings from the blob.
//!
//! A payload's canonical JSON (the bytes its hash covers and the body the push sends) is
//! rendered from its decoded form by [`Payload::to_json`], the one place that defines it.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// A value of the export before typing: CSV cells and JSON strings are `Str`; JSON and
/// Parquet numbers and booleans keep their type. The field's kind (over all its values)
/// decides what it becomes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Raw<'a> {
    #[serde(borrow)]
    Str(Cow<'a, str>),
    Int(i64),
    /// Integers above `i64::MAX`.
    UInt(u64),
    Float(f64),
    Bool(bool),
}

/// An attribute value as Intercom receives it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Scalar<'a> {
    Bool(bool),
    Int(i64),
    Float(f64),
    #[serde(borrow)]
    Str(Cow<'a, str>),
}

/// An account's child rows, each list sorted by its key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Children<'a> {
    /// (element_key, count)
    pub counts: Vec<(u32, u64)>,
    /// (metric_key, raw value)
    #[serde(borrow)]
    pub metrics: Vec<(u32, Raw<'a>)>,
    /// label_key of each indicator and segment
    pub labels: Vec<u32>,
}

/// One account's fields: (field_key, raw value) in the order read; a later value of the same
/// field replaces an earlier one.
pub type Fields<'a> = Vec<(u32, Raw<'a>)>;

/// A company or user payload. Attributes are (name_key, value), sorted by attribute name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Payload<'a> {
    Company {
        #[serde(borrow)]
        company_id: Cow<'a, str>,
        monthly_spend: Option<i64>,
        attributes: Vec<(u32, Scalar<'a>)>,
    },
    User {
        #[serde(borrow)]
        external_id: Option<Cow<'a, str>>,
        #[serde(borrow)]
        email: Option<Cow<'a, str>>,
        attributes: Vec<(u32, Scalar<'a>)>,
    },
}

/// Why a blob could not be decoded (a database written by something else, or damaged).
#[derive(Debug, thiserror::Error)]
#[error("a stored {what} cannot be decoded ({source}): the database is damaged or was written by another program; run `load` again")]
pub struct DecodeError {
    what: &'static str,
    source: postcard::Error,
}

/// Encodes a value into a blob.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    thread_local! {
        /// Each thread's scratch space: a blob is written there, then copied out in one
        /// allocation of its exact size (not grown byte by byte from empty).
        static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 1 << 16]);
    }
    SCRATCH.with_borrow_mut(|scratch| match postcard::to_slice(value, scratch) {
        Ok(used) => used.to_vec(),
        // Larger than the scratch space (or a type postcard cannot write, which these are
        // not): a growable Vec.
        Err(_) => postcard::to_allocvec(value).unwrap_or_default(),
    })
}

/// Encodes [`Fields`] one entry at a time, with no `Fields` vector in between: the same
/// bytes as [`encode`] of the entries pushed. (A load encodes a million accounts' fields.)
#[derive(Debug, Default)]
pub struct FieldsEncoder {
    /// The entries so far, encoded.
    entries: Vec<u8>,
    count: usize,
}

impl FieldsEncoder {
    pub fn push(&mut self, key: u32, value: &Raw<'_>) {
        push_varint(&mut self.entries, key.into());
        match value {
            // Every CSV cell is a `Str`: written here as postcard does (the variant index 0,
            // the length, the bytes), without serde's call per byte.
            Raw::Str(text) => {
                self.entries.push(0);
                push_varint(&mut self.entries, text.len() as u64);
                self.entries.extend_from_slice(text.as_bytes());
            }
            other => {
                let entries = std::mem::take(&mut self.entries);
                // Writing to a Vec cannot fail.
                self.entries = postcard::to_extend(other, entries).unwrap_or_default();
            }
        }
        self.count += 1;
    }

    /// The encoded fields, in one allocation of their size; the encoder is empty again.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut blob = Vec::with_capacity(self.entries.len() + 10);
        // A sequence is its length, then its items.
        push_varint(&mut blob, self.count as u64);
        blob.extend_from_slice(&self.entries);
        self.entries.clear();
        self.count = 0;
        blob
    }
}

/// Appends `n` as postcard's varint (7 bits a byte, low first).
pub fn push_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Decodes a blob written by [`encode`].
pub fn decode<'a, T: Deserialize<'a>>(
    what: &'static str,
    blob: &'a [u8],
) -> Result<T, DecodeError> {
    postcard::from_bytes(blob).map_err(|source| DecodeError { what, source })
}

/// Attribute names by name_key, each already written as a JSON string (with its quotes):
/// names are escaped once, not once per payload.
#[derive(Clone, Debug, Default)]
pub struct JsonNames(Vec<String>);

impl JsonNames {
    /// `names[name_key]` is each attribute's name.
    pub fn new(names: &[String]) -> JsonNames {
        JsonNames(names.iter().map(|n| json_string(n)).collect())
    }

    fn get(&self, key: u32) -> &str {
        self.0.get(key as usize).map_or("\"\"", String::as_str)
    }
}

fn json_string(text: &str) -> String {
    // Serializing a str cannot fail.
    serde_json::to_string(text).unwrap_or_default()
}

/// Appends `value` as serde_json writes it (compact).
fn write_value<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

impl<'a> Payload<'a> {
    pub fn attributes(&self) -> &[(u32, Scalar<'a>)] {
        match self {
            Payload::Company { attributes, .. } | Payload::User { attributes, .. } => attributes,
        }
    }

    /// The canonical JSON: keys sorted, compact, as `PUT` bodies are built from and hashes
    /// cover (byte for byte what serde_json writes for a sorted map). Attributes must be
    /// sorted by name.
    pub fn to_json(&self, names: &JsonNames) -> String {
        let mut out = Vec::with_capacity(256);
        self.write_json(names, &mut out);
        // Every piece is UTF-8.
        String::from_utf8(out).unwrap_or_default()
    }

    /// [`Self::to_json`] into a reused buffer (cleared first).
    pub fn write_json(&self, names: &JsonNames, out: &mut Vec<u8>) {
        out.clear();
        match self {
            Payload::Company {
                company_id,
                monthly_spend,
                attributes,
            } => {
                out.extend_from_slice(b"{\"company_id\":");
                write_value(out, company_id.as_ref());
                out.extend_from_slice(b",\"custom_attributes\":");
                write_attributes(out, attributes, names);
                if let Some(spend) = monthly_spend {
                    out.extend_from_slice(b",\"monthly_spend\":");
                    write_value(out, spend);
                }
            }
            Payload::User {
                external_id,
                email,
                attributes,
            } => {
                out.extend_from_slice(b"{\"custom_attributes\":");
                write_attributes(out, attributes, names);
                out.extend_from_slice(b",\"email\":");
                write_value(out, &email.as_deref());
                out.extend_from_slice(b",\"external_id\":");
                write_value(out, &external_id.as_deref());
            }
        }
        out.push(b'}');
    }
}

fn write_attributes(out: &mut Vec<u8>, attributes: &[(u32, Scalar<'_>)], names: &JsonNames) {
    out.push(b'{');
    for (i, (key, value)) in attributes.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(names.get(*key).as_bytes());
        out.push(b':');
        match value {
            Scalar::Bool(b) => write_value(out, b),
            Scalar::Int(n) => write_value(out, n),
            Scalar::Float(f) => write_value(out, f),
            Scalar::Str(text) => write_value(out, text.as_ref()),
        }
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips_and_renders_canonical_json() {
        let names: Vec<String> = ["", "V A", "V B", "V C", "V D"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let payload = Payload::Company {
            company_id: "acme \"co\"".into(),
            monthly_spend: Some(1200),
            attributes: vec![
                (1, Scalar::Float(6.0)),
                (2, Scalar::Int(-3)),
                (3, Scalar::Str("é\n".into())),
                (4, Scalar::Bool(true)),
            ],
        };
        let blob = encode(&payload);
        let back: Payload<'_> = decode("payload", &blob).unwrap();
        assert_eq!(back, payload);
        let names = JsonNames::new(&names);
        assert_eq!(
            back.to_json(&names),
            r#"{"company_id":"acme \"co\"","custom_attributes":{"V A":6.0,"V B":-3,"V C":"é\n","V D":true},"monthly_spend":1200}"#
        );
        let user = Payload::User {
            external_id: None,
            email: Some("a@b".into()),
            attributes: vec![(2, Scalar::Bool(false))],
        };
        assert_eq!(
            user.to_json(&names),
            r#"{"custom_attributes":{"V B":false},"email":"a@b","external_id":null}"#
        );
    }

    #[test]
    fn fields_encoder_writes_the_bytes_of_encode() {
        let long = "x".repeat(300);
        let values = [
            Raw::Str("plan".into()),
            Raw::Str(long.as_str().into()),
            Raw::Int(-5),
            Raw::UInt(u64::MAX),
            Raw::Float(0.5),
            Raw::Bool(true),
        ];
        let mut encoder = FieldsEncoder::default();
        // 0 entries, a few, and more than a one-byte length (127).
        for count in [0, 3, 6, 130] {
            let fields: Fields<'_> = (0..count)
                .map(|i| (i as u32 * 1000, values[i % values.len()].clone()))
                .collect();
            for (key, value) in &fields {
                encoder.push(*key, value);
            }
            assert_eq!(encoder.finish(), encode(&fields), "{count} entries");
        }
    }

    #[test]
    fn a_damaged_blob_is_an_error_not_a_panic() {
        let err = decode::<Payload<'_>>("payload", &[9, 9, 9]).unwrap_err();
        assert!(err.to_string().contains("payload"), "{err}");
    }
}
