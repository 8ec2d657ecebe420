//! Arbitrary bytes as a `.npz` archive: opened with both sources (same
//! outcome required), members listed, each member opened and exercised as
//! `open_npy` does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use npyflow::npy::{NpzArchive, OpenOptions, SourceKind};

fuzz_target!(|data: &[u8]| {
    let path = npyflow_fuzz::write_input("input.npz", data);
    let open = |source| {
        NpzArchive::open_with(
            &path,
            OpenOptions {
                source,
                ..Default::default()
            },
        )
    };
    let (m, r) = (open(SourceKind::Mmap), open(SourceKind::Read));
    npyflow_fuzz::same_outcome("npz open", &m, &r);
    let (Ok(m), Ok(r)) = (m, r) else { return };
    assert_eq!(m.members(), r.members());
    for (name, member) in m.names().iter().zip(m.members()) {
        let (a, b) = (m.array(name), r.array(name));
        npyflow_fuzz::same_outcome(&format!("member {name:?}"), &a, &b);
        // Members are also found by their full name.
        let _ = m.array(&member.name);
        if let (Ok(a), Ok(b)) = (a, b) {
            npyflow_fuzz::exercise_pair(&a, &b);
        }
    }
    assert!(m.array("\u{0}no such member").is_err());
});
