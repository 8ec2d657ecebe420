//! How the channels of one pixel are laid out, and the copy, fill and blend
//! of one pixel's channels for each layout: packed channels-last with the
//! count known at compile time (loaded, blended and stored as one small
//! array, bounds checked once, vectorisable), planes of channels-first
//! images, and any strides.

use crate::Real;

/// How the channels of one pixel are laid out in the buffer.
pub(crate) trait Channels: Copy {
    /// Copies the pixel whose channel 0 is at `src` to the one at `dst`.
    fn copy<T: Real>(self, input: &[T], output: &mut [T], src: usize, dst: usize);

    /// Sets every channel of the pixel at `dst` to `v`.
    fn fill<T: Real>(self, output: &mut [T], dst: usize, v: T);

    /// Writes at `dst` the bilinear blend of the four pixels at `r[a] + c[b]`
    /// with weights `w = [w_row0, w_row1, w_col0, w_col1]`.
    fn blend<T: Real>(
        self,
        input: &[T],
        output: &mut [T],
        r: [usize; 2],
        c: [usize; 2],
        w: [f64; 4],
        dst: usize,
    );
}

/// scipy's bilinear sum for one channel, in its order.
#[inline(always)]
fn bilinear(v: [f64; 4], w: [f64; 4]) -> f64 {
    v[0] * w[0] * w[2] + v[1] * w[0] * w[3] + v[2] * w[1] * w[2] + v[3] * w[1] * w[3]
}

/// Channels-last with `C` channels: a pixel is `C` adjacent elements.
#[derive(Clone, Copy)]
pub(crate) struct Packed<const C: usize>;

impl<const C: usize> Packed<C> {
    #[inline(always)]
    fn pixel<T: Real>(data: &[T], at: usize) -> &[T; C] {
        // The slice has exactly C elements, so the conversion cannot fail.
        data[at..at + C].try_into().expect("C elements")
    }
}

impl<const C: usize> Channels for Packed<C> {
    #[inline(always)]
    fn copy<T: Real>(self, input: &[T], output: &mut [T], src: usize, dst: usize) {
        output[dst..dst + C].copy_from_slice(Self::pixel(input, src));
    }

    #[inline(always)]
    fn fill<T: Real>(self, output: &mut [T], dst: usize, v: T) {
        output[dst..dst + C].fill(v);
    }

    #[inline(always)]
    fn blend<T: Real>(
        self,
        input: &[T],
        output: &mut [T],
        r: [usize; 2],
        c: [usize; 2],
        w: [f64; 4],
        dst: usize,
    ) {
        let p00 = Self::pixel(input, r[0] + c[0]);
        let p01 = Self::pixel(input, r[0] + c[1]);
        let p10 = Self::pixel(input, r[1] + c[0]);
        let p11 = Self::pixel(input, r[1] + c[1]);
        let out: &mut [T; C] = (&mut output[dst..dst + C]).try_into().expect("C elements");
        for ch in 0..C {
            let v = [p00[ch], p01[ch], p10[ch], p11[ch]].map(T::to_f64_lossless);
            out[ch] = T::from_f64_lossy(bilinear(v, w));
        }
    }
}

/// Any layout: `count` channels `stride` elements apart.
#[derive(Clone, Copy)]
pub(crate) struct Strided {
    pub count: usize,
    pub stride: usize,
}

impl Channels for Strided {
    #[inline(always)]
    fn copy<T: Real>(self, input: &[T], output: &mut [T], src: usize, dst: usize) {
        for ch in 0..self.count {
            let o = ch * self.stride;
            output[dst + o] = input[src + o];
        }
    }

    #[inline(always)]
    fn fill<T: Real>(self, output: &mut [T], dst: usize, v: T) {
        for ch in 0..self.count {
            output[dst + ch * self.stride] = v;
        }
    }

    #[inline(always)]
    fn blend<T: Real>(
        self,
        input: &[T],
        output: &mut [T],
        r: [usize; 2],
        c: [usize; 2],
        w: [f64; 4],
        dst: usize,
    ) {
        for ch in 0..self.count {
            let o = ch * self.stride;
            let v = [
                input[r[0] + c[0] + o],
                input[r[0] + c[1] + o],
                input[r[1] + c[0] + o],
                input[r[1] + c[1] + o],
            ]
            .map(T::to_f64_lossless);
            output[dst + o] = T::from_f64_lossy(bilinear(v, w));
        }
    }
}

/// Channels-first with `C` channels: planes `stride` elements apart.
#[derive(Clone, Copy)]
pub(crate) struct Planes<const C: usize> {
    pub stride: usize,
}

impl<const C: usize> Channels for Planes<C> {
    #[inline(always)]
    fn copy<T: Real>(self, input: &[T], output: &mut [T], src: usize, dst: usize) {
        Strided {
            count: C,
            stride: self.stride,
        }
        .copy(input, output, src, dst);
    }

    #[inline(always)]
    fn fill<T: Real>(self, output: &mut [T], dst: usize, v: T) {
        Strided {
            count: C,
            stride: self.stride,
        }
        .fill(output, dst, v);
    }

    #[inline(always)]
    fn blend<T: Real>(
        self,
        input: &[T],
        output: &mut [T],
        r: [usize; 2],
        c: [usize; 2],
        w: [f64; 4],
        dst: usize,
    ) {
        Strided {
            count: C,
            stride: self.stride,
        }
        .blend(input, output, r, c, w, dst);
    }
}
