//! Generator options: Keras' keyword arguments, their validation and flag
//! overrides, and reading them from a JSON dict.

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

/// A zoom range: a scalar `z` means `[1 - z, 1 + z]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ZoomRange {
    /// `[1 - z, 1 + z]`.
    Scalar(f64),
    /// Explicit `[lo, hi]`; exactly two numbers (no ordering check, as Keras).
    Pair(Vec<f64>),
}

impl Default for ZoomRange {
    fn default() -> Self {
        ZoomRange::Scalar(0.0)
    }
}

impl ZoomRange {
    /// The `[lo, hi]` bounds after Keras' normalisation.
    ///
    /// # Errors
    /// When a `Pair` does not hold exactly two values.
    pub fn bounds(&self) -> Result<[f64; 2]> {
        match self {
            ZoomRange::Scalar(z) => Ok([1.0 - z, 1.0 + z]),
            ZoomRange::Pair(v) => match v[..] {
                [lo, hi] => Ok([lo, hi]),
                _ => Err(Error::invalid(
                    "zoom_range",
                    format!("{v:?}"),
                    "expected a number or a list of two numbers",
                )),
            },
        }
    }
}

/// Every `ImageDataGenerator` constructor option, with Keras' names and
/// defaults. Build one with struct-update syntax from [`Default`], or read a
/// Keras keyword dict with [`GeneratorOptions::from_json`].
///
/// `preprocessing_function` is not here: it is a Rust closure attached to the
/// generator ([`ImageDataGenerator::with_preprocessing_function`](crate::ImageDataGenerator::with_preprocessing_function)).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
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
    /// Range `[lo, hi]` of the brightness factor; must be a pair.
    pub brightness_range: Option<Vec<f64>>,
    /// How the brightness factor is applied (not a Keras option). Default: Keras' way.
    pub brightness_mode: BrightnessMode,
    /// Shear angle range in degrees, `U(-s, s)`.
    pub shear_range: f64,
    /// Zoom range.
    pub zoom_range: ZoomRange,
    /// Channel shift range, `U(-c, c)` (one offset for all channels, clipped to the image range).
    pub channel_shift_range: f64,
    /// Fill mode: constant, nearest, reflect, wrap, mirror, grid-wrap, grid-mirror, grid-constant.
    pub fill_mode: String,
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
            fill_mode: "nearest".to_string(),
            cval: 0.0,
            horizontal_flip: false,
            vertical_flip: false,
            rescale: None,
            data_format: DataFormat::ChannelsLast,
            validation_split: 0.0,
            interpolation_order: 1,
            dtype: OutputDtype::F32,
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
    let fill_mode: FillMode = o.fill_mode.parse()?;
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
    let brightness = match &o.brightness_range {
        None => None,
        Some(b) => match b[..] {
            [lo, hi] => Some([lo, hi]),
            _ => {
                return Err(Error::invalid(
                    "brightness_range",
                    format!("{b:?}"),
                    "expected a pair [lo, hi] of brightness factors",
                ))
            }
        },
    };
    let zoom = o.zoom_range.bounds()?;
    apply_overrides(&mut o);
    let ranges = TransformRanges {
        rotation: o.rotation_range,
        height_shift: o.height_shift_range.rule(),
        width_shift: o.width_shift_range.rule(),
        shear: o.shear_range,
        zoom,
        horizontal_flip: o.horizontal_flip,
        vertical_flip: o.vertical_flip,
        channel_shift: o.channel_shift_range,
        brightness,
    };
    Ok(Validated {
        options: o,
        fill_mode,
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
            o.brightness_range.clone().unwrap_or_default(),
        ),
        ("shear_range", vec![o.shear_range]),
        ("zoom_range", zoom_values(&o.zoom_range)),
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

fn zoom_values(z: &ZoomRange) -> Vec<f64> {
    match z {
        ZoomRange::Scalar(v) => vec![*v],
        ZoomRange::Pair(v) => v.clone(),
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
                    fill_mode: "edge".into(),
                    ..d()
                },
                "fill_mode",
            ),
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
                    brightness_range: Some(vec![0.1]),
                    ..d()
                },
                "brightness_range",
            ),
            (
                GeneratorOptions {
                    brightness_range: Some(vec![0.0]),
                    ..d()
                },
                "brightness_range",
            ),
            (
                GeneratorOptions {
                    brightness_range: Some(vec![1.0, 2.0, 3.0]),
                    ..d()
                },
                "brightness_range",
            ),
            (
                GeneratorOptions {
                    zoom_range: ZoomRange::Pair(vec![0.0]),
                    ..d()
                },
                "zoom_range",
            ),
            (
                GeneratorOptions {
                    zoom_range: ZoomRange::Pair(vec![]),
                    ..d()
                },
                "zoom_range",
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
                    brightness_range: Some(vec![1.0, f64::NAN]),
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
        for mode in [
            "constant",
            "nearest",
            "reflect",
            "wrap",
            "mirror",
            "grid-wrap",
            "grid-mirror",
            "grid-constant",
        ] {
            validate(GeneratorOptions {
                fill_mode: mode.into(),
                ..d()
            })
            .unwrap();
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
            zoom_range: ZoomRange::Pair(vec![1.3, 0.7]),
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
