//! Transform parameters (Keras' `transform_parameters` dict) and how Keras
//! draws them from the generator's ranges.

use crate::rng::SampleRng;

/// The parameters of one augmentation: Keras' `transform_parameters` dict with
/// typed fields. [`Default`] is the identity transform.
///
/// Geometry follows keras-preprocessing 1.1.2: `tx` is the **vertical** shift
/// (rows) and `ty` the horizontal one, whatever the Keras docstring says.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TransformParams {
    /// Rotation in degrees; positive turns the content clockwise on screen.
    pub theta: f64,
    /// Vertical shift in pixels; positive moves the content up.
    pub tx: f64,
    /// Horizontal shift in pixels; positive moves the content left.
    pub ty: f64,
    /// Shear angle in degrees.
    pub shear: f64,
    /// Zoom factor of the vertical (row) direction; above 1 zooms out.
    pub zx: f64,
    /// Zoom factor of the horizontal (column) direction; above 1 zooms out.
    pub zy: f64,
    /// Reverse the columns.
    pub flip_horizontal: bool,
    /// Reverse the rows.
    pub flip_vertical: bool,
    /// Offset added to every value, clipped to the image's own range; `None` = off.
    pub channel_shift_intensity: Option<f64>,
    /// Brightness factor; `None` = off (note that Keras' brightness also
    /// rescales the image to 0..255, see [`BrightnessMode`](crate::BrightnessMode)).
    pub brightness: Option<f64>,
}

impl Default for TransformParams {
    fn default() -> Self {
        TransformParams {
            theta: 0.0,
            tx: 0.0,
            ty: 0.0,
            shear: 0.0,
            zx: 1.0,
            zy: 1.0,
            flip_horizontal: false,
            flip_vertical: false,
            channel_shift_intensity: None,
            brightness: None,
        }
    }
}

impl TransformParams {
    /// True when every parameter leaves the image unchanged.
    pub fn is_identity(&self) -> bool {
        *self == TransformParams::default()
    }
}

/// Keras' shift rule for one axis, decided once from the option's type.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ShiftRule {
    /// A falsy range (0, 0.0, empty list): no draw, shift 0.
    Off,
    /// A positive int `k`: `choice(k)` times a random sign, so integer pixels
    /// in `-(k-1)..=k-1` with P(0) = 1/k.
    Pixels(u64),
    /// A float (or a non-positive int, where numpy's `choice` raises):
    /// `uniform(-range, range)`, times the dimension when `scale`.
    Uniform {
        /// The range as given (may be negative: numpy's `uniform` accepts `lo > hi`).
        range: f64,
        /// Keras' `np.max(range) < 1`: the range is a fraction of the dimension.
        scale: bool,
    },
    /// A non-empty list: a uniformly chosen element times a random sign,
    /// times the dimension when `scale`.
    Choices {
        /// The choices.
        values: Vec<f64>,
        /// Keras' `np.max(list) < 1` (max, not max-abs).
        scale: bool,
    },
}

impl ShiftRule {
    /// One shift in pixels along an axis of length `dim`.
    fn draw(&self, dim: usize, rng: &mut SampleRng) -> f64 {
        let (value, scale) = match self {
            ShiftRule::Off => return 0.0,
            ShiftRule::Pixels(k) => (rng.below(*k) as f64 * random_sign(rng), false),
            ShiftRule::Uniform { range, scale } => (rng.uniform(-range, *range), *scale),
            ShiftRule::Choices { values, scale } => {
                let pick = rng.below(values.len() as u64) as usize;
                let value = values.get(pick).copied().unwrap_or(0.0);
                (value * random_sign(rng), *scale)
            }
        };
        if scale {
            value * dim as f64
        } else {
            value
        }
    }
}

/// numpy's `choice([-1, 1])`: one draw, either sign with probability 1/2.
fn random_sign(rng: &mut SampleRng) -> f64 {
    if rng.below(2) == 0 {
        -1.0
    } else {
        1.0
    }
}

/// The generator's augmentation ranges, normalised once at construction so
/// that drawing is branch-light and cannot fail.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TransformRanges {
    pub(crate) rotation: f64,
    pub(crate) height_shift: ShiftRule,
    pub(crate) width_shift: ShiftRule,
    pub(crate) shear: f64,
    /// `[lo, hi]` after Keras' scalar rule; `[1, 1]` draws nothing.
    pub(crate) zoom: [f64; 2],
    pub(crate) horizontal_flip: bool,
    pub(crate) vertical_flip: bool,
    pub(crate) channel_shift: f64,
    pub(crate) brightness: Option<[f64; 2]>,
}

impl Default for TransformRanges {
    fn default() -> Self {
        TransformRanges {
            rotation: 0.0,
            height_shift: ShiftRule::Off,
            width_shift: ShiftRule::Off,
            shear: 0.0,
            zoom: [1.0, 1.0],
            horizontal_flip: false,
            vertical_flip: false,
            channel_shift: 0.0,
            brightness: None,
        }
    }
}

impl TransformRanges {
    /// Draws one set of parameters for an image of `height` × `width`, in
    /// Keras' order (theta, tx, ty, shear, zx+zy, flip_h, flip_v, channel
    /// shift, brightness) and under Keras' conditions, so that enabling an
    /// option consumes draws exactly where Keras would.
    pub(crate) fn sample(
        &self,
        height: usize,
        width: usize,
        rng: &mut SampleRng,
    ) -> TransformParams {
        let mut p = TransformParams::default();
        if self.rotation != 0.0 {
            p.theta = rng.uniform(-self.rotation, self.rotation);
        }
        p.tx = self.height_shift.draw(height, rng);
        p.ty = self.width_shift.draw(width, rng);
        if self.shear != 0.0 {
            p.shear = rng.uniform(-self.shear, self.shear);
        }
        let [lo, hi] = self.zoom;
        if !(lo == 1.0 && hi == 1.0) {
            // Keras draws both factors in one `uniform(lo, hi, 2)` call: zx first.
            p.zx = rng.uniform(lo, hi);
            p.zy = rng.uniform(lo, hi);
        }
        // Flips are drawn even when disabled, as in Keras, so toggling them
        // does not shift the later draws; with neither flip nor a later
        // draw they change nothing, and a sample without random
        // augmentation never seeds its stream.
        let later = self.channel_shift != 0.0 || self.brightness.is_some();
        if self.horizontal_flip || self.vertical_flip || later {
            p.flip_horizontal = (rng.random() < 0.5) && self.horizontal_flip;
            p.flip_vertical = (rng.random() < 0.5) && self.vertical_flip;
        }
        if self.channel_shift != 0.0 {
            p.channel_shift_intensity = Some(rng.uniform(-self.channel_shift, self.channel_shift));
        }
        if let Some([b0, b1]) = self.brightness {
            p.brightness = Some(rng.uniform(b0, b1));
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Stream;

    fn rng(i: u64) -> SampleRng {
        SampleRng::new(11, Stream::Augment, 0, i)
    }

    #[test]
    fn default_is_identity() {
        assert!(TransformParams::default().is_identity());
        let p = TransformRanges::default().sample(5, 7, &mut rng(0));
        assert!(p.is_identity());
    }

    #[test]
    fn int_shift_two_gives_minus_one_zero_plus_one_at_25_50_25() {
        let rule = ShiftRule::Pixels(2);
        let mut counts = [0u32; 3];
        let mut r = rng(1);
        for _ in 0..20_000 {
            let v = rule.draw(100, &mut r);
            assert!(v == -1.0 || v == 0.0 || v == 1.0, "{v}");
            counts[(v + 1.0) as usize] += 1;
        }
        // Expected 5000 / 10000 / 5000; the bounds are > 10 standard deviations wide.
        assert!((4_300..5_700).contains(&counts[0]), "{counts:?}");
        assert!((9_200..10_800).contains(&counts[1]), "{counts:?}");
        assert!((4_300..5_700).contains(&counts[2]), "{counts:?}");
    }

    #[test]
    fn int_shift_never_reaches_k_and_one_is_always_zero() {
        let mut r = rng(2);
        for _ in 0..2_000 {
            let v = ShiftRule::Pixels(3).draw(10, &mut r);
            assert!([-2.0, -1.0, 0.0, 1.0, 2.0].contains(&v), "{v}");
            assert_eq!(ShiftRule::Pixels(1).draw(10, &mut r), 0.0);
        }
    }

    #[test]
    fn uniform_fraction_is_scaled_by_the_dimension_and_pixels_are_not() {
        let mut r = rng(3);
        let frac = ShiftRule::Uniform {
            range: 0.1,
            scale: true,
        };
        let pix = ShiftRule::Uniform {
            range: 2.0,
            scale: false,
        };
        let (mut fmax, mut pmax) = (0.0f64, 0.0f64);
        for _ in 0..5_000 {
            let f = frac.draw(50, &mut r);
            let p = pix.draw(50, &mut r);
            assert!(f.abs() <= 5.0 && p.abs() <= 2.0);
            fmax = fmax.max(f.abs());
            pmax = pmax.max(p.abs());
        }
        assert!(fmax > 4.9 && pmax > 1.95, "{fmax} {pmax}");
    }

    #[test]
    fn choices_take_an_element_times_a_sign() {
        let mut r = rng(4);
        let rule = ShiftRule::Choices {
            values: vec![0.1, 0.2],
            scale: true,
        };
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..2_000 {
            seen.insert((rule.draw(10, &mut r) * 1e6).round() as i64);
        }
        let want: std::collections::BTreeSet<i64> = [-2_000_000, -1_000_000, 1_000_000, 2_000_000]
            .into_iter()
            .collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn draws_follow_the_ranges() {
        let ranges = TransformRanges {
            rotation: 90.0,
            height_shift: ShiftRule::Uniform {
                range: 0.1,
                scale: true,
            },
            width_shift: ShiftRule::Pixels(3),
            shear: 0.5,
            zoom: [0.8, 1.2],
            horizontal_flip: true,
            vertical_flip: false,
            channel_shift: 0.1,
            brightness: Some([1.0, 5.0]),
        };
        let mut flips = 0;
        for i in 0..1_000 {
            let p = ranges.sample(20, 30, &mut rng(100 + i));
            assert!(p.theta.abs() <= 90.0 && p.tx.abs() <= 2.0 && p.ty.abs() <= 2.0);
            assert!(p.shear.abs() <= 0.5);
            assert!((0.8..1.2).contains(&p.zx) && (0.8..1.2).contains(&p.zy));
            assert_ne!(p.zx, p.zy);
            assert!(!p.flip_vertical);
            flips += p.flip_horizontal as u32;
            assert!(p.channel_shift_intensity.is_some_and(|c| c.abs() <= 0.1));
            assert!(p.brightness.is_some_and(|b| (1.0..5.0).contains(&b)));
        }
        assert!((400..600).contains(&flips), "{flips}");
    }

    #[test]
    fn disabled_flips_still_consume_draws() {
        let on = TransformRanges {
            horizontal_flip: true,
            channel_shift: 1.0,
            ..Default::default()
        };
        let off = TransformRanges {
            channel_shift: 1.0,
            ..Default::default()
        };
        for i in 0..50 {
            let a = on.sample(4, 4, &mut rng(i));
            let b = off.sample(4, 4, &mut rng(i));
            assert_eq!(a.channel_shift_intensity, b.channel_shift_intensity);
        }
    }
}
