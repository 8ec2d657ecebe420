//! scipy's boundary modes, by name: the `fill_mode` of Keras and the `mode`
//! of scipy.ndimage.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// scipy's boundary modes (Keras' `fill_mode`): how values are read beyond
/// the edges of the input. Drawn on the samples `a b c d` (`k` = `cval`):
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FillMode {
    /// `k k k k | a b c d | k k k k`: any output pixel whose coordinate falls
    /// outside `[0, n-1]` on either axis is `cval` (no blending at the border).
    Constant,
    /// `a a a a | a b c d | d d d d`: repeat the edge sample. Keras' default.
    #[default]
    Nearest,
    /// `d c b a | a b c d | d c b a`: half-sample symmetric.
    Reflect,
    /// `c d b c | a b c d | b c a b`: scipy's legacy wrap, period n-1 (the
    /// first and last samples coincide). Use [`FillMode::GridWrap`] for a true
    /// periodic extension.
    Wrap,
    /// `c d c b | a b c d | c b a b`: whole-sample symmetric.
    Mirror,
    /// `a b c d | a b c d | a b c d`: periodic, period n.
    GridWrap,
    /// Same as [`FillMode::Reflect`].
    GridMirror,
    /// `k k k k | a b c d | k k k k`, but interpolating with `cval` beyond the
    /// edge instead of cutting to `cval` there.
    GridConstant,
}

impl FillMode {
    /// Every mode, in declaration order.
    pub const ALL: [FillMode; 8] = [
        FillMode::Constant,
        FillMode::Nearest,
        FillMode::Reflect,
        FillMode::Wrap,
        FillMode::Mirror,
        FillMode::GridWrap,
        FillMode::GridMirror,
        FillMode::GridConstant,
    ];

    /// scipy's (and Keras') name: `"constant"`, `"nearest"`, `"reflect"`,
    /// `"wrap"`, `"mirror"`, `"grid-wrap"`, `"grid-mirror"`, `"grid-constant"`.
    pub fn as_str(self) -> &'static str {
        match self {
            FillMode::Constant => "constant",
            FillMode::Nearest => "nearest",
            FillMode::Reflect => "reflect",
            FillMode::Wrap => "wrap",
            FillMode::Mirror => "mirror",
            FillMode::GridWrap => "grid-wrap",
            FillMode::GridMirror => "grid-mirror",
            FillMode::GridConstant => "grid-constant",
        }
    }
}

impl fmt::Display for FillMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FillMode {
    type Err = crate::Error;

    /// Parses scipy's mode names (see [`FillMode::as_str`]).
    ///
    /// # Errors
    ///
    /// [`crate::ErrorKind::InvalidArgument`] naming `fill_mode` for any other
    /// string (Keras would only fail later, at transform time).
    fn from_str(s: &str) -> crate::Result<FillMode> {
        FillMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                crate::Error::invalid(
                "fill_mode",
                format!("{s:?}"),
                "expected one of \"constant\", \"nearest\", \"reflect\", \"wrap\", \"mirror\", \
                 \"grid-wrap\", \"grid-mirror\", \"grid-constant\"",
            )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for mode in FillMode::ALL {
            assert_eq!(mode.as_str().parse::<FillMode>().unwrap(), mode);
            assert_eq!(mode.to_string(), mode.as_str());
            let json = serde_json::to_string(&mode).unwrap();
            assert_eq!(json, format!("\"{}\"", mode.as_str()));
        }
        let err = "grid_wrap".parse::<FillMode>().unwrap_err();
        assert!(err.to_string().contains("fill_mode"), "{err}");
        assert_eq!(FillMode::default(), FillMode::Nearest);
    }
}
