//! Arbitrary text as a JSON generator config: parsing and validation never
//! panic; a generator that builds draws and applies transforms to tiny
//! images of both layouts without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use npyflow::{
    ErrorKind, GeneratorOptions, ImageDataGenerator, ImageShape, SampleRng, Scratch, Stream,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let options = GeneratorOptions::from_json(text);
    let generator = ImageDataGenerator::from_json(text);
    if let Err(e) = &generator {
        let _ = e.to_string();
    }
    if options.is_err() {
        assert!(
            generator.is_err(),
            "a config that does not parse built a generator"
        );
    }
    let Ok(g) = generator else { return };
    for (k, shape) in [
        ImageShape::hwc(5, 4, 3),
        ImageShape::chw(1, 3, 2),
        ImageShape::hwc(1, 1, 1),
    ]
    .into_iter()
    .enumerate()
    {
        let mut rng = SampleRng::new(data.len() as u64, Stream::Augment, 0, k as u64);
        let params = g.get_random_transform(shape, &mut rng);
        let mut image: Vec<f32> = (0..shape.len()).map(|v| v as f32 * 10.0).collect();
        let mut scratch = Scratch::default();
        g.apply_transform(&mut image, shape, &params, &mut scratch)
            .expect("the image has the shape's length");
        let mut image64: Vec<f64> = (0..shape.len()).map(|v| v as f64 * 10.0).collect();
        g.apply_transform(&mut image64, shape, &params, &mut Scratch::default())
            .expect("same for f64");
        if let Err(e) = g.process_sample(&mut image, shape, &mut rng, &mut scratch) {
            assert!(
                matches!(e.kind(), ErrorKind::MissingStatistics { .. }),
                "process_sample: {e}"
            );
        }
        if let Err(e) = g.standardize(&mut image64, shape) {
            assert!(
                matches!(e.kind(), ErrorKind::MissingStatistics { .. }),
                "standardize: {e}"
            );
        }
    }
});
