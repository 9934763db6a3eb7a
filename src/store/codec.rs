//! The compact binary encodings of the blobs the store keeps (postcard, varint integers):
//! account fields, account children and payloads. Decoding borrows strings from the blob.
//!
//! A payload's canonical JSON (the bytes its hash covers and the body the push sends) is
//! rendered from its decoded form by [`Payload::to_json`], the one place that defines it.

use std::borrow::Cow;

use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Deserialize, Serialize, Serializer};

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

impl Serialize for ScalarJson<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Scalar::Bool(b) => s.serialize_bool(*b),
            Scalar::Int(i) => s.serialize_i64(*i),
            Scalar::Float(f) => s.serialize_f64(*f),
            Scalar::Str(t) => s.serialize_str(t),
        }
    }
}

/// A scalar serialized as its JSON value.
struct ScalarJson<'s, 'a>(&'s Scalar<'a>);

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
    // Serializing into a growable Vec cannot fail for these types.
    postcard::to_allocvec(value).unwrap_or_default()
}

/// Decodes a blob written by [`encode`].
pub fn decode<'a, T: Deserialize<'a>>(what: &'static str, blob: &'a [u8]) -> Result<T, DecodeError> {
    postcard::from_bytes(blob).map_err(|source| DecodeError { what, source })
}

impl<'a> Payload<'a> {
    pub fn attributes(&self) -> &[(u32, Scalar<'a>)] {
        match self {
            Payload::Company { attributes, .. } | Payload::User { attributes, .. } => attributes,
        }
    }

    /// The canonical JSON: keys sorted, as `PUT` bodies are built from and hashes cover.
    /// `names[name_key]` is each attribute's name; attributes must be sorted by name.
    pub fn to_json(&self, names: &[String]) -> String {
        let mut out = Vec::with_capacity(256);
        self.write_json(names, &mut out);
        // serde_json writes UTF-8 only.
        String::from_utf8(out).unwrap_or_default()
    }

    /// [`Self::to_json`] into a reused buffer (cleared first).
    pub fn write_json(&self, names: &[String], out: &mut Vec<u8>) {
        out.clear();
        let mut serializer = serde_json::Serializer::new(out);
        // Writing to a Vec cannot fail.
        let _ = CanonicalJson {
            payload: self,
            names,
        }
        .serialize(&mut serializer);
    }
}

struct CanonicalJson<'p, 'a> {
    payload: &'p Payload<'a>,
    names: &'p [String],
}

struct AttributesJson<'p, 'a> {
    attributes: &'p [(u32, Scalar<'a>)],
    names: &'p [String],
}

impl Serialize for AttributesJson<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.attributes.len()))?;
        for (key, value) in self.attributes {
            let name = self.names.get(*key as usize).map_or("", String::as_str);
            map.serialize_entry(name, &ScalarJson(value))?;
        }
        map.end()
    }
}

impl Serialize for CanonicalJson<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let attributes = AttributesJson {
            attributes: self.payload.attributes(),
            names: self.names,
        };
        match self.payload {
            Payload::Company {
                company_id,
                monthly_spend,
                ..
            } => {
                let mut st = s.serialize_struct("Company", 3)?;
                st.serialize_field("company_id", company_id.as_ref())?;
                st.serialize_field("custom_attributes", &attributes)?;
                if let Some(spend) = monthly_spend {
                    st.serialize_field("monthly_spend", spend)?;
                }
                st.end()
            }
            Payload::User {
                external_id, email, ..
            } => {
                let mut st = s.serialize_struct("User", 3)?;
                st.serialize_field("custom_attributes", &attributes)?;
                st.serialize_field("email", &email.as_deref())?;
                st.serialize_field("external_id", &external_id.as_deref())?;
                st.end()
            }
        }
    }
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
    fn a_damaged_blob_is_an_error_not_a_panic() {
        let err = decode::<Payload<'_>>("payload", &[9, 9, 9]).unwrap_err();
        assert!(err.to_string().contains("payload"), "{err}");
    }
}
