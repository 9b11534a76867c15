//! Whole numbers read from JSON as JSON Schema reads them: `14.0` is an integer there (the
//! OpenAPI document says `type: integer`), while serde's `usize` refuses it. Clients that
//! write every number as a float (JavaScript, some JSON encoders) are therefore accepted.

use serde::de::{self, Deserializer, Visitor};

struct WholeNumber;

impl Visitor<'_> for WholeNumber {
    type Value = usize;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a non-negative whole number")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<usize, E> {
        usize::try_from(v).map_err(|_| E::custom(format!("{v} is too large")))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<usize, E> {
        usize::try_from(v).map_err(|_| E::custom(format!("{v} is negative")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<usize, E> {
        // Whole numbers past usize (written as floats, or beyond u64) saturate: every use
        // here (an offset, a count, a limit) means the same at usize::MAX as above it.
        if v.fract() == 0.0 && v >= 0.0 {
            Ok(v as usize)
        } else {
            Err(E::custom(format!("{v} is not a non-negative whole number")))
        }
    }
}

/// `deserialize_with` for a `usize` field.
pub fn whole<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    deserializer.deserialize_any(WholeNumber)
}

/// `deserialize_with` for an `Option<usize>` field (absent or `null` is `None`).
pub fn optional_whole<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<usize>, D::Error> {
    #[derive(serde::Deserialize)]
    struct Whole(#[serde(deserialize_with = "whole")] usize);
    let value: Option<Whole> = serde::Deserialize::deserialize(deserializer)?;
    Ok(value.map(|Whole(n)| n))
}

/// `deserialize_with` for an optional field that may be left out but not sent as `null`
/// (the OpenAPI document does not make it nullable, so `null` must be refused).
pub fn present<'de, D: Deserializer<'de>, T: serde::Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// `deserialize_with` for an `Option<usize>` query parameter. A query string carries numbers
/// as text, of any length: digits only, and past usize it saturates as above (the OpenAPI
/// document sets no maximum, so any whole number is valid there).
pub fn optional_query_whole<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<usize>, D::Error> {
    let text: Option<String> = serde::Deserialize::deserialize(deserializer)?;
    text.map(|text| {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(de::Error::custom(format!(
                "{text:?} is not a non-negative whole number"
            )));
        }
        Ok(text.parse::<usize>().unwrap_or(usize::MAX))
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    #[derive(Debug, serde::Deserialize)]
    struct Fields {
        #[serde(deserialize_with = "super::whole")]
        count: usize,
        #[serde(default, deserialize_with = "super::optional_whole")]
        limit: Option<usize>,
    }

    fn parse(text: &str) -> Result<Fields, serde_json::Error> {
        serde_json::from_str(text)
    }

    #[test]
    fn integral_floats_are_whole_numbers_and_fractions_or_negatives_are_not() {
        let f = parse(r#"{"count": 14.0, "limit": 3}"#).unwrap();
        assert_eq!((f.count, f.limit), (14, Some(3)));
        let f = parse(r#"{"count": 0, "limit": null}"#).unwrap();
        assert_eq!((f.count, f.limit), (0, None));
        assert_eq!(parse(r#"{"count": 1}"#).unwrap().limit, None);
        assert_eq!(parse(r#"{"count": 1e300}"#).unwrap().count, usize::MAX);
        for bad in [
            r#"{"count": 1.5}"#,
            r#"{"count": -1}"#,
            r#"{"count": "1"}"#,
            r#"{"count": -0.5}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn query_numbers_are_digits_of_any_length() {
        #[derive(Debug, serde::Deserialize)]
        struct Query {
            #[serde(default, deserialize_with = "super::optional_query_whole")]
            limit: Option<usize>,
        }
        let parse = |text: &str| serde_json::from_str::<Query>(text).map(|q| q.limit);
        assert_eq!(parse(r#"{"limit": "12"}"#).unwrap(), Some(12));
        assert_eq!(parse("{}").unwrap(), None);
        let huge = parse(r#"{"limit": "1875155126002963185664"}"#).unwrap();
        assert_eq!(huge, Some(usize::MAX));
        for bad in ["", "-3", "1.5", "12a", " 7"] {
            let text = format!(r#"{{"limit": "{bad}"}}"#);
            assert!(parse(&text).is_err(), "{bad:?} was accepted");
        }
    }
}
