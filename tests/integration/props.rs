//! Property tests: for any size, batch size, order, subset and shard, an
//! epoch yields every index exactly once, and each sample's bytes are the
//! source row's.

use npyflow::npy::ElemType;
use npyflow::{GeneratorOptions, ImageDataGenerator, NumpyArrayIterator, Order, Subset};
use proptest::prelude::*;

use crate::util::write;

fn order_strategy() -> impl Strategy<Value = Order> {
    prop_oneof![
        Just(Order::Sequential),
        Just(Order::Shuffle),
        (1usize..7, 1usize..4)
            .prop_map(|(block_rows, window)| Order::Blocks { block_rows, window }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_index_once_and_bytes_equal(
        n in 0usize..40,
        batch in 1usize..9,
        order in order_strategy(),
        seed in any::<u64>(),
        shards in 1usize..4,
        subset in prop_oneof![Just(Subset::All), Just(Subset::Training), Just(Subset::Validation)],
        threads in 1usize..3,
    ) {
        let dir = tempfile::tempdir().unwrap();
        // Row k holds k in its first element (as u16, so up to 40 rows fit) and a per-row pattern.
        let row = 6;
        let data: Vec<u16> = (0..n * row).map(|e| if e % row == 0 { (e / row) as u16 } else { (e * 31 % 997) as u16 }).collect();
        let x = write(dir.path(), "x.npy", ElemType::U16, &[n, 1, 2, 3], &data);
        let g = ImageDataGenerator::new(GeneratorOptions { validation_split: 0.3, ..Default::default() }).unwrap();
        // Keras' split: the first int(n * 0.3) rows are the validation subset.
        let split = (n as f64 * 0.3) as usize;
        let (base, len) = match subset {
            Subset::All => (0, n),
            Subset::Validation => (0, split),
            Subset::Training => (split, n - split),
        };
        let mut seen = Vec::new();
        for k in 0..shards {
            let mut it = NumpyArrayIterator::builder(x.clone())
                .generator(g.clone())
                .batch_size(batch)
                .order(order)
                .seed(seed)
                .subset(subset)
                .shard(k, shards)
                .threads(threads)
                .build()
                .unwrap();
            it.for_each_in_epoch(|b| {
                let imgs = b.images::<f32>().unwrap();
                for (slot, &j) in b.indices().iter().enumerate() {
                    let got: Vec<f32> = imgs.index_axis(ndarray::Axis(0), slot).iter().copied().collect();
                    let src: Vec<f32> = data[(base + j) * row..(base + j + 1) * row].iter().map(|&v| v as f32).collect();
                    assert_eq!(got, src);
                    seen.push(j);
                }
                Ok(())
            }).unwrap();
        }
        seen.sort_unstable();
        prop_assert_eq!(seen, (0..len).collect::<Vec<_>>());
    }
}
