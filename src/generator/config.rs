//! Generator options: Keras' keyword arguments as typed Rust values, their
//! validation and Keras' flag overrides. Keras' loose forms (a number *or* a
//! list, strings for modes) and its error messages for them live in the JSON
//! layer (`json.rs`), which reads a Keras keyword dict into these types.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::augment::{BrightnessMode, FillMode, ShiftRule, TransformRanges};
use crate::{DataFormat, Error, OutputDtype, Result};

/// A shift range, as Keras' `width_shift_range` / `height_shift_range` accept it.
///
/// The variant matters, as in Keras: `Pixels(2)` and `Float(2.0)` differ.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ShiftRange {
    /// A whole number of pixels `k` (a JSON integer): integer shifts in
    /// `-(k-1)..=k-1` with P(0) = 1/k, never ±k (Keras' rule). 0 = off; a
    /// negative `k` falls through to Keras' float rule, `U(-|k|, |k|)` times
    /// the dimension.
    Pixels(i64),
    /// A float (a JSON number with a fraction or exponent): `U(-r, r)` times the
    /// dimension when `r < 1`, else `U(-r, r)` pixels. 0.0 = off.
    Float(f64),
    /// A list of choices: one element times a random sign, times the dimension
    /// when the list's maximum (not max-abs) is `< 1`. Empty = off.
    Choices(Vec<f64>),
}

impl Default for ShiftRange {
    fn default() -> Self {
        ShiftRange::Float(0.0)
    }
}

impl ShiftRange {
    /// The sampling rule Keras' `get_random_transform` applies to this range.
    fn rule(&self) -> ShiftRule {
        match self {
            ShiftRange::Pixels(0) => ShiftRule::Off,
            ShiftRange::Pixels(k) if *k > 0 => ShiftRule::Pixels(*k as u64),
            // numpy's `choice` raises for k < 0, so Keras takes the float path
            // and, since max(k) < 1, scales by the dimension.
            ShiftRange::Pixels(k) => ShiftRule::Uniform {
                range: *k as f64,
                scale: true,
            },
            ShiftRange::Float(r) if *r == 0.0 => ShiftRule::Off,
            ShiftRange::Float(r) => ShiftRule::Uniform {
                range: *r,
                scale: *r < 1.0,
            },
            ShiftRange::Choices(v) if v.is_empty() => ShiftRule::Off,
            ShiftRange::Choices(v) => ShiftRule::Choices {
                values: v.clone(),
                scale: v.iter().copied().fold(f64::NEG_INFINITY, f64::max) < 1.0,
            },
        }
    }

    fn values(&self) -> Vec<f64> {
        match self {
            ShiftRange::Pixels(_) => Vec::new(),
            ShiftRange::Float(r) => vec![*r],
            ShiftRange::Choices(v) => v.clone(),
        }
    }
}

/// A zoom range, as Keras' `zoom_range` accepts it: a number `z` means
/// `[1 - z, 1 + z]`, a pair is taken as is.
///
/// In JSON: a number, or a list of exactly two numbers (anything else is
/// refused with Keras' message, see [`GeneratorOptions::from_json`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ZoomRange {
    /// `z`: zoom factors drawn from `[1 - z, 1 + z]`.
    Scalar(f64),
    /// Explicit `[lo, hi]` (no ordering check, as in Keras).
    Range([f64; 2]),
}

impl Default for ZoomRange {
    fn default() -> Self {
        ZoomRange::Scalar(0.0)
    }
}

impl ZoomRange {
    /// The `[lo, hi]` bounds after Keras' normalisation.
    ///
    /// ```
    /// use npyflow::ZoomRange;
    /// assert_eq!(ZoomRange::Scalar(0.25).bounds(), [0.75, 1.25]);
    /// assert_eq!(ZoomRange::Range([1.3, 0.7]).bounds(), [1.3, 0.7]);
    /// ```
    pub fn bounds(&self) -> [f64; 2] {
        match *self {
            ZoomRange::Scalar(z) => [1.0 - z, 1.0 + z],
            ZoomRange::Range(r) => r,
        }
    }
}

/// Which Keras' numerics the generator follows (not a Keras option; the
/// `compat` key in JSON).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compat {
    /// keras-preprocessing 1.1.2, the `ImageDataGenerator` of Keras 2 and
    /// `tf.keras` up to 2.15 (`"keras-preprocessing"`). The default.
    #[default]
    KerasPreprocessing,
    /// The legacy `ImageDataGenerator` of Keras 3 and `tf.keras` 2.16 and
    /// later (`keras/src/legacy/preprocessing/image.py`, `"keras3"`), with
    /// Keras' default configuration (`image_data_format()` channels-last,
    /// `floatx()` float32). It differs from 1.1.2 in the affine geometry
    /// (pivot `size/2 - 0.5` and swapped axes, see
    /// [`keras3_affine`](crate::augment::keras3_affine)), the brightness shift
    /// (stretched only outside 0..255, then restored to the image's range)
    /// and the ZCA matrix (from the thin SVD of the data, `ε` added to the
    /// singular values); draws, order of steps and the other statistics
    /// are the same.
    Keras3,
}

impl Compat {
    /// The name in JSON: `"keras-preprocessing"` or `"keras3"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Compat::KerasPreprocessing => "keras-preprocessing",
            Compat::Keras3 => "keras3",
        }
    }
}

impl fmt::Display for Compat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Compat {
    type Err = Error;

    /// Parses [`Compat::as_str`]'s names.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument)
    /// naming `compat` for any other string.
    fn from_str(s: &str) -> Result<Compat> {
        [Compat::KerasPreprocessing, Compat::Keras3]
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "compat",
                    format!("{s:?}"),
                    "expected \"keras-preprocessing\" or \"keras3\"",
                )
            })
    }
}

/// Every `ImageDataGenerator` constructor option, with Keras' names and
/// defaults, as typed values. Build one with struct-update syntax from
/// [`Default`], or read a Keras keyword dict with
/// [`GeneratorOptions::from_json`] (which also accepts Keras' loose forms
/// and refuses bad ones with Keras' messages).
///
/// `preprocessing_function` is not here: it is a Rust closure attached to the
/// generator ([`ImageDataGenerator::with_preprocessing_function`](crate::ImageDataGenerator::with_preprocessing_function)).
///
/// With serde, the options serialise to the JSON object `from_json` reads
/// (and deserialise through it).
///
/// # Examples
/// ```
/// use npyflow::{FillMode, GeneratorOptions, ShiftRange, ZoomRange};
///
/// let options = GeneratorOptions {
///     rotation_range: 20.0,
///     width_shift_range: ShiftRange::Float(0.1),
///     zoom_range: ZoomRange::Range([0.9, 1.1]),
///     brightness_range: Some([0.8, 1.2]),
///     fill_mode: FillMode::Reflect,
///     ..Default::default()
/// };
/// // The same options as a Keras keyword dict.
/// let json = r#"{"rotation_range": 20, "width_shift_range": 0.1, "zoom_range": [0.9, 1.1],
///                "brightness_range": [0.8, 1.2], "fill_mode": "reflect"}"#;
/// assert_eq!(GeneratorOptions::from_json(json)?, options);
/// # Ok::<(), npyflow::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GeneratorOptions {
    /// Subtract the dataset mean per channel (needs `fit`).
    pub featurewise_center: bool,
    /// Subtract each image's own mean.
    pub samplewise_center: bool,
    /// Divide by the dataset std per channel (needs `fit`); turns on `featurewise_center`.
    pub featurewise_std_normalization: bool,
    /// Divide each image by its own std; turns on `samplewise_center`.
    pub samplewise_std_normalization: bool,
    /// ZCA whitening (needs `fit`); turns on `featurewise_center` and off
    /// `featurewise_std_normalization`.
    pub zca_whitening: bool,
    /// Epsilon added to the eigenvalues for ZCA. Default 1e-6.
    pub zca_epsilon: f64,
    /// Degrees of random rotation, `U(-r, r)`.
    pub rotation_range: f64,
    /// Horizontal shift range (draws `ty`).
    pub width_shift_range: ShiftRange,
    /// Vertical shift range (draws `tx`).
    pub height_shift_range: ShiftRange,
    /// Range `[lo, hi]` of the brightness factor; `None` = off.
    pub brightness_range: Option<[f64; 2]>,
    /// How the brightness factor is applied (not a Keras option). Default: Keras' way.
    pub brightness_mode: BrightnessMode,
    /// Shear angle range in degrees, `U(-s, s)`.
    pub shear_range: f64,
    /// Zoom range.
    pub zoom_range: ZoomRange,
    /// Channel shift range, `U(-c, c)` (one offset for all channels, clipped to the image range).
    pub channel_shift_range: f64,
    /// How points outside the image are filled (Keras' `fill_mode`; scipy's
    /// names in JSON). Default: nearest.
    pub fill_mode: FillMode,
    /// Fill value for `constant` mode, in raw pixel units.
    pub cval: f64,
    /// Random horizontal flips.
    pub horizontal_flip: bool,
    /// Random vertical flips.
    pub vertical_flip: bool,
    /// Multiplier applied first in `standardize`; `None` or 0 = off.
    pub rescale: Option<f64>,
    /// Channel axis position.
    pub data_format: DataFormat,
    /// Fraction of samples reserved for validation, in (0, 1); 0 = none.
    pub validation_split: f64,
    /// Spline order 0..=5 for the affine resampling.
    pub interpolation_order: u8,
    /// Output dtype (`"float32"` / `"float64"` in JSON).
    pub dtype: OutputDtype,
    /// Which Keras' numerics to follow (not a Keras option). Default:
    /// keras-preprocessing 1.1.2.
    pub compat: Compat,
}

impl Default for GeneratorOptions {
    fn default() -> Self {
        GeneratorOptions {
            featurewise_center: false,
            samplewise_center: false,
            featurewise_std_normalization: false,
            samplewise_std_normalization: false,
            zca_whitening: false,
            zca_epsilon: 1e-6,
            rotation_range: 0.0,
            width_shift_range: ShiftRange::default(),
            height_shift_range: ShiftRange::default(),
            brightness_range: None,
            brightness_mode: BrightnessMode::Keras,
            shear_range: 0.0,
            zoom_range: ZoomRange::default(),
            channel_shift_range: 0.0,
            fill_mode: FillMode::Nearest,
            cval: 0.0,
            horizontal_flip: false,
            vertical_flip: false,
            rescale: None,
            data_format: DataFormat::ChannelsLast,
            validation_split: 0.0,
            interpolation_order: 1,
            dtype: OutputDtype::F32,
            compat: Compat::KerasPreprocessing,
        }
    }
}

/// The options after validation and Keras' flag overrides, with the parts
/// the hot path needs pre-digested.
pub(crate) struct Validated {
    pub(crate) options: GeneratorOptions,
    pub(crate) fill_mode: FillMode,
    pub(crate) ranges: TransformRanges,
}

/// Checks every option and applies Keras' flag overrides (each with a warning).
pub(crate) fn validate(mut o: GeneratorOptions) -> Result<Validated> {
    check_finite(&o)?;
    if o.interpolation_order > 5 {
        return Err(Error::invalid(
            "interpolation_order",
            o.interpolation_order,
            "expected a spline order in 0..=5",
        ));
    }
    // Keras: a truthy split must lie strictly inside (0, 1); 0 means none.
    let v = o.validation_split;
    if v != 0.0 && !(0.0 < v && v < 1.0) {
        return Err(Error::invalid(
            "validation_split",
            v,
            "expected 0 (none) or a value strictly between 0 and 1",
        ));
    }
    apply_overrides(&mut o);
    let ranges = TransformRanges {
        rotation: o.rotation_range,
        height_shift: o.height_shift_range.rule(),
        width_shift: o.width_shift_range.rule(),
        shear: o.shear_range,
        zoom: o.zoom_range.bounds(),
        horizontal_flip: o.horizontal_flip,
        vertical_flip: o.vertical_flip,
        channel_shift: o.channel_shift_range,
        brightness: o.brightness_range,
    };
    Ok(Validated {
        fill_mode: o.fill_mode,
        options: o,
        ranges,
    })
}

/// Keras' four overrides, each decided on the options as given (so zca +
/// featurewise std without featurewise center warns three times, as Keras).
fn apply_overrides(o: &mut GeneratorOptions) {
    let given = o.clone();
    if given.zca_whitening {
        if !given.featurewise_center {
            o.featurewise_center = true;
            log::warn!("`zca_whitening` overrides `featurewise_center`: it is turned on");
        }
        if given.featurewise_std_normalization {
            o.featurewise_std_normalization = false;
            log::warn!(
                "`zca_whitening` overrides `featurewise_std_normalization`: it is turned off"
            );
        }
    }
    if given.featurewise_std_normalization && !given.featurewise_center {
        o.featurewise_center = true;
        log::warn!(
            "`featurewise_std_normalization` overrides `featurewise_center`: it is turned on"
        );
    }
    if given.samplewise_std_normalization && !given.samplewise_center {
        o.samplewise_center = true;
        log::warn!("`samplewise_std_normalization` overrides `samplewise_center`: it is turned on");
    }
}

fn check_finite(o: &GeneratorOptions) -> Result<()> {
    let scalars: [(&'static str, Vec<f64>); 11] = [
        ("zca_epsilon", vec![o.zca_epsilon]),
        ("rotation_range", vec![o.rotation_range]),
        ("width_shift_range", o.width_shift_range.values()),
        ("height_shift_range", o.height_shift_range.values()),
        (
            "brightness_range",
            o.brightness_range.map_or(Vec::new(), Vec::from),
        ),
        ("shear_range", vec![o.shear_range]),
        ("zoom_range", zoom_values(o.zoom_range)),
        ("channel_shift_range", vec![o.channel_shift_range]),
        ("cval", vec![o.cval]),
        ("rescale", o.rescale.into_iter().collect()),
        ("validation_split", vec![o.validation_split]),
    ];
    for (name, values) in scalars {
        if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
            return Err(Error::invalid(name, bad, "expected a finite number"));
        }
    }
    Ok(())
}

fn zoom_values(z: ZoomRange) -> Vec<f64> {
    match z {
        ZoomRange::Scalar(v) => vec![v],
        ZoomRange::Range(r) => r.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn invalid_name(r: Result<Validated>) -> &'static str {
        match r.err().map(Error::into_kind) {
            Some(ErrorKind::InvalidArgument { name, .. }) => name,
            other => panic!("expected an invalid argument, got {other:?}"),
        }
    }

    #[test]
    fn defaults_validate_to_identity_ranges() {
        let v = validate(GeneratorOptions::default()).unwrap();
        assert_eq!(v.ranges, TransformRanges::default());
        assert_eq!(v.fill_mode, FillMode::Nearest);
        assert_eq!(v.options, GeneratorOptions::default());
    }

    #[test]
    fn each_bad_option_is_named() {
        let d = GeneratorOptions::default;
        let cases: Vec<(GeneratorOptions, &str)> = vec![
            (
                GeneratorOptions {
                    interpolation_order: 6,
                    ..d()
                },
                "interpolation_order",
            ),
            (
                GeneratorOptions {
                    validation_split: 5.0,
                    ..d()
                },
                "validation_split",
            ),
            (
                GeneratorOptions {
                    validation_split: 1.0,
                    ..d()
                },
                "validation_split",
            ),
            (
                GeneratorOptions {
                    validation_split: -0.1,
                    ..d()
                },
                "validation_split",
            ),
            (
                GeneratorOptions {
                    zoom_range: ZoomRange::Scalar(f64::NAN),
                    ..d()
                },
                "zoom_range",
            ),
            (
                GeneratorOptions {
                    zoom_range: ZoomRange::Range([0.9, f64::INFINITY]),
                    ..d()
                },
                "zoom_range",
            ),
            (
                GeneratorOptions {
                    rotation_range: f64::INFINITY,
                    ..d()
                },
                "rotation_range",
            ),
            (
                GeneratorOptions {
                    width_shift_range: ShiftRange::Choices(vec![0.1, f64::NAN]),
                    ..d()
                },
                "width_shift_range",
            ),
            (
                GeneratorOptions {
                    height_shift_range: ShiftRange::Float(f64::NAN),
                    ..d()
                },
                "height_shift_range",
            ),
            (
                GeneratorOptions {
                    brightness_range: Some([1.0, f64::NAN]),
                    ..d()
                },
                "brightness_range",
            ),
            (
                GeneratorOptions {
                    rescale: Some(f64::INFINITY),
                    ..d()
                },
                "rescale",
            ),
            (
                GeneratorOptions {
                    cval: f64::NAN,
                    ..d()
                },
                "cval",
            ),
            (
                GeneratorOptions {
                    validation_split: f64::NAN,
                    ..d()
                },
                "validation_split",
            ),
        ];
        for (o, name) in cases {
            assert_eq!(invalid_name(validate(o.clone())), name, "{o:?}");
        }
    }

    #[test]
    fn accepted_values() {
        let d = GeneratorOptions::default;
        for mode in FillMode::ALL {
            let v = validate(GeneratorOptions {
                fill_mode: mode,
                ..d()
            })
            .unwrap();
            assert_eq!(v.fill_mode, mode);
        }
        for order in 0..=5 {
            validate(GeneratorOptions {
                interpolation_order: order,
                ..d()
            })
            .unwrap();
        }
        for split in [0.0, 0.2, 0.999] {
            validate(GeneratorOptions {
                validation_split: split,
                ..d()
            })
            .unwrap();
        }
        let v = validate(GeneratorOptions {
            zoom_range: ZoomRange::Scalar(0.2),
            ..d()
        })
        .unwrap();
        assert_eq!(v.ranges.zoom, [0.8, 1.2]);
        // Reversed bounds are allowed, as in Keras.
        let v = validate(GeneratorOptions {
            zoom_range: ZoomRange::Range([1.3, 0.7]),
            ..d()
        })
        .unwrap();
        assert_eq!(v.ranges.zoom, [1.3, 0.7]);
    }

    #[test]
    fn flag_overrides_follow_keras() {
        let d = GeneratorOptions::default;
        let o = validate(GeneratorOptions {
            zca_whitening: true,
            featurewise_std_normalization: true,
            ..d()
        })
        .unwrap()
        .options;
        assert!(o.featurewise_center && !o.featurewise_std_normalization && o.zca_whitening);
        let o = validate(GeneratorOptions {
            featurewise_std_normalization: true,
            ..d()
        })
        .unwrap()
        .options;
        assert!(o.featurewise_center && o.featurewise_std_normalization);
        let o = validate(GeneratorOptions {
            samplewise_std_normalization: true,
            ..d()
        })
        .unwrap()
        .options;
        assert!(o.samplewise_center && o.samplewise_std_normalization);
        let o = validate(GeneratorOptions {
            samplewise_center: true,
            ..d()
        })
        .unwrap()
        .options;
        assert!(o.samplewise_center && !o.samplewise_std_normalization && !o.featurewise_center);
    }

    #[test]
    fn shift_rules_follow_the_option_type() {
        assert_eq!(ShiftRange::Pixels(0).rule(), ShiftRule::Off);
        assert_eq!(ShiftRange::Float(0.0).rule(), ShiftRule::Off);
        assert_eq!(ShiftRange::Choices(vec![]).rule(), ShiftRule::Off);
        assert_eq!(ShiftRange::Pixels(3).rule(), ShiftRule::Pixels(3));
        assert_eq!(
            ShiftRange::Pixels(-2).rule(),
            ShiftRule::Uniform {
                range: -2.0,
                scale: true
            }
        );
        assert_eq!(
            ShiftRange::Float(0.1).rule(),
            ShiftRule::Uniform {
                range: 0.1,
                scale: true
            }
        );
        assert_eq!(
            ShiftRange::Float(2.0).rule(),
            ShiftRule::Uniform {
                range: 2.0,
                scale: false
            }
        );
        assert_eq!(
            ShiftRange::Choices(vec![-3.0, 0.5]).rule(),
            ShiftRule::Choices {
                values: vec![-3.0, 0.5],
                scale: true
            }
        );
        assert_eq!(
            ShiftRange::Choices(vec![1.0, 2.0]).rule(),
            ShiftRule::Choices {
                values: vec![1.0, 2.0],
                scale: false
            }
        );
    }
}
