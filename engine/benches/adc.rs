//! ADC kernels: GB/s of SQ8 codes scanned, AVX2 (and AVX-512 for the factored form) against the scalar fallback, for the
//! table-lookup form and the factored form, and binary sketch codes per second. Run: `cargo bench -p drift-engine --bench adc`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use drift_engine::kernels::{
    adc_scan_with, nibble_pack, nibble_scan_with, nibble_tables, sq8_dot_scan_with,
    sq8_weights_i16, KernelKind,
};
use rand::{Rng, SeedableRng};

/// A benchmark group with this file's timing.
fn group<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.measurement_time(std::time::Duration::from_secs(3));
    g.warm_up_time(std::time::Duration::from_secs(1));
    g
}

fn bench(c: &mut Criterion) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let rows = 4096;
    let mut g = group(c, "adc_scan");
    for dim in [64usize, 128, 384] {
        let codes: Vec<u8> = (0..rows * dim).map(|_| rng.gen()).collect();
        let lut: Vec<f32> = (0..dim * 256).map(|_| rng.gen_range(0.0..10.0)).collect();
        let w: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let mut w16 = Vec::new();
        let scale = sq8_weights_i16(&w, &mut w16);
        let mut out = vec![0f32; rows];
        g.throughput(Throughput::Bytes((rows * dim) as u64));
        for (name, kind) in [("avx2", KernelKind::Avx2), ("scalar", KernelKind::Scalar)] {
            g.bench_with_input(
                BenchmarkId::new(format!("lut/{name}"), dim),
                &dim,
                |b, &dim| b.iter(|| adc_scan_with(kind, &lut, &codes, dim, &mut out)),
            );
            g.bench_with_input(
                BenchmarkId::new(format!("factored/{name}"), dim),
                &dim,
                |b, &dim| b.iter(|| sq8_dot_scan_with(kind, &w16, scale, &codes, dim, &mut out)),
            );
        }
        // The AVX-512 (VNNI) SQ8 scan, where the CPU has it (else this repeats AVX2).
        g.bench_with_input(BenchmarkId::new("factored/avx512", dim), &dim, |b, &dim| {
            b.iter(|| sq8_dot_scan_with(KernelKind::Avx512, &w16, scale, &codes, dim, &mut out))
        });
    }
    g.finish();

    // Binary sketch scan: 512-bit codes (a 384-d vector after padding), a 4-bit query
    // through per-nibble tables.
    let mut g = group(c, "nibble_scan");
    for words in [2usize, 8] {
        let codes: Vec<u64> = (0..rows * words).map(|_| rng.gen()).collect();
        let levels: Vec<u8> = (0..words * 64).map(|_| rng.gen_range(0..16)).collect();
        let (mut tables, mut packed) = (Vec::new(), Vec::new());
        nibble_tables(&levels, &mut tables);
        nibble_pack(&codes, words, &mut packed);
        let mut out = vec![0u32; rows];
        g.throughput(Throughput::Elements(rows as u64));
        for (name, kind) in [("avx2", KernelKind::Avx2), ("scalar", KernelKind::Scalar)] {
            g.bench_with_input(BenchmarkId::new(name, words * 64), &words, |b, &words| {
                b.iter(|| nibble_scan_with(kind, &tables, &packed, words * 16, &mut out))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
