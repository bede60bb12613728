//! Hostile layers: every one must fail with `UnsafeLayerEntry` naming the entry, leave a
//! canary directory outside the root byte-identical, and leave no destination behind.
//! Runs as root (device nodes, chown), as on the project machines.
mod common;
use common::*;
use strata_core::error::Coded;

struct Case {
    name: &'static str,
    /// Builds the tar; gets the absolute path of the canary directory.
    build: fn(&str) -> Vec<u8>,
    /// The entry name the error must mention.
    entry: &'static str,
}

fn cases() -> Vec<Case> {
    vec![
        Case { name: "dotdot name", build: |_| Tar::new().file("../escape", b"x").finish(), entry: "../escape" },
        Case {
            name: "dotdot in the middle",
            build: |_| Tar::new().dir("a").file("a/../../canary/pwned", b"x").finish(),
            entry: "a/../../canary/pwned",
        },
        Case {
            name: "absolute name",
            build: |c| Tar::new().file(format!("{c}/pwned"), b"x").finish(),
            entry: "/canary/pwned",
        },
        Case { name: "empty name", build: |_| Tar::new().file("", b"x").finish(), entry: "" },
        Case {
            name: "absolute symlink parent",
            build: |c| Tar::new().symlink("l", c).file("l/pwned", b"x").finish(),
            entry: "l/pwned",
        },
        Case {
            name: "relative symlink parent escaping",
            build: |_| Tar::new().symlink("l", "../../canary").file("l/pwned", b"x").finish(),
            entry: "l/pwned",
        },
        Case {
            name: "symlink parent pointing inside is refused too",
            build: |_| Tar::new().dir("real").symlink("l", "real").file("l/x", b"x").finish(),
            entry: "l/x",
        },
        Case {
            name: "dir swapped for a symlink",
            build: |c| Tar::new().dir("d").file("d/ok", b"ok").symlink("d", c).file("d/pwned", b"x").finish(),
            entry: "d/pwned",
        },
        Case {
            name: "nested symlink to /",
            build: |_| Tar::new().dir("a").symlink("a/b", "/").file("a/b/tmp/pwned", b"x").finish(),
            entry: "a/b/tmp/pwned",
        },
        Case {
            name: "hardlink target with dotdot",
            build: |_| Tar::new().hardlink("h", "../canary/file").finish(),
            entry: "h",
        },
        Case {
            name: "hardlink to an absolute path",
            build: |c| {
                let target = format!("{c}/file");
                Tar::new().hardlink("h", target).finish()
            },
            entry: "h",
        },
        Case {
            name: "hardlink through a symlink",
            build: |c| Tar::new().symlink("l", c).hardlink("h", "l/file").finish(),
            entry: "h",
        },
        Case {
            name: "hardlink through a dir swapped for a symlink",
            build: |c| Tar::new().dir("d").file("d/file", b"x").symlink("d", c).hardlink("h", "d/file").finish(),
            entry: "h",
        },
        Case { name: "hardlink to a missing target", build: |_| Tar::new().hardlink("h", "nope").finish(), entry: "h" },
        Case {
            name: "hardlink to a directory",
            build: |_| Tar::new().dir("d").hardlink("h", "d").finish(),
            entry: "h",
        },
        Case {
            name: "whiteout through a symlink",
            build: |c| Tar::new().symlink("l", c).file("l/.wh.file", b"").finish(),
            entry: "l/.wh.file",
        },
        Case { name: "whiteout of ..", build: |_| Tar::new().file(".wh...", b"").finish(), entry: ".wh..." },
        Case { name: "whiteout of .", build: |_| Tar::new().file("d/.wh..", b"").finish(), entry: "d/.wh.." },
        Case { name: "whiteout of nothing", build: |_| Tar::new().file(".wh.", b"").finish(), entry: ".wh." },
        Case {
            name: "opaque marker under a symlink",
            build: |c| Tar::new().symlink("l", c).file("l/.wh..wh..opq", b"").finish(),
            entry: "l/.wh..wh..opq",
        },
        Case {
            name: "PAX path override with dotdot",
            build: |_| Tar::new().pax(&[(b"path", b"../canary/pwned")]).file("innocent", b"x").finish(),
            entry: "../canary/pwned",
        },
        Case {
            name: "PAX absolute path override",
            build: |c| {
                let p = format!("{c}/pwned");
                Tar::new().pax(&[(b"path", p.as_bytes())]).file("innocent", b"x").finish()
            },
            entry: "/canary/pwned",
        },
        Case {
            name: "PAX linkpath override with dotdot",
            build: |_| {
                Tar::new().file("ok", b"x").pax(&[(b"linkpath", b"../canary/file")]).hardlink("h", "ok").finish()
            },
            entry: "h",
        },
        Case {
            name: "PAX path with a NUL byte",
            build: |_| Tar::new().pax(&[(b"path", b"a\0/../../x")]).file("innocent", b"x").finish(),
            entry: "a",
        },
        Case {
            name: "GNU long name with dotdot",
            build: |_| {
                let mut t = Tar::new();
                t.gnu_longname(format!("{}/../../../canary/pwned", "a/".repeat(60)).as_bytes());
                t.file("short", b"x").finish()
            },
            entry: "/../../../canary/pwned",
        },
        Case {
            name: "file under a char device",
            build: |_| Tar::new().entry(H::new("c", b'3').dev(1, 3), b"").file("c/x", b"x").finish(),
            entry: "c/x",
        },
        Case {
            name: "whiteout under a fifo",
            build: |_| Tar::new().entry(H::new("f", b'6'), b"").file("f/.wh.x", b"").finish(),
            entry: "f/.wh.x",
        },
        Case {
            name: "device node through a symlink",
            build: |c| Tar::new().symlink("l", c).entry(H::new("l/null", b'3').dev(1, 3), b"").finish(),
            entry: "l/null",
        },
        Case {
            name: "root entry that is not a directory",
            build: |_| Tar::new().entry(H::new("./", b'0'), b"").finish(),
            entry: "./",
        },
        Case {
            name: "symlink with an empty target",
            build: |_| Tar::new().entry(H::new("l", b'2'), b"").finish(),
            entry: "l",
        },
    ]
}

/// Cases whose tar names a path twice (a directory swapped for a symlink).
const NAME_A_PATH_TWICE: &[&str] = &["dir swapped for a symlink", "hardlink through a dir swapped for a symlink"];

#[test]
fn hostile_layers_are_refused_and_nothing_leaks() {
    let cases = cases();
    assert!(cases.len() >= 20);
    // Both extraction paths: one thread (layers), and small files on worker threads (commit).
    for (case, workers) in cases.iter().flat_map(|c| [(c, false), (c, true)]) {
        let s = Scratch::new();
        let canary = s.path().join("canary");
        std::fs::create_dir(&canary).unwrap();
        std::fs::write(canary.join("file"), b"canary data").unwrap();
        std::fs::create_dir(canary.join("sub")).unwrap();
        std::fs::write(canary.join("sub/inner"), b"inner").unwrap();
        let before = snapshot(&canary);
        let before_root = snapshot(s.path()).len();
        let tar = (case.build)(canary.to_str().unwrap());
        let applied = if workers { s.apply_stream(&tar).map(|_| ()) } else { s.apply(&tar).map(|_| ()) };
        let err = match applied {
            Ok(()) => panic!("{} (workers: {workers}): hostile layer was accepted", case.name),
            Err(e) => e,
        };
        if !workers && NAME_A_PATH_TWICE.contains(&case.name) {
            // As an image layer, the swap is refused at the repeated name, as Docker refuses it
            // (the archive path, with workers, meets the symlink itself).
            assert_eq!(err.code(), "UnsupportedArchive", "{}: {err}", case.name);
            assert!(err.to_string().contains("duplicates of file paths"), "{}: {err}", case.name);
        } else {
            assert_eq!(err.code(), "UnsafeLayerEntry", "{} (workers: {workers}): {err}", case.name);
            let named = err.path().unwrap_or_default();
            assert!(named.contains(case.entry), "{}: error names {named:?}, expected {:?}", case.name, case.entry);
        }
        assert_eq!(snapshot(&canary), before, "{}: canary changed", case.name);
        assert!(!s.dest().exists(), "{}: dest left behind", case.name);
        assert!(!s.tar_split().exists(), "{}: tar-split left behind", case.name);
        // Nothing new anywhere in the scratch area except the blob file apply() reads.
        let blob_file = usize::from(!workers);
        assert_eq!(
            snapshot(s.path()).len(),
            before_root + blob_file,
            "{} (workers: {workers}): stray files",
            case.name
        );
        assert!(!std::path::Path::new("/tmp/pwned").exists());
    }
}
