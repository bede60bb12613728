//! Times `seal_layer` over a layer dir: `seal_bench DIR [ROUNDS [KEEP]]` (the tar-split goes to a temp file).
use std::sync::atomic::AtomicBool;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("usage: seal_bench DIR [ROUNDS]"));
    let rounds: usize = args.next().map_or(15, |s| s.parse().expect("rounds"));
    let tmp = std::env::temp_dir().join(format!("seal-bench-{}", std::process::id()));
    let cpu = || {
        // SAFETY: getrusage fills the struct it is given.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
        (u.ru_utime.tv_sec as f64 + u.ru_stime.tv_sec as f64) * 1e3
            + (u.ru_utime.tv_usec as f64 + u.ru_stime.tv_usec as f64) / 1e3
    };
    let mut times = Vec::new();
    let mut cpus = Vec::new();
    let mut last = None;
    for _ in 0..rounds {
        let _ = std::fs::remove_file(&tmp);
        let t = Instant::now();
        let c = cpu();
        let s = strata_core::egress::build_commit::seal_layer(&dir, &tmp, &AtomicBool::new(false)).expect("seal");
        times.push(t.elapsed().as_secs_f64() * 1e3);
        cpus.push(cpu() - c);
        last = Some(s);
    }
    let ts_len = std::fs::metadata(&tmp).map(|m| m.len()).unwrap_or(0);
    // A third argument keeps the last tar-split there (to compare outputs).
    match args.next() {
        Some(keep) => std::fs::rename(&tmp, keep).expect("keep the tar-split"),
        None => {
            let _ = std::fs::remove_file(&tmp);
        }
    }
    times.sort_by(f64::total_cmp);
    cpus.sort_by(f64::total_cmp);
    let s = last.expect("one round");
    if std::env::var_os("FLOOR").is_some() {
        let mut floors: Vec<f64> = (0..rounds).map(|_| hash_floor((s.tar_size >> 20) as usize)).collect();
        floors.sort_by(f64::total_cmp);
        println!("sha256 alone over as many bytes: min {:.2} median {:.2} ms", floors[0], floors[floors.len() / 2]);
    }
    println!(
        "{} tar {} B, {} entries, tar-split {} B: min {:.2} ms, median {:.2} ms, max {:.2} ms; cpu min {:.1} median {:.1} ms",
        s.diff_id, s.tar_size, s.entries, ts_len, times[0], times[times.len() / 2], times[times.len() - 1],
        cpus[0],
        cpus[cpus.len() / 2]
    );
}

fn hash_floor(n: usize) -> f64 {
    let buf = vec![7u8; 1 << 20];
    let t = Instant::now();
    let mut h = strata_core::digest::Hasher::new();
    for _ in 0..n {
        h.update(&buf);
    }
    std::hint::black_box(h.finish());
    t.elapsed().as_secs_f64() * 1e3
}
