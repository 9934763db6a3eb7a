//! The attribute mapping: which Intercom custom attribute each source (account field,
//! Element, Success Metric, indicators, segments, account ownership) becomes, with its type.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::start_case::start_case;
use super::TransformError;
use crate::extract::rows::normalize_column;
use crate::extract::typing::{parse_date, DateText, Kind};
use crate::store::codec::{Raw, Scalar};
use crate::store::Attribute;

/// What the user chose about the mapping (flags or config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappingSettings {
    /// Attribute name prefix, `Vitally` by default.
    pub prefix: String,
    /// Send `monthly_spend` (= MRR rounded).
    pub monthly_spend: bool,
    /// Sources left out: `FIELD`, `field:FIELD`, `element:NAME` or `metric:NAME`.
    pub excludes: Vec<String>,
    /// How fields whose values are all dates are sent.
    pub dates: Dates,
    /// What happens to a string value longer than Intercom's [`MAX_STRING_CHARS`]. Not part
    /// of [`MappingSettings::version`]: a cut value is in the payload, so its hash follows it.
    pub long_strings: LongStrings,
}

/// Intercom's longest string custom attribute value, in characters (Unicode scalar values).
pub const MAX_STRING_CHARS: usize = 255;

/// What to do with a string value longer than [`MAX_STRING_CHARS`], which Intercom refuses
/// (and with it the whole PUT of that record).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LongStrings {
    /// Send its first 254 characters followed by `…`: 255 in all.
    #[default]
    Truncate,
    /// Refuse the transform (exit 2), naming the record and the attribute.
    Fail,
}

impl LongStrings {
    pub fn as_str(self) -> &'static str {
        match self {
            LongStrings::Truncate => "truncate",
            LongStrings::Fail => "fail",
        }
    }
}

/// `text` as Intercom accepts it: unchanged when it has at most [`MAX_STRING_CHARS`]
/// characters, else its first 254 followed by `…` (U+2026). `None` when unchanged.
pub fn cut_to_limit(text: &str) -> Option<String> {
    // At most 255 bytes is at most 255 characters: the common case costs one comparison.
    if text.len() <= MAX_STRING_CHARS {
        return None;
    }
    let mut starts = text.char_indices().map(|(i, _)| i);
    let keep = starts.nth(MAX_STRING_CHARS - 1)?; // where the 255th character starts
    starts.next()?; // a 256th: too long
    Some(format!("{}\u{2026}", &text[..keep]))
}

/// How a field (or Success Metric) whose every value is an ISO 8601 date is sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Dates {
    /// As written, in a `string` attribute (`Vitally Next Renewal Date`).
    #[default]
    String,
    /// As unix seconds, in a `date` attribute (`Vitally Next Renewal Date - date`).
    Timestamp,
}

/// What a date attribute's name adds to the string attribute's name, so that the two never
/// share a name: Intercom cannot change an attribute's type, and an archived attribute keeps
/// its name. Intercom refuses parentheses in names, hence not `(date)`.
pub const DATE_SUFFIX: &str = " - date";

impl Default for MappingSettings {
    fn default() -> Self {
        MappingSettings {
            prefix: "Vitally".into(),
            monthly_spend: true,
            excludes: Vec::new(),
            dates: Dates::String,
            long_strings: LongStrings::Truncate,
        }
    }
}

impl MappingSettings {
    /// A text that changes whenever the settings change what is sent; part of every hash.
    /// With the default `dates = "string"` it is the text of the versions before dates were
    /// typed, so no hash moves.
    pub fn version(&self) -> String {
        let mut excludes = self.excludes.clone();
        excludes.sort();
        excludes.dedup();
        let mut version = format!(
            "mapping-v1\u{1f}prefix={}\u{1f}monthly_spend={}\u{1f}exclude={}",
            self.prefix,
            self.monthly_spend,
            excludes.join("\u{1e}")
        );
        if self.dates == Dates::Timestamp {
            version.push_str("\u{1f}dates=timestamp");
        }
        version
    }
}

/// One account field's attribute.
#[derive(Clone, Debug)]
pub struct FieldAttribute {
    pub attribute: String,
    pub kind: Kind,
}

/// The mapping for one extract, built once per transform and shared by all workers.
#[derive(Debug)]
pub struct Mapping {
    pub version: String,
    pub monthly_spend: bool,
    /// Account field key → attribute (`None` for fields without one).
    pub fields: Vec<Option<FieldAttribute>>,
    /// Keys of the fields whose normalized name is `mrr` (the source of monthly_spend), in
    /// first-seen order.
    pub mrr_fields: Vec<u32>,
    /// Element key → attribute name, for every Element sent.
    pub elements: BTreeMap<u32, String>,
    /// Metric key → (attribute name, kind).
    pub metrics: HashMap<u32, (String, Kind)>,
    pub risk_attribute: String,
    pub opportunity_attribute: String,
    pub segments_attribute: String,
    pub owner_attribute: String,
    /// Every attribute, for the catalog the loader creates in Intercom.
    pub attributes: Vec<Attribute>,
    pub warnings: Vec<String>,
}

/// Parsed `--exclude` values.
struct Excludes {
    fields: Vec<String>,
    elements: Vec<String>,
    metrics: Vec<String>,
}

impl Excludes {
    fn parse(values: &[String]) -> Excludes {
        let mut out = Excludes {
            fields: vec![],
            elements: vec![],
            metrics: vec![],
        };
        for value in values {
            if let Some(name) = value.strip_prefix("element:") {
                out.elements.push(crate::extract::clean_name(name));
            } else if let Some(name) = value.strip_prefix("metric:") {
                out.metrics.push(crate::extract::clean_name(name));
            } else {
                let name = value.strip_prefix("field:").unwrap_or(value);
                out.fields
                    .push(crate::extract::accounts::field_name(name).to_string());
            }
        }
        out
    }
}

impl Mapping {
    /// Builds the mapping. Two sources giving the same attribute name is an error naming
    /// both and the `--exclude` that resolves it.
    /// `fields` are (field key, name, kind) in first-seen order.
    pub fn build(
        settings: &MappingSettings,
        fields: &[(u32, String, Kind)],
        elements: &[(u32, String)],
        metrics: &[(u32, String, Kind)],
    ) -> Result<Mapping, TransformError> {
        let prefix = settings.prefix.trim();
        if prefix.is_empty() {
            return Err(TransformError::Settings("the prefix is empty: attributes would not be recognisable as ours; pass --prefix NAME (default Vitally)".into()));
        }
        if intercom_safe(prefix) != prefix {
            return Err(TransformError::Settings(format!(
                "the prefix `{prefix}` has characters Intercom refuses in attribute names: use letters, digits, spaces, hyphens, underscores or currency symbols (e.g. --prefix `{}`)",
                intercom_safe(prefix)
            )));
        }
        let named = |suffix: &str| format!("{prefix} {suffix}");
        let excludes = Excludes::parse(&settings.excludes);
        let mut taken: HashMap<String, (String, String)> = HashMap::new(); // attribute → (source, exclude hint)
        let mut attributes = Vec::new();
        let mut warnings = Vec::new();
        let mut claim = |attribute: &str,
                         model: &'static str,
                         kind: Kind,
                         source: String,
                         hint: String|
         -> Result<(), TransformError> {
            if let Some((other, other_hint)) = taken.get(attribute) {
                let fixes: Vec<String> = [other_hint, &hint]
                    .iter()
                    .filter(|h| !h.is_empty())
                    .map(|h| format!("`--exclude {}`", shell_word(h)))
                    .collect();
                return Err(TransformError::Collision(format!(
                    "`{attribute}` would come from both {other} and {source}: leave one out with {}",
                    fixes.join(" or ")
                )));
            }
            taken.insert(attribute.to_string(), (source.clone(), hint));
            attributes.push(Attribute {
                model,
                name: attribute.to_string(),
                data_type: kind.data_type(),
                source,
            });
            Ok(())
        };

        let mut mapping = Mapping {
            version: settings.version(),
            monthly_spend: settings.monthly_spend,
            fields: vec![None; fields.iter().map(|f| f.0 as usize + 1).max().unwrap_or(0)],
            mrr_fields: Vec::new(),
            elements: BTreeMap::new(),
            metrics: HashMap::new(),
            risk_attribute: named("Active Risk Indicators"),
            opportunity_attribute: named("Active Opportunity Indicators"),
            segments_attribute: named("Segments"),
            owner_attribute: named("Account Owner"),
            attributes: Vec::new(),
            warnings: Vec::new(),
        };
        for (attribute, source) in [
            (&mapping.risk_attribute, "indicators"),
            (&mapping.opportunity_attribute, "indicators"),
            (&mapping.segments_attribute, "segments"),
        ] {
            claim(
                attribute,
                "company",
                Kind::String,
                source.to_string(),
                String::new(),
            )?;
        }
        claim(
            &mapping.owner_attribute,
            "contact",
            Kind::Boolean,
            "owner".to_string(),
            String::new(),
        )?;

        for (field_key, name, kind) in fields {
            if normalize_column(name) == "mrr" {
                mapping.mrr_fields.push(*field_key);
            }
            if excludes.fields.contains(name) {
                continue;
            }
            if *kind == Kind::Empty {
                continue; // never has a value: nothing to send
            }
            let words = start_case(name);
            if words.is_empty() {
                warnings.push(format!(
                    "field `{name}` has no letters or digits to name an attribute after; skipped"
                ));
                continue;
            }
            let Some(attribute) =
                attribute_name(prefix, &words, &format!("field `{name}`"), &mut warnings)
            else {
                continue;
            };
            let (attribute, kind) = settings.dates.sent_as(attribute, *kind);
            claim(
                &attribute,
                "company",
                kind,
                format!("field `{name}`"),
                name.clone(),
            )?;
            mapping.fields[*field_key as usize] = Some(FieldAttribute { attribute, kind });
        }
        for (key, name) in elements {
            if excludes.elements.contains(name) {
                continue;
            }
            let Some(attribute) =
                attribute_name(prefix, name, &format!("element `{name}`"), &mut warnings)
            else {
                continue;
            };
            claim(
                &attribute,
                "company",
                Kind::Integer,
                format!("element `{name}`"),
                format!("element:{name}"),
            )?;
            mapping.elements.insert(*key, attribute);
        }
        for (key, name, kind) in metrics {
            if excludes.metrics.contains(name) || *kind == Kind::Empty {
                continue;
            }
            let Some(attribute) =
                attribute_name(prefix, name, &format!("metric `{name}`"), &mut warnings)
            else {
                continue;
            };
            let (attribute, kind) = settings.dates.sent_as(attribute, *kind);
            claim(
                &attribute,
                "company",
                kind,
                format!("metric `{name}`"),
                format!("metric:{name}"),
            )?;
            mapping.metrics.insert(*key, (attribute, kind));
        }
        for value in &settings.excludes {
            let e = Excludes::parse(std::slice::from_ref(value));
            let used = e
                .fields
                .iter()
                .any(|f| fields.iter().any(|(_, n, _)| n == f))
                || e.elements
                    .iter()
                    .any(|f| elements.iter().any(|(_, n)| n == f))
                || e.metrics
                    .iter()
                    .any(|f| metrics.iter().any(|(_, n, _)| n == f));
            if !used {
                warnings.push(format!(
                    "--exclude {value} matches no field, element or metric of this export"
                ));
            }
        }
        mapping.attributes = attributes;
        mapping.warnings = warnings;
        Ok(mapping)
    }
}

impl Dates {
    /// The attribute name and kind a source of `kind` is sent as: a `Date` is a string under
    /// its own name, or a date under that name + [`DATE_SUFFIX`].
    fn sent_as(self, attribute: String, kind: Kind) -> (String, Kind) {
        match (kind, self) {
            (Kind::Date, Dates::String) => (attribute, Kind::String),
            (Kind::Date, Dates::Timestamp) => (attribute + DATE_SUFFIX, Kind::Date),
            (kind, _) => (attribute, kind),
        }
    }
}

impl Mapping {
    /// With `dates = "timestamp"`, a warning for each field or metric sent that holds dates but
    /// is a string all the same, from the load's notes (`{"fields": {key: note}, "metrics":
    /// {key: note}}`, see `extract::loader::DATE_NOTES`).
    pub fn date_warnings(
        &self,
        settings: &MappingSettings,
        notes: &Value,
        fields: &[(u32, String, Kind)],
        metrics: &[(u32, String, Kind)],
    ) -> Vec<String> {
        if settings.dates != Dates::Timestamp {
            return Vec::new();
        }
        let note = |group: &str, key: u32| notes[group][key.to_string()].as_str();
        let warn = |source: String, attribute: &str, note: &str| {
            format!("{source} holds dates but is sent as a string (`{attribute}`): {note}; correct or empty such values to send it as a date")
        };
        let mut warnings = Vec::new();
        for (key, name, _) in fields {
            let sent = self.fields.get(*key as usize).and_then(Option::as_ref);
            if let (Some(sent), Some(note)) = (sent, note("fields", *key)) {
                warnings.push(warn(format!("field `{name}`"), &sent.attribute, note));
            }
        }
        for (key, name, _) in metrics {
            if let (Some((attribute, _)), Some(note)) =
                (self.metrics.get(key), note("metrics", *key))
            {
                warnings.push(warn(format!("metric `{name}`"), attribute, note));
            }
        }
        warnings
    }
}

/// Whether Intercom accepts `c` in a data attribute name: letters, digits, spaces, hyphens,
/// underscores and currency symbols (its "Invalid name" answer to `POST /data_attributes` in
/// the OpenAPI description; the mock enforces the same).
pub fn allowed_in_attribute_name(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '$' | '€' | '£' | '¥')
}

/// `name` with every character Intercom refuses replaced by a space, whitespace collapsed.
pub fn intercom_safe(name: &str) -> String {
    let replaced: String = name
        .chars()
        .map(|c| if allowed_in_attribute_name(c) { c } else { ' ' })
        .collect();
    replaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `<prefix> <name>`, made acceptable to Intercom; a warning names a source whose name had to
/// change, and one that has nothing left is skipped.
fn attribute_name(
    prefix: &str,
    name: &str,
    source: &str,
    warnings: &mut Vec<String>,
) -> Option<String> {
    let safe = intercom_safe(name);
    if safe.is_empty() {
        warnings.push(format!(
            "{source} has no character Intercom allows in an attribute name; skipped"
        ));
        return None;
    }
    if safe != name {
        warnings.push(format!(
            "{source} is sent as `{prefix} {safe}`: Intercom allows only letters, digits, spaces, hyphens, underscores and currency symbols in attribute names"
        ));
    }
    Some(format!("{prefix} {safe}"))
}

/// Converts a raw value to its attribute's type: CSV text and JSON strings are parsed as
/// the kind says; JSON numbers and booleans convert when the kind holds them, or become
/// their JSON text in a string attribute. `None`: nothing is sent.
pub fn convert<'a>(raw: &'a Raw<'a>, kind: Kind) -> Option<Scalar<'a>> {
    let float = |f: f64| serde_json::Number::from_f64(f).map(|_| Scalar::Float(f));
    match (kind, raw) {
        (Kind::Empty, _) => None,
        (Kind::Integer, Raw::Str(s)) => s.parse::<i64>().ok().map(Scalar::Int),
        (Kind::Integer, Raw::Int(i)) => Some(Scalar::Int(*i)),
        (Kind::Float, Raw::Str(s)) => s.parse::<f64>().ok().and_then(float),
        (Kind::Float, Raw::Int(i)) => float(*i as f64),
        (Kind::Float, Raw::UInt(u)) => float(*u as f64),
        (Kind::Float, Raw::Float(f)) => float(*f),
        (Kind::Boolean, Raw::Str(s)) => Some(Scalar::Bool(s.eq_ignore_ascii_case("true"))),
        (Kind::Boolean, Raw::Bool(b)) => Some(Scalar::Bool(*b)),
        (Kind::Date, Raw::Str(s)) => match parse_date(s) {
            DateText::Date(seconds) => Some(Scalar::Int(seconds)),
            _ => None,
        },
        (Kind::String, Raw::Str(s)) => Some(Scalar::Str(Cow::Borrowed(s.as_ref()))),
        (Kind::String, Raw::Int(i)) => Some(Scalar::Str(Cow::Owned(i.to_string()))),
        (Kind::String, Raw::UInt(u)) => Some(Scalar::Str(Cow::Owned(u.to_string()))),
        (Kind::String, Raw::Float(f)) => serde_json::Number::from_f64(*f)
            .map(|n| Scalar::Str(Cow::Owned(Value::Number(n).to_string()))),
        (Kind::String, Raw::Bool(b)) => Some(Scalar::Str(Cow::Owned(b.to_string()))),
        _ => None,
    }
}

/// A raw value as a number (for monthly_spend): numbers as they are, text parsed.
pub fn number_of(raw: &Raw<'_>) -> Option<f64> {
    match raw {
        Raw::Int(i) => Some(*i as f64),
        Raw::UInt(u) => Some(*u as f64),
        Raw::Float(f) => Some(*f),
        Raw::Str(s) => s.parse().ok(),
        Raw::Bool(_) => None,
    }
}

/// Quotes `word` for a shell when it needs it.
fn shell_word(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.:/".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_cut_to_255_characters_not_bytes() {
        let count = |s: &str| s.chars().count();
        assert_eq!(cut_to_limit(&"a".repeat(255)), None);
        assert_eq!(
            cut_to_limit(&"é".repeat(255)),
            None,
            "510 bytes, 255 characters"
        );
        let cut = cut_to_limit(&"a".repeat(256)).unwrap();
        assert_eq!((count(&cut), cut.ends_with("a…")), (255, true));
        let cut = cut_to_limit(&format!("{}🚀🚀", "é".repeat(254))).unwrap();
        assert_eq!(cut, format!("{}…", "é".repeat(254)));
        assert_eq!(cut_to_limit("short"), None);
    }

    #[test]
    fn names_intercom_refuses_are_made_acceptable_with_a_warning() {
        assert_eq!(intercom_safe("Logins (30d)"), "Logins 30d");
        assert_eq!(intercom_safe("A/B Tests"), "A B Tests");
        assert_eq!(intercom_safe("🚀 Launches"), "Launches");
        assert_eq!(
            intercom_safe("東京 Region-Requests $"),
            "東京 Region-Requests $"
        );
        let elements = vec![
            (1, "A/B Tests".to_string()),
            (2, "🚀".to_string()),
            (3, "Seats".to_string()),
        ];
        let mapping = Mapping::build(&MappingSettings::default(), &[], &elements, &[]).unwrap();
        assert_eq!(
            mapping.elements.values().cloned().collect::<Vec<_>>(),
            ["Vitally A B Tests", "Vitally Seats"]
        );
        assert!(
            mapping
                .warnings
                .iter()
                .any(|w| w.contains("element `A/B Tests` is sent as `Vitally A B Tests`")),
            "{:?}",
            mapping.warnings
        );
        assert!(
            mapping
                .warnings
                .iter()
                .any(|w| w.contains("element `🚀` has no character")),
            "{:?}",
            mapping.warnings
        );
    }

    #[test]
    fn a_prefix_intercom_refuses_is_a_settings_error() {
        let settings = MappingSettings {
            prefix: "Acme.io".into(),
            ..MappingSettings::default()
        };
        let err = Mapping::build(&settings, &[], &[], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--prefix `Acme io`"), "{err}");
    }
}
