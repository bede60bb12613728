//! Overlay mounts against the real kernel. Needs root and overlayfs (kernel ≥ 6.8 for
//! `lowerdir+`); on strata's machines both are present, so these tests run, never skip.
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use strata_core::error::Coded;
use strata_core::kernel::mount::{self, ApiChoice, MountApi, MountPlan};
use strata_core::kernel::mountinfo;

/// Unmounts on drop so a failing assertion does not leave mounts behind.
struct Mounted(PathBuf);
impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = mount::unmount(&self.0, true);
    }
}

fn layer(root: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let d = root.join(name);
    fs::create_dir_all(&d).unwrap();
    for (p, content) in files {
        let f = d.join(p);
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(f, content).unwrap();
    }
    d
}

fn three_layer_overlay(api: ApiChoice) {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    let l0 = layer(root, "l0", &[("bottom.txt", "l0"), ("shared.txt", "from l0"), ("dir/a", "a0"), ("gone.txt", "x")]);
    let l1 = layer(root, "l1", &[("middle.txt", "l1"), ("shared.txt", "from l1"), ("dir/b", "b1")]);
    let l2 = layer(root, "l2", &[("top.txt", "l2"), ("dir/c", "c2")]);
    let upper = layer(root, "upper", &[]);
    let work = layer(root, "work", &[]);
    let merged = layer(root, "merged", &[]);
    let mut plan = MountPlan::container(vec![l2, l1, l0], upper.clone(), work, merged.clone());
    plan.options.extend(["nosuid".to_string(), "nodev".to_string()]);

    let used = mount::mount_overlay_with(&plan, api).unwrap();
    let _guard = Mounted(merged.clone());
    assert_eq!(used, if api == ApiChoice::Legacy { MountApi::Legacy } else { MountApi::New });
    assert!(mountinfo::is_mount_point(&merged).unwrap());

    // Merged view: union of all layers, higher layers win.
    assert_eq!(fs::read_to_string(merged.join("bottom.txt")).unwrap(), "l0");
    assert_eq!(fs::read_to_string(merged.join("middle.txt")).unwrap(), "l1");
    assert_eq!(fs::read_to_string(merged.join("top.txt")).unwrap(), "l2");
    assert_eq!(fs::read_to_string(merged.join("shared.txt")).unwrap(), "from l1");
    let mut names: Vec<_> = fs::read_dir(merged.join("dir")).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, ["a", "b", "c"]);

    // mountinfo sees it, with our layers and mount flags.
    let ov = mountinfo::overlay_at(&merged).unwrap().expect("overlay at merged");
    assert_eq!(ov.lowerdirs, plan.lowerdirs);
    assert_eq!(ov.upperdir.as_deref(), Some(upper.as_path()));
    let found = mountinfo::overlay_mounts_under(root).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].mount_point, merged);
    let line = mountinfo::read().unwrap().into_iter().find(|m| m.mount_point == merged).unwrap();
    assert!(line.mount_options.contains("nosuid") && line.mount_options.contains("nodev"), "{}", line.mount_options);

    // Writes: copy-up of a lower file, a new file, a deletion (whiteout).
    fs::write(merged.join("shared.txt"), "written").unwrap();
    fs::write(merged.join("new.txt"), "new").unwrap();
    fs::remove_file(merged.join("gone.txt")).unwrap();
    assert_eq!(fs::read_to_string(upper.join("shared.txt")).unwrap(), "written");
    assert_eq!(fs::read_to_string(upper.join("new.txt")).unwrap(), "new");
    let wh = fs::symlink_metadata(upper.join("gone.txt")).unwrap();
    assert!(wh.file_type().is_char_device(), "whiteout is a char device");
    assert_eq!(wh.rdev(), 0, "whiteout is 0/0");
    assert!(!merged.join("gone.txt").exists());
    assert_eq!(fs::read_to_string(root.join("l1/shared.txt")).unwrap(), "from l1", "lower untouched");

    assert!(mount::unmount(&merged, false).unwrap());
    assert!(!mountinfo::is_mount_point(&merged).unwrap());
    assert!(!mount::unmount(&merged, false).unwrap(), "second unmount reports not mounted");
    assert!(!mount::unmount(&root.join("missing"), true).unwrap());
}

#[test]
fn three_layers_new_api() {
    three_layer_overlay(ApiChoice::Auto);
}

#[test]
fn three_layers_legacy_api() {
    three_layer_overlay(ApiChoice::Legacy);
}

fn many_layers(n: usize) -> (tempfile::TempDir, MountPlan) {
    let t = tempfile::tempdir().unwrap();
    let mut lowers = Vec::new();
    for i in (0..n).rev() {
        // Long-ish names so that the classic option string would be far beyond a page.
        let d =
            layer(t.path(), &format!("layer-{i:04}-{}", "x".repeat(40)), &[(&format!("f{i}"), &format!("layer {i}"))]);
        lowers.push(d);
    }
    let merged = layer(t.path(), "merged", &[]);
    (t, MountPlan::readonly(lowers, merged))
}

fn mount_many(n: usize) {
    let (_t, plan) = many_layers(n);
    let started = std::time::Instant::now();
    assert_eq!(mount::mount_overlay_with(&plan, ApiChoice::New).unwrap(), MountApi::New);
    let took = started.elapsed();
    let _g = Mounted(plan.target.clone());
    assert_eq!(fs::read_to_string(plan.target.join(format!("f{}", n - 1))).unwrap(), format!("layer {}", n - 1));
    assert_eq!(fs::read_to_string(plan.target.join("f0")).unwrap(), "layer 0");
    assert_eq!(fs::read_dir(&plan.target).unwrap().count(), n);
    assert_eq!(mountinfo::overlay_at(&plan.target).unwrap().unwrap().lowerdirs.len(), n);
    eprintln!("mounted {n} layers with lowerdir+ in {took:?}");
    assert!(mount::unmount(&plan.target, false).unwrap());
}

#[test]
fn two_hundred_layers() {
    mount_many(200);
}

#[test]
fn five_hundred_layers() {
    mount_many(500);
}

#[test]
fn five_hundred_one_layers_is_a_typed_error() {
    let (_t, plan) = many_layers(501);
    let e = mount::mount_overlay(&plan).unwrap_err();
    assert_eq!(e.code(), "TooManyLayers");
    assert!(!mountinfo::is_mount_point(&plan.target).unwrap());
}

#[test]
fn kernel_error_text_is_reported() {
    let t = tempfile::tempdir().unwrap();
    let merged = layer(t.path(), "m", &[]);
    let plan = MountPlan::readonly(vec![t.path().join("does-not-exist")], merged);
    let e = mount::mount_overlay(&plan).unwrap_err();
    assert_eq!(e.code(), "MountFailed");
    assert_eq!(e.errno(), Some(libc::ENOENT));
    let msg = e.to_string();
    assert!(msg.contains("lowerdir+") && msg.contains("does-not-exist"), "{msg}");
    eprintln!("kernel says: {e}");
    // An option overlayfs does not know: its reason comes back through the fs context.
    let l = layer(t.path(), "l", &[("f", "x")]);
    let mut plan = MountPlan::readonly(vec![l], t.path().join("m"));
    plan.options.push("no_such_option=1".into());
    let e = mount::mount_overlay(&plan).unwrap_err();
    assert_eq!(e.code(), "MountFailed");
    assert_eq!(e.errno(), Some(libc::EINVAL));
    eprintln!("kernel says: {e}");
    match &e {
        mount::MountError::MountFailed { kernel_message: Some(m), .. } => {
            assert!(m.contains("Unknown parameter 'no_such_option'"), "{m}")
        }
        other => panic!("no kernel message: {other:?}"),
    }
}

#[test]
fn legacy_long_option_string_goes_relative() {
    // 70 layers × ~75-byte absolute paths ≈ 4.5 KB: over a page absolute, under it relative.
    let (_t, plan) = many_layers(70);
    let abs = mount::legacy_data(&plan, None).unwrap();
    assert!(abs.len() > mount::LEGACY_DATA_MAX, "{}", abs.len());
    assert_eq!(mount::mount_overlay_with(&plan, ApiChoice::Legacy).unwrap(), MountApi::Legacy);
    let _g = Mounted(plan.target.clone());
    assert_eq!(fs::read_to_string(plan.target.join("f0")).unwrap(), "layer 0");
    assert_eq!(fs::read_to_string(plan.target.join("f69")).unwrap(), "layer 69");
    // The process cwd is untouched by the private-cwd mount thread.
    assert_eq!(std::env::current_dir().unwrap(), PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    assert!(mount::unmount(&plan.target, false).unwrap());

    let (_t, plan) = many_layers(150);
    assert_eq!(mount::mount_overlay_with(&plan, ApiChoice::Legacy).unwrap_err().code(), "MountOptionsTooLong");
}

#[test]
fn mountinfo_round_trips_awkward_paths() {
    // Space, tab, comma, colon, backslash and non-UTF-8 bytes in layer and mount paths: the
    // new API passes them verbatim, mountinfo shows them escaped, the parser restores them.
    use std::os::unix::ffi::OsStrExt;
    let t = tempfile::tempdir().unwrap();
    let odd = std::ffi::OsStr::from_bytes(b"odd \t,:\\\xff");
    let base = t.path().join(odd);
    let l0 = layer(&base, "low 0", &[("a", "0")]);
    let l1 = layer(&base, "low,1:x", &[("b", "1")]);
    let up = layer(&base, "up per", &[]);
    let work = layer(&base, "wo:rk", &[]);
    let m = layer(&base, "mer ged", &[]);
    let plan = MountPlan::container(vec![l1.clone(), l0.clone()], up.clone(), work.clone(), m.clone());
    assert_eq!(mount::mount_overlay(&plan).unwrap(), MountApi::New);
    let _g = Mounted(m.clone());
    assert!(mountinfo::is_mount_point(&m).unwrap());
    let found = mountinfo::overlay_mounts_under(t.path()).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].mount_point, m);
    assert_eq!(found[0].lowerdirs, vec![l1, l0]);
    assert_eq!(found[0].upperdir.as_deref(), Some(up.as_path()));
    assert_eq!(found[0].workdir.as_deref(), Some(work.as_path()));
    assert_eq!(fs::read_to_string(m.join("a")).unwrap(), "0");
    assert!(mount::unmount(&m, true).unwrap());
    assert!(mountinfo::overlay_mounts_under(t.path()).unwrap().is_empty());
}
