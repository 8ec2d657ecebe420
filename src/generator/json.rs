//! Reading [`GeneratorOptions`] from a JSON dict of Keras keyword arguments.

use std::path::Path;

use serde_json::Value;

use super::GeneratorOptions;
use crate::{Error, Result};

/// The JSON keys, spelled as `Error::invalid` needs them (`&'static str`);
/// a unit test keeps this list equal to the struct's fields.
const KEYS: [&str; 23] = [
    "featurewise_center",
    "samplewise_center",
    "featurewise_std_normalization",
    "samplewise_std_normalization",
    "zca_whitening",
    "zca_epsilon",
    "rotation_range",
    "width_shift_range",
    "height_shift_range",
    "brightness_range",
    "brightness_mode",
    "shear_range",
    "zoom_range",
    "channel_shift_range",
    "fill_mode",
    "cval",
    "horizontal_flip",
    "vertical_flip",
    "rescale",
    "data_format",
    "validation_split",
    "interpolation_order",
    "dtype",
];

impl GeneratorOptions {
    /// Reads a JSON object of Keras keyword arguments, e.g.
    /// `{"rotation_range": 20, "zoom_range": [0.9, 1.1], "rescale": null}`.
    /// Missing keys take Keras' defaults. `"preprocessing_function": null` is
    /// accepted (Keras configs carry it); any other value for it is an error,
    /// since the function is a Rust closure.
    ///
    /// Values are only parsed here; [`ImageDataGenerator::new`](crate::ImageDataGenerator::new)
    /// validates them.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument) naming
    /// the key for an unknown key or a value of the wrong type, and for text
    /// that is not a JSON object.
    ///
    /// # Examples
    /// ```
    /// let o = npyflow::GeneratorOptions::from_json(r#"{"rotation_range": 20, "rescale": null}"#)?;
    /// assert_eq!(o.rotation_range, 20.0);
    /// assert!(npyflow::GeneratorOptions::from_json(r#"{"rotation": 20}"#).is_err());
    /// # Ok::<(), npyflow::Error>(())
    /// ```
    pub fn from_json(text: &str) -> Result<GeneratorOptions> {
        parse_json(text, None)
    }

    /// [`GeneratorOptions::from_json`] on the contents of a file.
    ///
    /// # Errors
    /// [`ErrorKind::Io`](crate::ErrorKind::Io) when the file cannot be read;
    /// otherwise as [`GeneratorOptions::from_json`], with the path in the reason.
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<GeneratorOptions> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        parse_json(&text, Some(path))
    }
}

fn parse_json(text: &str, origin: Option<&Path>) -> Result<GeneratorOptions> {
    let within = |reason: String| match origin {
        Some(p) => format!("{reason} (in {})", p.display()),
        None => reason,
    };
    let mut value: Value = serde_json::from_str(text)
        .map_err(|e| Error::invalid("config", "JSON", within(e.to_string())))?;
    let Value::Object(map) = &mut value else {
        return Err(Error::invalid(
            "config",
            short(&value),
            within("expected a JSON object of options".into()),
        ));
    };
    match map.remove("preprocessing_function") {
        None | Some(Value::Null) => {}
        Some(v) => return Err(Error::invalid(
            "preprocessing_function",
            short(&v),
            within(
                "cannot be given in JSON; attach a Rust closure with `with_preprocessing_function`"
                    .into(),
            ),
        )),
    }
    // serde's type errors do not say which key they are about, so each key
    // is parsed on its own first: the error then names it.
    for (key, v) in map.iter() {
        let single = Value::Object(std::iter::once((key.clone(), v.clone())).collect());
        if let Err(e) = serde_json::from_value::<GeneratorOptions>(single) {
            let reason = within(e.to_string());
            return Err(match KEYS.iter().find(|k| **k == key.as_str()) {
                Some(name) => Error::invalid(name, short(v), reason),
                None => Error::invalid("config", format!("unknown key {key:?}"), reason),
            });
        }
    }
    serde_json::from_value(value)
        .map_err(|e| Error::invalid("config", "JSON", within(e.to_string())))
}

/// A JSON value for an error message, cut short so a huge list stays readable.
fn short(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::BrightnessMode;
    use crate::generator::{ShiftRange, ZoomRange};
    use crate::{DataFormat, ErrorKind, OutputDtype};

    #[test]
    fn keys_list_matches_the_struct() {
        let Value::Object(map) = serde_json::to_value(GeneratorOptions::default()).unwrap() else {
            panic!("not an object");
        };
        let mut fields: Vec<&str> = map.keys().map(String::as_str).collect();
        let mut keys = KEYS.to_vec();
        fields.sort_unstable();
        keys.sort_unstable();
        assert_eq!(fields, keys);
    }

    #[test]
    fn json_types_map_to_keras_types() {
        let o = GeneratorOptions::from_json(
            r#"{"width_shift_range": 2, "height_shift_range": 2.0, "zoom_range": 1,
                "rescale": 0.5, "dtype": "float64", "data_format": "channels_first",
                "brightness_mode": "multiplicative"}"#,
        )
        .unwrap();
        assert_eq!(o.width_shift_range, ShiftRange::Pixels(2));
        assert_eq!(o.height_shift_range, ShiftRange::Float(2.0));
        assert_eq!(o.zoom_range, ZoomRange::Scalar(1.0));
        assert_eq!(o.rescale, Some(0.5));
        assert_eq!(o.dtype, OutputDtype::F64);
        assert_eq!(o.data_format, DataFormat::ChannelsFirst);
        assert_eq!(o.brightness_mode, BrightnessMode::Multiplicative);
    }

    #[test]
    fn json_errors_name_the_key() {
        let kind = |t: &str| GeneratorOptions::from_json(t).unwrap_err().into_kind();
        match kind(r#"{"rotation_range": 1, "brightness_range": 0.1}"#) {
            ErrorKind::InvalidArgument { name, value, .. } => {
                assert_eq!((name, value.as_str()), ("brightness_range", "0.1"));
            }
            k => panic!("{k:?}"),
        }
        match kind(r#"{"rotation": 1}"#) {
            ErrorKind::InvalidArgument {
                name,
                value,
                reason,
            } => {
                assert_eq!(name, "config");
                assert!(
                    value.contains("rotation") && reason.contains("unknown field"),
                    "{value} {reason}"
                );
            }
            k => panic!("{k:?}"),
        }
        assert!(matches!(
            kind("[1, 2]"),
            ErrorKind::InvalidArgument { name: "config", .. }
        ));
        assert!(matches!(
            kind("{"),
            ErrorKind::InvalidArgument { name: "config", .. }
        ));
        assert!(matches!(
            kind(r#"{"preprocessing_function": "f"}"#),
            ErrorKind::InvalidArgument {
                name: "preprocessing_function",
                ..
            }
        ));
        GeneratorOptions::from_json(r#"{"preprocessing_function": null}"#).unwrap();
    }
}
