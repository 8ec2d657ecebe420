//! Options shared by several subcommands: Keras' generator options in kebab
//! case (or a `--config` JSON of Keras keyword names), iterator options, and
//! value parsers (sizes, byte counts, ranges).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use serde_json::{json, Map, Value};

use npyflow::{GeneratorOptions, ImageDataGenerator, NpyArray, Order, Statistics};

/// `ImageDataGenerator` options, Keras' keyword names in kebab case. Flags
/// given here override the same keys of `--config`.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Generator options (Keras' ImageDataGenerator)")]
pub struct GenArgs {
    /// JSON object of Keras keyword arguments, e.g. {"rotation_range": 20, "zoom_range": [0.9, 1.1]}.
    #[arg(long, value_name = "FILE.json")]
    pub config: Option<PathBuf>,
    /// Subtract the dataset mean per channel (needs statistics: `fit`, --stats).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool, value_name = "BOOL")]
    pub featurewise_center: Option<bool>,
    /// Subtract each image's own mean.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool, value_name = "BOOL")]
    pub samplewise_center: Option<bool>,
    /// Divide by the dataset std per channel (needs statistics).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool, value_name = "BOOL")]
    pub featurewise_std_normalization: Option<bool>,
    /// Divide each image by its own std.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool, value_name = "BOOL")]
    pub samplewise_std_normalization: Option<bool>,
    /// ZCA whitening (needs statistics).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool, value_name = "BOOL")]
    pub zca_whitening: Option<bool>,
    /// Epsilon for ZCA whitening [Keras: 1e-6].
    #[arg(long, value_name = "F")]
    pub zca_epsilon: Option<f64>,
    /// Degree range for random rotations.
    #[arg(long, value_name = "DEG")]
    pub rotation_range: Option<f64>,
    /// Horizontal shift: a fraction (0.1), whole pixels (3) or choices (-2,0,2).
    #[arg(long, value_name = "R", allow_hyphen_values = true)]
    pub width_shift_range: Option<String>,
    /// Vertical shift: a fraction (0.1), whole pixels (3) or choices (-2,0,2).
    #[arg(long, value_name = "R", allow_hyphen_values = true)]
    pub height_shift_range: Option<String>,
    /// Range of brightness factors, LO,HI (e.g. 0.8,1.2).
    #[arg(long, value_name = "LO,HI")]
    pub brightness_range: Option<String>,
    /// How brightness applies: keras (Keras 1.1.2 bit for bit) or multiplicative.
    #[arg(long, value_name = "MODE")]
    pub brightness_mode: Option<String>,
    /// Shear angle range in degrees.
    #[arg(long, value_name = "DEG")]
    pub shear_range: Option<f64>,
    /// Zoom range: Z for [1-Z, 1+Z], or LO,HI.
    #[arg(long, value_name = "Z|LO,HI")]
    pub zoom_range: Option<String>,
    /// Range of random channel shifts.
    #[arg(long, value_name = "F")]
    pub channel_shift_range: Option<f64>,
    /// constant, nearest, reflect, wrap, mirror, grid-wrap, grid-mirror or grid-constant [Keras: nearest].
    #[arg(long, value_name = "MODE")]
    pub fill_mode: Option<String>,
    /// Fill value for --fill-mode constant.
    #[arg(long, value_name = "F", allow_hyphen_values = true)]
    pub cval: Option<f64>,
    /// Random horizontal flips.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool, value_name = "BOOL")]
    pub horizontal_flip: Option<bool>,
    /// Random vertical flips.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool, value_name = "BOOL")]
    pub vertical_flip: Option<bool>,
    /// Multiply every value by this first, e.g. 0.00392156862745098 or 1/255.
    #[arg(long, value_name = "F")]
    pub rescale: Option<String>,
    /// channels_last (N,H,W,C) or channels_first (N,C,H,W) [Keras: channels_last].
    #[arg(long, value_name = "FORMAT")]
    pub data_format: Option<String>,
    /// Fraction of samples held out for validation (the first ones, as Keras).
    #[arg(long, value_name = "F")]
    pub validation_split: Option<f64>,
    /// Spline order of the affine resampling, 0..=5 [Keras: 1].
    #[arg(long, value_name = "N", value_parser = crate::opts::whole::<u8>)]
    pub interpolation_order: Option<u8>,
    /// Output dtype: float32, float64, float16, or bfloat16 (half types:
    /// computed in float32, rounded once to nearest even; bfloat16 not with --out).
    #[arg(long, value_name = "DTYPE")]
    pub dtype: Option<String>,
}

/// The words a boolean option takes: `--flag`, `--flag true`,
/// `--flag=false`, `--flag no`... (case-insensitive).
const TRUE_WORDS: [&str; 5] = ["true", "yes", "on", "y", "1"];
const FALSE_WORDS: [&str; 5] = ["false", "no", "off", "n", "0"];

/// Parses the value of a boolean option.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    let w = s.trim().to_ascii_lowercase();
    if TRUE_WORDS.contains(&w.as_str()) {
        Ok(true)
    } else if FALSE_WORDS.contains(&w.as_str()) {
        Ok(false)
    } else {
        Err("expected true or false".to_string())
    }
}

fn is_bool_word(s: &std::ffi::OsStr) -> bool {
    s.to_str().is_some_and(|s| parse_bool(s).is_ok())
}

/// Whether `a` is a boolean option (they all take an optional `BOOL`).
fn is_bool_option(a: &clap::Arg) -> bool {
    a.get_value_names()
        .is_some_and(|n| n.len() == 1 && n[0] == "BOOL")
}

/// The boolean options of `cmd` and its subcommands.
fn bool_options(cmd: &clap::Command, longs: &mut Vec<String>, shorts: &mut Vec<char>) {
    for a in cmd.get_arguments() {
        if is_bool_option(a) {
            longs.extend(a.get_long().map(|l| format!("--{l}")));
            shorts.extend(a.get_short());
        }
    }
    for sub in cmd.get_subcommands() {
        bool_options(sub, longs, shorts);
    }
}

/// Lets a boolean option be followed by a file name: clap would read the
/// word after `--flag` as its value, so `--flag x.npy` becomes
/// `--flag=true x.npy`, while `--flag false` stays as typed.
pub fn with_bool_values(
    cmd: &clap::Command,
    args: Vec<std::ffi::OsString>,
) -> Vec<std::ffi::OsString> {
    let (mut longs, mut shorts) = (Vec::new(), Vec::new());
    bool_options(cmd, &mut longs, &mut shorts);
    let mut out = Vec::with_capacity(args.len());
    let mut rest_positional = false;
    for (i, a) in args.iter().enumerate() {
        let text = a.to_str().unwrap_or("");
        if rest_positional || i == 0 {
            out.push(a.clone());
            continue;
        }
        if text == "--" {
            rest_positional = true;
            out.push(a.clone());
            continue;
        }
        let is_flag = longs.iter().any(|l| l == text)
            || (text.len() == 2
                && text.starts_with('-')
                && text[1..]
                    .chars()
                    .next()
                    .is_some_and(|c| shorts.contains(&c)));
        let value_follows = args.get(i + 1).is_some_and(|n| is_bool_word(n));
        if is_flag && !value_follows {
            out.push(format!("{text}=true").into());
        } else {
            out.push(a.clone());
        }
    }
    out
}

/// The command line as parsed: every option that takes a value also takes
/// a negative number (so `--batch-size -5` is told what is wrong with -5,
/// not to write `-- -5`, and `--cval -1` works).
pub fn with_negative_numbers(cmd: clap::Command) -> clap::Command {
    cmd.mut_args(|a| {
        if a.get_action().takes_values() && !is_bool_option(&a) && !a.is_allow_hyphen_values_set() {
            a.allow_negative_numbers(true)
        } else {
            a
        }
    })
    .mut_subcommands(with_negative_numbers)
}

/// Parses a whole number, saying so for a negative one (which clap would
/// otherwise take for an unknown flag).
pub fn whole<T>(s: &str) -> Result<T, String>
where
    T: std::str::FromStr,
{
    let t = s.trim();
    if t.starts_with('-') {
        return Err("must be 0 or more, not negative".to_string());
    }
    t.parse()
        .map_err(|_| "expected a whole number (e.g. 32)".to_string())
}

/// The most threads a `--threads` may ask for: each is a stack and a share
/// of the batch; thousands only slow the run down (and 100000 take minutes
/// just to start).
const MAX_THREADS: usize = 1024;

/// Parses `--threads`: 0 (one per core) up to [`MAX_THREADS`].
pub fn thread_count(s: &str) -> Result<usize, String> {
    let n: usize = whole(s)?;
    if n > MAX_THREADS {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        return Err(format!(
            "at most {MAX_THREADS} (this machine has {cores} cores; 0 uses one thread per core)"
        ));
    }
    Ok(n)
}

/// A seed for when none is given (printed, so the run can be repeated).
pub fn draw_seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// Parses a number, also as a fraction `A/B` (so `--rescale 1/255` works).
pub fn parse_number(s: &str) -> anyhow::Result<f64> {
    let s = s.trim();
    if let Some((a, b)) = s.split_once('/') {
        let (a, b): (f64, f64) = (a.trim().parse()?, b.trim().parse()?);
        if b == 0.0 {
            bail!("division by zero in {s:?}");
        }
        return Ok(a / b);
    }
    s.parse::<f64>()
        .with_context(|| format!("{s:?} is not a number"))
}

/// A comma-separated list of numbers.
fn parse_list(s: &str) -> anyhow::Result<Vec<f64>> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(parse_number)
        .collect()
}

/// Keras' shift range as JSON: an integer (pixels), a float, or a list.
fn shift_value(s: &str) -> anyhow::Result<Value> {
    let t = s.trim();
    if t.contains(',') {
        return Ok(json!(parse_list(t)?));
    }
    // The JSON type carries Keras' meaning: 3 is pixels, 3.0 a float range.
    if let Ok(i) = t.parse::<i64>() {
        return Ok(json!(i));
    }
    Ok(json!(parse_number(t)?))
}

impl GenArgs {
    /// The given flags as a Keras keyword dict.
    fn overrides(&self) -> anyhow::Result<Map<String, Value>> {
        let mut m = Map::new();
        let mut put = |k: &str, v: Value| {
            m.insert(k.to_string(), v);
        };
        let bools = [
            ("featurewise_center", self.featurewise_center),
            ("samplewise_center", self.samplewise_center),
            (
                "featurewise_std_normalization",
                self.featurewise_std_normalization,
            ),
            (
                "samplewise_std_normalization",
                self.samplewise_std_normalization,
            ),
            ("zca_whitening", self.zca_whitening),
            ("horizontal_flip", self.horizontal_flip),
            ("vertical_flip", self.vertical_flip),
        ];
        for (k, v) in bools {
            if let Some(v) = v {
                put(k, json!(v));
            }
        }
        let floats = [
            ("zca_epsilon", self.zca_epsilon),
            ("rotation_range", self.rotation_range),
            ("shear_range", self.shear_range),
            ("channel_shift_range", self.channel_shift_range),
            ("cval", self.cval),
            ("validation_split", self.validation_split),
        ];
        for (k, v) in floats {
            if let Some(v) = v {
                put(k, json!(v));
            }
        }
        for (k, v) in [
            ("width_shift_range", &self.width_shift_range),
            ("height_shift_range", &self.height_shift_range),
        ] {
            if let Some(s) = v {
                put(
                    k,
                    shift_value(s).with_context(|| format!("--{}", k.replace('_', "-")))?,
                );
            }
        }
        if let Some(s) = &self.brightness_range {
            put(
                "brightness_range",
                json!(parse_list(s).context("--brightness-range")?),
            );
        }
        if let Some(s) = &self.zoom_range {
            let v = parse_list(s).context("--zoom-range")?;
            put(
                "zoom_range",
                if v.len() == 1 && !s.contains(',') {
                    json!(v[0])
                } else {
                    json!(v)
                },
            );
        }
        if let Some(s) = &self.rescale {
            put("rescale", json!(parse_number(s).context("--rescale")?));
        }
        for (k, v) in [
            ("brightness_mode", &self.brightness_mode),
            ("fill_mode", &self.fill_mode),
            ("data_format", &self.data_format),
            ("dtype", &self.dtype),
        ] {
            if let Some(s) = v {
                put(k, json!(s));
            }
        }
        if let Some(o) = self.interpolation_order {
            put("interpolation_order", json!(o));
        }
        Ok(m)
    }

    /// The generator options: `--config` (if any), then the flags on top.
    pub fn options(&self) -> anyhow::Result<GeneratorOptions> {
        let base = match &self.config {
            Some(path) => GeneratorOptions::from_json_file(path)?,
            None => GeneratorOptions::default(),
        };
        let overrides = self.overrides()?;
        if overrides.is_empty() {
            return Ok(base);
        }
        let Value::Object(mut merged) = serde_json::to_value(&base)? else {
            bail!("generator options did not serialise to a JSON object");
        };
        merged.extend(overrides);
        Ok(GeneratorOptions::from_json(
            &Value::Object(merged).to_string(),
        )?)
    }

    /// What `--config` set and which of its keys the flags overrode, to be
    /// echoed (`None` without `--config`).
    pub fn config_echo(&self) -> anyhow::Result<Option<ConfigEcho>> {
        let Some(path) = &self.config else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
        let Value::Object(file) = serde_json::from_str::<Value>(&text)
            .with_context(|| format!("{}: not JSON", path.display()))?
        else {
            bail!(
                "{}: expected a JSON object of Keras keyword arguments",
                path.display()
            );
        };
        let flags = self.overrides()?;
        let mut echo = ConfigEcho {
            file: path.clone(),
            applied: Map::new(),
            overridden: Vec::new(),
        };
        for (key, value) in file {
            match flags.get(&key) {
                Some(flag) if *flag != value => echo.overridden.push((key, value, flag.clone())),
                _ => {
                    echo.applied.insert(key, value);
                }
            }
        }
        Ok(Some(echo))
    }

    /// The validated generator, with statistics attached when given.
    pub fn generator(&self, stats: Option<&Path>) -> anyhow::Result<ImageDataGenerator> {
        let mut generator = ImageDataGenerator::new(self.options()?)?;
        if let Some(path) = stats {
            generator = generator.with_statistics(Statistics::load(path)?);
        }
        Ok(generator)
    }
}

/// The options a `--config` file applied, for the user to see.
#[derive(Debug, Clone)]
pub struct ConfigEcho {
    /// The file.
    pub file: PathBuf,
    /// Its keys in effect, as written.
    pub applied: Map<String, Value>,
    /// `(key, the file's value, the flag's value)`: the flag wins.
    pub overridden: Vec<(String, Value, Value)>,
}

impl ConfigEcho {
    /// One line: `gen.json: rotation_range=20, ...; --zoom-range 0.2 overrides its zoom_range=[0.9,1.1]`.
    pub fn line(&self) -> String {
        let applied: Vec<String> = self
            .applied
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut line = format!(
            "{}: {}",
            self.file.display(),
            if applied.is_empty() {
                "nothing applied".to_string()
            } else {
                applied.join(", ")
            }
        );
        for (key, file, flag) in &self.overridden {
            line.push_str(&format!(
                "; --{} {flag} overrides its {key}={file}",
                key.replace('_', "-")
            ));
        }
        line
    }

    /// The same as JSON.
    pub fn json(&self) -> Value {
        json!({
            "file": self.file,
            "applied": self.applied,
            "overridden_by_flags": self.overridden.iter().map(|(k, file, flag)| {
                json!({"key": k, "file": file, "flag": flag})
            }).collect::<Vec<_>>(),
        })
    }
}

/// Parses `HxW` (`x` or `X`), or a single `N` for `NxN`.
pub fn parse_size(s: &str) -> anyhow::Result<(u32, u32)> {
    let parse = |t: &str| -> anyhow::Result<u32> {
        let v: u32 = t
            .trim()
            .parse()
            .with_context(|| format!("{t:?} is not a whole number of pixels"))?;
        if v == 0 {
            bail!("sizes must be positive");
        }
        Ok(v)
    };
    match s.split_once(['x', 'X']) {
        Some((h, w)) => Ok((parse(h)?, parse(w)?)),
        None => {
            let v = parse(s)?;
            Ok((v, v))
        }
    }
}

/// Parses a byte count: `1048576`, `512M`, `1.5G`, `64KiB`, `2GB` (binary units).
pub fn parse_bytes(s: &str) -> anyhow::Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .with_context(|| format!("{s:?} is not a byte count (e.g. 512M, 2G)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => bail!("unknown unit {other:?} in {s:?} (use K, M, G or T)"),
    };
    let v = n * mult as f64;
    if !v.is_finite() || v > u64::MAX as f64 {
        bail!("{s:?} is too large");
    }
    Ok(v as u64)
}

/// `--order` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OrderArg {
    /// File order.
    Sequential,
    /// A uniform permutation per epoch (Keras' shuffle=True).
    Shuffle,
    /// Page-aware block shuffle (contiguous blocks, shuffled within a window).
    Blocks,
}

/// Iterator options shared by `iterate` and `demo`.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Iterator options (Keras' NumpyArrayIterator and beyond)")]
pub struct IterArgs {
    /// Samples per batch.
    #[arg(long, default_value_t = 32, value_name = "N", value_parser = crate::opts::whole::<usize>)]
    pub batch_size: usize,
    /// Shuffle each epoch (Keras' flow default: true); --order overrides it.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = parse_bool, value_name = "BOOL")]
    pub shuffle: Option<bool>,
    /// Access order; `blocks` sizes its window from --cache-budget (a quarter of it, at most 64M; default budget 256M) or --block-rows.
    #[arg(long, value_enum)]
    pub order: Option<OrderArg>,
    /// Rows per block for --order blocks.
    #[arg(long, value_name = "N", value_parser = crate::opts::whole::<usize>)]
    pub block_rows: Option<usize>,
    /// Blocks shuffled together for --order blocks.
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = crate::opts::whole::<usize>)]
    pub window: usize,
    /// Seed of the permutation and the augmentation (drawn and printed when absent).
    #[arg(long, value_parser = crate::opts::whole::<u64>)]
    pub seed: Option<u64>,
    /// training or validation part of --validation-split.
    #[arg(long)]
    pub subset: Option<String>,
    /// Skip Keras' check that both subsets hold the same classes.
    #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true", hide_default_value = true, value_parser = crate::opts::parse_bool, value_name = "BOOL")]
    pub ignore_class_split: bool,
    /// Drop the last, shorter batch of each epoch.
    #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1, default_value = "false", default_missing_value = "true", hide_default_value = true, value_parser = crate::opts::parse_bool, value_name = "BOOL")]
    pub drop_last: bool,
    /// Only part I of N of every epoch, as I/N (distributed training).
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Threads assembling each batch (0 = all cores; one fewer when samples
    /// are only converted and the file is read past the page cache).
    #[arg(long, default_value_t = 0, value_name = "N", value_parser = crate::opts::thread_count)]
    pub threads: usize,
    /// Batches prepared ahead in the background (0 = none) [default: as
    /// many as fit in 32 MiB of buffers, 2 to 4 per thread; 2 per thread
    /// for a file read past the page cache]
    #[arg(long, value_name = "N", value_parser = crate::opts::whole::<usize>)]
    pub prefetch: Option<usize>,
    /// Keep at most this much of the files in the page cache (e.g. 512M).
    #[arg(long, value_parser = parse_bytes, value_name = "BYTES")]
    pub cache_budget: Option<u64>,
}

impl IterArgs {
    /// The access order for rows of `row_bytes`.
    pub fn order(&self, row_bytes: usize) -> Order {
        match self.order {
            Some(OrderArg::Sequential) => Order::Sequential,
            Some(OrderArg::Shuffle) => Order::Shuffle,
            Some(OrderArg::Blocks) => match self.block_rows {
                Some(block_rows) => Order::Blocks {
                    block_rows,
                    window: self.window,
                },
                // The active window plus the next one (read ahead whole) must
                // sit well inside the cache: windows of a quarter of the budget,
                // at most 64 MiB. Measured on 4 GiB under a 1 GiB cgroup with a
                // 256 MiB budget: 64 MiB windows read at 1315 MB/s, 128 MiB ones
                // at 1390 MB/s, 256 MiB ones at 1460 MB/s but with 800 MB of
                // the 1 GiB in cache, too close to the cap to be the default.
                None => Order::blocks_for_budget(
                    (self.cache_budget.unwrap_or(256 << 20) / 4).min(64 << 20),
                    row_bytes,
                    self.window,
                ),
            },
            None => Order::from_shuffle(self.shuffle.unwrap_or(true)),
        }
    }

    /// A builder over `x` with every option applied (generator excluded).
    pub fn builder(&self, x: NpyArray) -> anyhow::Result<npyflow::IteratorBuilder> {
        let order = self.order(x.row_bytes());
        let mut b = npyflow::NumpyArrayIterator::builder(x)
            .batch_size(self.batch_size)
            .order(order)
            .ignore_class_split(self.ignore_class_split)
            .drop_last(self.drop_last)
            .threads(self.threads);
        if let Some(depth) = self.prefetch {
            b = b.prefetch(depth);
        }
        if let Some(seed) = self.seed {
            b = b.seed(seed);
        }
        if let Some(s) = &self.subset {
            b = b.subset(s.parse()?);
        }
        if let Some(s) = &self.shard {
            let (i, n) = s.split_once('/').context("--shard expects I/N, e.g. 0/4")?;
            b = b.shard(
                i.trim().parse().context("--shard index")?,
                n.trim().parse().context("--shard count")?,
            );
        }
        if let Some(budget) = self.cache_budget {
            b = b.cache_budget(budget);
        }
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse() {
        assert_eq!(parse_size("32x48").unwrap(), (32, 48));
        assert_eq!(parse_size("64").unwrap(), (64, 64));
        assert!(parse_size("0x3").is_err() && parse_size("ax3").is_err());
        assert_eq!(parse_bytes("512M").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert!(parse_bytes("12 parsecs").is_err());
        assert!((parse_number("1/255").unwrap() - 1.0 / 255.0).abs() < 1e-15);
        assert_eq!(shift_value("3").unwrap(), json!(3));
        assert_eq!(shift_value("0.1").unwrap(), json!(0.1));
        assert_eq!(shift_value("-2,0,2").unwrap(), json!([-2.0, 0.0, 2.0]));
    }

    #[test]
    fn flags_override_config_keys() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("gen.json");
        std::fs::write(
            &cfg,
            r#"{"rotation_range": 20, "zoom_range": [0.9, 1.1], "horizontal_flip": true}"#,
        )
        .unwrap();
        let args = GenArgs {
            config: Some(cfg),
            rotation_range: Some(5.0),
            width_shift_range: Some("2".into()),
            ..Default::default()
        };
        let o = args.options().unwrap();
        assert_eq!(o.rotation_range, 5.0);
        assert!(o.horizontal_flip);
        assert_eq!(o.width_shift_range, npyflow::ShiftRange::Pixels(2));
        assert_eq!(o.zoom_range, npyflow::ZoomRange::Range([0.9, 1.1]));
    }
}
