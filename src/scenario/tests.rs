//! Fixture tests of the scenario format.

use super::*;

#[test]
fn scratch_print() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/scenarios");
    for sub in ["valid", "invalid"] {
        let mut entries: Vec<_> = std::fs::read_dir(format!("{dir}/{sub}"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            match load(&p) {
                Ok(s) => println!("OK {}: {:#?}", p.display(), s),
                Err(e) => println!("ERR {}:\n{e}", p.display()),
            }
        }
    }
}
