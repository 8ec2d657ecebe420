#!/bin/sh
# Seeds fuzz/corpus/<target>/ from the committed numpy fixtures and a few
# generator configs, plus the committed regression inputs. The corpus is
# not committed (see .gitignore); run this before `cargo fuzz run`.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
fixtures="$here/../tests/fixtures"
corpus="$here/corpus"
mkdir -p "$corpus/header" "$corpus/open_npy" "$corpus/open_npz" "$corpus/config_json"

for f in "$fixtures"/npy/*.npy "$fixtures"/convert/*.npy "$fixtures"/transform/*.npy; do
    [ -f "$f" ] || continue
    name=$(basename "$f")
    # Headers are what the header target is about: the first 256 bytes are enough.
    head -c 256 "$f" > "$corpus/header/$name"
    # Whole files for open_npy, but only small ones (the fuzzer's max_len is 64 KiB).
    if [ "$(wc -c < "$f")" -le 65536 ]; then
        cp "$f" "$corpus/open_npy/$name"
    fi
done
for f in "$fixtures"/npy/*.npz "$fixtures"/convert/*.npz "$fixtures"/standardize/*.npz; do
    [ -f "$f" ] || continue
    if [ "$(wc -c < "$f")" -le 65536 ]; then
        cp "$f" "$corpus/open_npz/$(basename "$f")"
    fi
done

# A few more archives shaped like training data, when numpy is at hand.
if command -v python3 >/dev/null 2>&1 && python3 -c 'import numpy' 2>/dev/null; then
    python3 - "$corpus/open_npz" <<'PY'
import sys, numpy as np
out = sys.argv[1]
x = (np.arange(4 * 3 * 2 * 1) % 251).astype(np.uint8).reshape(4, 3, 2, 1)
np.savez(f"{out}/images.npz", x=x, y=np.arange(4, dtype=np.int64))
np.savez(f"{out}/mixed.npz", a=x.astype(">f4"), b=np.zeros((2, 2, 2, 3), "<f2"), c=np.array(3.0))
np.savez(f"{out}/empty.npz", x=np.zeros((0, 2, 2, 1), np.uint8), s=np.zeros((), np.bool_))
np.savez_compressed(f"{out}/both.npz", x=x)
PY
fi

i=0
for json in \
    '{}' \
    '{"rotation_range": 20, "width_shift_range": 0.1, "height_shift_range": 0.1, "horizontal_flip": true}' \
    '{"zoom_range": [0.8, 1.2], "shear_range": 10, "fill_mode": "reflect", "cval": 3.5}' \
    '{"width_shift_range": [-2, 0, 2], "height_shift_range": 3, "fill_mode": "wrap", "interpolation_order": 3}' \
    '{"brightness_range": [0.5, 1.5], "channel_shift_range": 20.0, "brightness_mode": "multiplicative"}' \
    '{"featurewise_center": true, "zca_whitening": true, "zca_epsilon": 1e-6, "validation_split": 0.2}' \
    '{"samplewise_center": true, "samplewise_std_normalization": true, "rescale": 0.00392156862745098}' \
    '{"data_format": "channels_first", "dtype": "float64", "vertical_flip": true, "preprocessing_function": null}' \
    '{"fill_mode": "grid-mirror", "interpolation_order": 5, "zoom_range": 0.3, "rotation_range": 359}' \
    '{"fill_mode": "constant", "cval": -1e30, "rescale": null, "brightness_range": [1e-9, 1e9]}'
do
    printf '%s' "$json" > "$corpus/config_json/seed$i.json"
    i=$((i + 1))
done
for f in "$fixtures"/*/manifest.json; do
    [ -f "$f" ] && head -c 65536 "$f" > "$corpus/config_json/manifest_$(basename "$(dirname "$f")").json"
done

# Past crashes stay in every run's corpus.
for t in header open_npy open_npz config_json; do
    if [ -d "$here/regressions/$t" ]; then
        cp "$here/regressions/$t"/* "$corpus/$t/" 2>/dev/null || true
    fi
done
for t in header open_npy open_npz config_json; do
    echo "$t: $(ls "$corpus/$t" | wc -l) seeds"
done
