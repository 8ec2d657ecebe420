//! Keras' keyword dict as JSON: reading [`GeneratorOptions`] from it, with
//! Keras' loose forms (a number *or* a list for `zoom_range`, strings for
//! modes) and Keras' error messages for the forms it refuses.
//!
//! Every key is parsed on its own, so an error names the key it is about
//! (serde's messages do not). The typed options themselves are in
//! `config.rs`; nothing there knows about JSON.

use std::path::Path;

use serde::de::{DeserializeOwned, Deserializer, Error as _};
use serde::Deserialize;
use serde_json::Value;

use super::{Compat, GeneratorOptions, ZoomRange};
use crate::augment::FillMode;
use crate::{Error, ErrorKind, Result};

/// The JSON keys, spelled as `Error::invalid` needs them (`&'static str`);
/// a unit test keeps this list equal to the struct's fields.
const KEYS: [&str; 24] = [
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
    "compat",
];

impl GeneratorOptions {
    /// Reads a JSON object of Keras keyword arguments, e.g.
    /// `{"rotation_range": 20, "zoom_range": [0.9, 1.1], "rescale": null}`.
    /// Missing keys take Keras' defaults. `"preprocessing_function": null` is
    /// accepted (Keras configs carry it); any other value for it is an error,
    /// since the function is a Rust closure.
    ///
    /// Keras' forms: shift ranges keep their JSON type (`2` whole pixels,
    /// `2.0` a float range, a list of choices; see [`ShiftRange`](crate::ShiftRange)),
    /// `zoom_range` is a number or a list of two, `brightness_range` a list of
    /// two or `null`, `fill_mode` scipy's name (`"nearest"`, `"grid-wrap"`...),
    /// `compat` `"keras-preprocessing"` or `"keras3"`. With `"keras3"`,
    /// `data_format` and `dtype` may be `null`, Keras 3's default (its
    /// default configuration: channels-last, float32).
    ///
    /// Values are parsed here; [`ImageDataGenerator::new`](crate::ImageDataGenerator::new)
    /// checks their ranges.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`] naming the key for an unknown key or a
    /// value of the wrong type or form (with Keras' message where Keras has
    /// one, e.g. for a `zoom_range` or `brightness_range` that is not a
    /// pair), and for text that is not a JSON object.
    ///
    /// # Examples
    /// ```
    /// use npyflow::{ErrorKind, GeneratorOptions, ZoomRange};
    ///
    /// let o = GeneratorOptions::from_json(r#"{"rotation_range": 20, "zoom_range": 0.1}"#)?;
    /// assert_eq!((o.rotation_range, o.zoom_range), (20.0, ZoomRange::Scalar(0.1)));
    /// assert!(GeneratorOptions::from_json(r#"{"rotation": 20}"#).is_err());
    /// let e = GeneratorOptions::from_json(r#"{"brightness_range": 0.1}"#).unwrap_err();
    /// assert!(matches!(e.kind(), ErrorKind::InvalidArgument { name: "brightness_range", .. }));
    /// # Ok::<(), npyflow::Error>(())
    /// ```
    pub fn from_json(text: &str) -> Result<GeneratorOptions> {
        parse_json(text, None)
    }

    /// [`GeneratorOptions::from_json`] on the contents of a file.
    ///
    /// # Errors
    /// [`ErrorKind::Io`] when the file cannot be read; otherwise as
    /// [`GeneratorOptions::from_json`], with the path in the reason.
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<GeneratorOptions> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        parse_json(&text, Some(path))
    }
}

/// Through [`GeneratorOptions::from_json`]'s rules, so that options embedded
/// in a larger serde document read the same way (the error is its message).
impl<'de> Deserialize<'de> for GeneratorOptions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        from_value(value, &|reason| reason).map_err(D::Error::custom)
    }
}

/// Keras' forms: a number, or a list of exactly two numbers.
impl<'de> Deserialize<'de> for ZoomRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        zoom_range(&Value::deserialize(d)?).map_err(D::Error::custom)
    }
}

fn parse_json(text: &str, origin: Option<&Path>) -> Result<GeneratorOptions> {
    let within = |reason: String| match origin {
        Some(p) => format!("{reason} (in {})", p.display()),
        None => reason,
    };
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Error::invalid("config", "JSON", within(e.to_string())))?;
    from_value(value, &within)
}

/// The options of a parsed JSON value; `within` adds the origin to reasons.
fn from_value(value: Value, within: &dyn Fn(String) -> String) -> Result<GeneratorOptions> {
    let Value::Object(mut map) = value else {
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
    // Keras 3 reads `None` as its configured default (`image_data_format()`,
    // `floatx()`: channels-last and float32 unless configured); 1.1.2 has no
    // such default. Whether `null` is allowed depends on `compat`, which may
    // come later in the object, so these two are set after the loop.
    let defaulted: Vec<&'static str> = ["data_format", "dtype"]
        .into_iter()
        .filter(|k| map.get(*k).is_some_and(Value::is_null))
        .collect();
    defaulted.iter().for_each(|k| {
        map.remove(*k);
    });
    let mut o = GeneratorOptions::default();
    for (key, v) in &map {
        let Some(&name) = KEYS.iter().find(|k| **k == key.as_str()) else {
            let expected: Vec<String> = KEYS.iter().map(|k| format!("`{k}`")).collect();
            return Err(Error::invalid(
                "config",
                format!("unknown key {key:?}"),
                within(format!(
                    "unknown field `{key}`, expected one of {}",
                    expected.join(", ")
                )),
            ));
        };
        set(&mut o, name, v).map_err(|reason| Error::invalid(name, short(v), within(reason)))?;
    }
    if let (Some(&name), Compat::KerasPreprocessing) = (defaulted.first(), o.compat) {
        let reason = match name {
            "data_format" => "`data_format` should be `\"channels_last\"` (channel after row and \
                              column) or `\"channels_first\"` (channel before row and column). \
                              Received: None"
                .to_string(),
            _ => "null (Keras 3's `floatx()`) needs \"compat\": \"keras3\"; \
                  expected \"float32\" or \"float64\""
                .to_string(),
        };
        return Err(Error::invalid(name, "null", within(reason)));
    }
    Ok(o)
}

/// Sets option `name` from its JSON value; the reason on failure.
fn set(o: &mut GeneratorOptions, name: &str, v: &Value) -> std::result::Result<(), String> {
    match name {
        "featurewise_center" => o.featurewise_center = typed(v)?,
        "samplewise_center" => o.samplewise_center = typed(v)?,
        "featurewise_std_normalization" => o.featurewise_std_normalization = typed(v)?,
        "samplewise_std_normalization" => o.samplewise_std_normalization = typed(v)?,
        "zca_whitening" => o.zca_whitening = typed(v)?,
        "zca_epsilon" => o.zca_epsilon = typed(v)?,
        "rotation_range" => o.rotation_range = typed(v)?,
        "width_shift_range" => o.width_shift_range = typed(v)?,
        "height_shift_range" => o.height_shift_range = typed(v)?,
        "brightness_range" => o.brightness_range = brightness_range(v)?,
        "brightness_mode" => o.brightness_mode = typed(v)?,
        "shear_range" => o.shear_range = typed(v)?,
        "zoom_range" => o.zoom_range = zoom_range(v)?,
        "channel_shift_range" => o.channel_shift_range = typed(v)?,
        "fill_mode" => o.fill_mode = fill_mode(v)?,
        "cval" => o.cval = typed(v)?,
        "horizontal_flip" => o.horizontal_flip = typed(v)?,
        "vertical_flip" => o.vertical_flip = typed(v)?,
        "rescale" => o.rescale = typed(v)?,
        "data_format" => o.data_format = typed(v)?,
        "validation_split" => o.validation_split = typed(v)?,
        "interpolation_order" => o.interpolation_order = typed(v)?,
        "dtype" => o.dtype = typed(v)?,
        "compat" => o.compat = typed(v)?,
        other => return Err(format!("no parser for `{other}`")),
    }
    Ok(())
}

/// A value of a type with a plain serde form, serde's message on failure.
fn typed<T: DeserializeOwned>(v: &Value) -> std::result::Result<T, String> {
    T::deserialize(v).map_err(|e| e.to_string())
}

/// Two numbers, as Keras' `(lo, hi)` ranges.
fn pair(v: &Value) -> Option<[f64; 2]> {
    match v.as_array()?.as_slice() {
        [lo, hi] => Some([lo.as_f64()?, hi.as_f64()?]),
        _ => None,
    }
}

/// Keras 1.1.2: a number `z` or a list of two numbers.
fn zoom_range(v: &Value) -> std::result::Result<ZoomRange, String> {
    if let Some(z) = v.as_f64() {
        return Ok(ZoomRange::Scalar(z));
    }
    pair(v).map(ZoomRange::Range).ok_or_else(|| {
        format!(
            "`zoom_range` should be a float or a tuple or list of two floats. Received: {}",
            short(v)
        )
    })
}

/// Keras 1.1.2: `None` or a list of two numbers (Keras' message, with its
/// unbalanced backquote).
fn brightness_range(v: &Value) -> std::result::Result<Option<[f64; 2]>, String> {
    if v.is_null() {
        return Ok(None);
    }
    pair(v).map(Some).ok_or_else(|| {
        format!(
            "`brightness_range should be tuple or list of two floats. Received: {}",
            short(v)
        )
    })
}

/// scipy's mode names, with [`FillMode`]'s own message for other strings.
fn fill_mode(v: &Value) -> std::result::Result<FillMode, String> {
    let s: String = typed(v)?;
    s.parse().map_err(|e: Error| match e.into_kind() {
        ErrorKind::InvalidArgument { reason, .. } => reason,
        other => other.to_string(),
    })
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
    use crate::generator::{Compat, ShiftRange};
    use crate::{DataFormat, OutputDtype};

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
        let o = GeneratorOptions::from_json(
            r#"{"zoom_range": [0.9, 1], "brightness_range": [1, 2.5], "fill_mode": "grid-wrap",
                "compat": "keras3"}"#,
        )
        .unwrap();
        assert_eq!(o.zoom_range, ZoomRange::Range([0.9, 1.0]));
        assert_eq!(o.brightness_range, Some([1.0, 2.5]));
        assert_eq!(o.fill_mode, FillMode::GridWrap);
        assert_eq!(o.compat, Compat::Keras3);
        let o = GeneratorOptions::from_json(
            r#"{"brightness_range": null, "compat": "keras-preprocessing"}"#,
        )
        .unwrap();
        assert_eq!(o.brightness_range, None);
        assert_eq!(o.compat, Compat::KerasPreprocessing);
    }

    #[test]
    fn serialised_options_read_back_the_same() {
        let o = GeneratorOptions {
            zoom_range: ZoomRange::Range([0.9, 1.1]),
            brightness_range: Some([0.5, 1.5]),
            fill_mode: FillMode::GridConstant,
            width_shift_range: ShiftRange::Pixels(3),
            height_shift_range: ShiftRange::Float(3.0),
            compat: Compat::Keras3,
            rescale: Some(0.5),
            ..Default::default()
        };
        let text = serde_json::to_string(&o).unwrap();
        assert!(text.contains(r#""fill_mode":"grid-constant""#), "{text}");
        assert!(text.contains(r#""compat":"keras3""#), "{text}");
        assert_eq!(GeneratorOptions::from_json(&text).unwrap(), o);
        let back: GeneratorOptions = serde_json::from_str(&text).unwrap();
        assert_eq!(back, o);
        let e = serde_json::from_str::<GeneratorOptions>(r#"{"zoom_range": [1]}"#).unwrap_err();
        assert!(e.to_string().contains("`zoom_range` should be"), "{e}");
    }

    #[test]
    fn keras_forms_fail_with_keras_messages() {
        let reason = |t: &str| match GeneratorOptions::from_json(t).unwrap_err().into_kind() {
            ErrorKind::InvalidArgument {
                name,
                value,
                reason,
            } => (name, value, reason),
            k => panic!("{k:?}"),
        };
        for bad in ["0.1", "[0]", "[1, 2, 3]", "\"a\"", "[1, \"b\"]"] {
            let (name, value, why) = reason(&format!(r#"{{"brightness_range": {bad}}}"#));
            assert_eq!(name, "brightness_range");
            assert_eq!(value, bad.replace(' ', ""));
            assert_eq!(
                why,
                format!(
                    "`brightness_range should be tuple or list of two floats. Received: {}",
                    bad.replace(' ', "")
                )
            );
        }
        for bad in ["[0]", "[]", "[0.5, 1, 2]", "null", "\"x\""] {
            let (name, _, why) = reason(&format!(r#"{{"zoom_range": {bad}}}"#));
            assert_eq!(name, "zoom_range");
            assert_eq!(
                why,
                format!(
                    "`zoom_range` should be a float or a tuple or list of two floats. Received: {}",
                    bad.replace(' ', "")
                )
            );
        }
        let (name, value, why) = reason(r#"{"fill_mode": "edge"}"#);
        assert_eq!((name, value.as_str()), ("fill_mode", "\"edge\""));
        assert_eq!(
            why,
            "expected one of \"constant\", \"nearest\", \"reflect\", \"wrap\", \"mirror\", \
             \"grid-wrap\", \"grid-mirror\", \"grid-constant\""
        );
        let (name, _, why) = reason(r#"{"data_format": null}"#);
        assert_eq!(name, "data_format");
        assert!(why.ends_with("Received: None"), "{why}");
        let (name, _, _) = reason(r#"{"dtype": null, "compat": "keras-preprocessing"}"#);
        assert_eq!(name, "dtype");
        let o = GeneratorOptions::from_json(
            r#"{"data_format": null, "dtype": null, "compat": "keras3"}"#,
        )
        .unwrap();
        assert_eq!(
            (o.data_format, o.dtype),
            (crate::DataFormat::ChannelsLast, crate::OutputDtype::F32)
        );
        let (name, _, why) = reason(r#"{"compat": "keras2"}"#);
        assert_eq!(name, "compat");
        assert!(why.contains("keras-preprocessing"), "{why}");
        let (name, _, why) = reason(r#"{"rotation_range": "a lot"}"#);
        assert_eq!(name, "rotation_range");
        assert_eq!(why, "invalid type: string \"a lot\", expected f64");
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
