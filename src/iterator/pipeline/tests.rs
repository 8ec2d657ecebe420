//! The stash path of the pipeline against the map path.

use super::*;
use crate::iterator::batch::Images;
use crate::npy::{write_npy, ElemType};
use crate::{DataFormat, GeneratorOptions};

/// A context over `x`'s rows `rows`, cold (hints on), with a 1 MiB stash
/// or none, whatever the machine's memory would choose.
fn context(x: &NpyArray, rows: Range<usize>, order: Order, batch: usize, stash: bool) -> Context {
    let options = GeneratorOptions {
        rescale: Some(1.0 / 255.0),
        ..Default::default()
    };
    let s = x.shape();
    let mut ctx = Context::new(ContextConfig {
        x: x.clone(),
        y: None,
        sample_weight: None,
        aux: Vec::new(),
        generator: Arc::new(ImageDataGenerator::new(options).unwrap()),
        shape: DataFormat::ChannelsLast.image_shape([s[1], s[2], s[3]]),
        dtype: OutputDtype::F32,
        rows,
        batch_size: batch,
        drop_last: false,
        order,
        seed: 5,
        shard: Shard::ALL,
        resumed: None,
        save: None,
        cache_budget: None,
    });
    // The block order's stash maps two windows' buffers, ahead of the reads.
    let working = |s: Stash| match order {
        Order::Blocks { block_rows, window } => {
            s.mapping_at_most(2 * window, 2 * window * block_rows * x.row_bytes())
        }
        _ => s,
    };
    ctx.stash = stash.then(|| Arc::new(working(Stash::with_cap(1 << 20))));
    ctx.begin_epoch(0.0);
    ctx
}

/// Every batch of `epochs` epochs: indices and image values.
fn batches(ctx: &Context, epochs: u64) -> Vec<(Vec<usize>, Vec<f32>)> {
    let mut out = Vec::new();
    for epoch in 0..epochs {
        for index in 0..ctx.schedule().batches(epoch) {
            ctx.before_plan(epoch, index).unwrap();
            let plan = ctx.shared_plan(epoch);
            let mut batch = ctx.new_batch();
            ctx.assemble(epoch, index, &plan, &mut batch, 2, false)
                .unwrap();
            let Images::F32(images) = &batch.images else {
                panic!("f32 batches")
            };
            let len = batch.len * ctx.shape.len();
            out.push((batch.indices.clone(), images[..len].to_vec()));
        }
    }
    out
}

#[test]
fn rows_taken_from_the_stash_make_the_same_batches_as_the_map() {
    let dir = tempfile::tempdir().unwrap();
    // Rows of 105 bytes: no row, stretch or block starts on a block
    // boundary of the file, so direct reads take unaligned spans.
    let n = 3000;
    let data: Vec<u8> = (0..n * 105).map(|i| (i * 31 + i / 97) as u8).collect();
    let path = dir.path().join("x.npy");
    write_npy(&path, ElemType::U8, &[n, 5, 7, 3], &data).unwrap();
    let x = NpyArray::open(&path).unwrap();
    let orders = [
        Order::Sequential,
        Order::Blocks {
            block_rows: 97,
            window: 3,
        },
    ];
    for order in orders {
        for (rows, batch) in [(0..n, 32), (13..2_900, 50), (0..n, 1), (5..6, 8)] {
            let plain = batches(&context(&x, rows.clone(), order, batch, false), 2);
            let stashed = context(&x, rows.clone(), order, batch, true);
            assert_eq!(
                batches(&stashed, 2),
                plain,
                "{order:?}, rows {rows:?}, batch {batch}"
            );
            // Every stretch was taken whole: none left behind.
            let held = stashed.stash.as_ref().unwrap().held_bytes();
            assert_eq!(held, 0, "{order:?}, rows {rows:?}, batch {batch}");
        }
    }
}
