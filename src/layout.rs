//! Image layout: channels-last or channels-first, and the shape of one image.

use serde::{Deserialize, Serialize};

/// Where the channel axis sits, as Keras' `data_format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataFormat {
    /// `(N, H, W, C)` batches, `(H, W, C)` images. Keras' default.
    #[default]
    ChannelsLast,
    /// `(N, C, H, W)` batches, `(C, H, W)` images.
    ChannelsFirst,
}

impl DataFormat {
    /// Keras' spelling: `channels_last` / `channels_first`.
    pub fn as_str(self) -> &'static str {
        match self {
            DataFormat::ChannelsLast => "channels_last",
            DataFormat::ChannelsFirst => "channels_first",
        }
    }

    /// The shape of one image of a 4-D batch shape `(N, a, b, c)` read in this format.
    pub fn image_shape(self, sample_dims: [usize; 3]) -> ImageShape {
        match self {
            DataFormat::ChannelsLast => ImageShape {
                height: sample_dims[0],
                width: sample_dims[1],
                channels: sample_dims[2],
                format: self,
            },
            DataFormat::ChannelsFirst => ImageShape {
                channels: sample_dims[0],
                height: sample_dims[1],
                width: sample_dims[2],
                format: self,
            },
        }
    }
}

impl std::str::FromStr for DataFormat {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s {
            "channels_last" | "channels-last" => Ok(DataFormat::ChannelsLast),
            "channels_first" | "channels-first" => Ok(DataFormat::ChannelsFirst),
            other => Err(crate::Error::invalid(
                "data_format",
                format!("{other:?}"),
                "expected \"channels_last\" or \"channels_first\"",
            )),
        }
    }
}

/// The shape of one 3-D image and how its elements are laid out in memory (C order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ImageShape {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// Channels.
    pub channels: usize,
    /// Axis order of the buffer.
    pub format: DataFormat,
}

impl ImageShape {
    /// A channels-last shape `(height, width, channels)`.
    pub fn hwc(height: usize, width: usize, channels: usize) -> ImageShape {
        ImageShape {
            height,
            width,
            channels,
            format: DataFormat::ChannelsLast,
        }
    }

    /// A channels-first shape `(channels, height, width)`.
    pub fn chw(channels: usize, height: usize, width: usize) -> ImageShape {
        ImageShape {
            height,
            width,
            channels,
            format: DataFormat::ChannelsFirst,
        }
    }

    /// Number of elements in one image.
    pub fn len(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// True when the image has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The 3-D shape in memory order.
    pub fn dims(&self) -> [usize; 3] {
        match self.format {
            DataFormat::ChannelsLast => [self.height, self.width, self.channels],
            DataFormat::ChannelsFirst => [self.channels, self.height, self.width],
        }
    }

    /// Element strides `(row, col, channel)` in the C-order buffer.
    pub fn strides(&self) -> (usize, usize, usize) {
        match self.format {
            DataFormat::ChannelsLast => (self.width * self.channels, self.channels, 1),
            DataFormat::ChannelsFirst => (self.width, 1, self.height * self.width),
        }
    }

    /// Flat index of `(row, col, channel)`.
    #[inline]
    pub fn index(&self, row: usize, col: usize, channel: usize) -> usize {
        let (sr, sc, sch) = self.strides();
        row * sr + col * sc + channel * sch
    }
}

/// Where a sample's elements go in a buffer: consecutive runs of `run`
/// elements, run `k` at `start + k·stride`. A plain sample buffer is one
/// run; an image read into a copy with margins around it (the bilinear
/// kernel's, see `ResampleScratch::read_buffer`) takes one run per row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Placement {
    /// Elements per run.
    pub run: usize,
    /// Where run 0 starts.
    pub start: usize,
    /// From one run's start to the next.
    pub stride: usize,
}

impl Placement {
    /// All `len` elements in one run from the start of the buffer.
    pub(crate) fn contiguous(len: usize) -> Placement {
        Placement {
            run: len,
            start: 0,
            stride: len,
        }
    }

    /// The runs of `buf` that take `len` elements, in order.
    ///
    /// # Panics
    /// When `run` does not divide `len` or `buf` is too short (caller bugs).
    pub(crate) fn runs<T>(self, buf: &mut [T], len: usize) -> impl Iterator<Item = &mut [T]> {
        let count = if len == 0 { 0 } else { len / self.run };
        assert!(
            count * self.run == len,
            "placement: {len} elements in runs of {}",
            self.run
        );
        let buf = &mut buf[self.start..];
        let stride = self.stride.max(1);
        buf.chunks_mut(stride)
            .take(count)
            .map(move |c| &mut c[..self.run])
    }
}
