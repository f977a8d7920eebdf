// Matrix products with 16-bit weights for token-by-token sampling, where every step streams all
// weights from memory for a handful of rows: storing them as Float16 halves the bytes read, and
// the 8.4 M-parameter benchmark prior then fits in the 32 MiB last-level cache.
//
// Shapes: x (M, K) Float32 rows; W (K, N) stored as Float16 in panels of 16 columns (panel p
// holds W[0..<K, 16p..<16p+16] contiguously, zero-padded past N); y (M, N) Float32.
//
// The kernel walks one panel down K: each step widens 16 weights to Float32 (F16C) and adds
// x[m, k] · w to one 16-wide accumulator per row (FMA); the panel is read from memory once and
// stays in L1 for the next group of rows. Compiled with AVX2/FMA/F16C (see Package.swift):
// call only when `jukebox_cpu_has_avx2_fma_f16c()` says the CPU has them.

/// A (K × N) weight matrix in Float16 panels of 16 columns.
public final class HalfPanels {
    /// Panel width in columns.
    public static let width = 16
    public let rows: Int
    public let columns: Int
    public let panelCount: Int
    /// `panelCount × rows × 16` values.
    let data: UnsafeMutablePointer<Float16>

    /// Converts `source` (row-major with leading dimension `ld`; element (k, n) at
    /// `source[k·ld + n]`, or at `source[n·ld + k]` when `transposed`) to panels, rounding to
    /// the nearest Float16.
    public init(_ source: UnsafePointer<Float>, rows: Int, columns: Int, leadingDimension ld: Int, transposed: Bool = false) {
        self.rows = rows
        self.columns = columns
        panelCount = (columns + HalfPanels.width - 1) / HalfPanels.width
        let count = panelCount * rows * HalfPanels.width
        data = .allocate(capacity: count)
        data.initialize(repeating: 0, count: count)
        for p in 0..<panelCount {
            for k in 0..<rows {
                let dst = data + (p * rows + k) * HalfPanels.width
                for j in 0..<HalfPanels.width {
                    let n = p * HalfPanels.width + j
                    guard n < columns else { break }
                    dst[j] = Float16(transposed ? source[n * ld + k] : source[k * ld + n])
                }
            }
        }
    }

    deinit { data.deallocate() }

    /// Bytes of weights read by one product.
    public var byteCount: Int { panelCount * rows * HalfPanels.width * 2 }

    /// `y[m, n] = (accumulate ? y[m, n] : bias[n] or 0) + Σₖ x[m, k] · W[k, n]` for the columns
    /// of `panels` and rows 0..<M. `x` has leading dimension `ldx`, `y` has `ldy`.
    public func multiply(_ x: UnsafePointer<Float>, ldx: Int, rows M: Int, bias: UnsafePointer<Float>?, accumulate: Bool,
                         into y: UnsafeMutablePointer<Float>, ldy: Int, panels: Range<Int>) {
        for p in panels {
            let panel = data + p * rows * HalfPanels.width
            let n0 = p * HalfPanels.width
            let valid = Swift.min(HalfPanels.width, columns - n0)
            var m = 0
            while m < M {
                let group = Swift.min(4, M - m)
                var acc = (SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>())
                let xr = x + m * ldx
                switch group {
                case 4: panelDot4(panel, xr, ldx, &acc)
                case 3: panelDot3(panel, xr, ldx, &acc)
                case 2: panelDot2(panel, xr, ldx, &acc)
                default: panelDot1(panel, xr, &acc.0)
                }
                for g in 0..<group {
                    let a: SIMD16<Float> = g == 0 ? acc.0 : g == 1 ? acc.1 : g == 2 ? acc.2 : acc.3
                    let yr = y + (m + g) * ldy + n0
                    for j in 0..<valid {
                        let start: Float = accumulate ? yr[j] : (bias?[n0 + j] ?? 0)
                        yr[j] = start + a[j]
                    }
                }
                m += group
            }
        }
    }

    @inline(__always)
    private func widen(_ p: UnsafePointer<Float16>) -> SIMD16<Float> {
        SIMD16<Float>(UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float16>.self))
    }

    private func panelDot1(_ panel: UnsafePointer<Float16>, _ x: UnsafePointer<Float>, _ a0: inout SIMD16<Float>) {
        var s0 = SIMD16<Float>(), s1 = SIMD16<Float>()
        var k = 0
        // Two accumulators hide the FMA latency.
        while k + 1 < rows {
            s0 = s0.addingProduct(SIMD16(repeating: x[k]), widen(panel + k * 16))
            s1 = s1.addingProduct(SIMD16(repeating: x[k + 1]), widen(panel + (k + 1) * 16))
            k += 2
        }
        if k < rows { s0 = s0.addingProduct(SIMD16(repeating: x[k]), widen(panel + k * 16)) }
        a0 = s0 + s1
    }

    private func panelDot2(_ panel: UnsafePointer<Float16>, _ x: UnsafePointer<Float>, _ ld: Int,
                           _ a: inout (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>)) {
        var s0 = SIMD16<Float>(), s1 = SIMD16<Float>()
        for k in 0..<rows {
            let w = widen(panel + k * 16)
            s0 = s0.addingProduct(SIMD16(repeating: x[k]), w)
            s1 = s1.addingProduct(SIMD16(repeating: x[ld + k]), w)
        }
        a.0 = s0
        a.1 = s1
    }

    private func panelDot3(_ panel: UnsafePointer<Float16>, _ x: UnsafePointer<Float>, _ ld: Int,
                           _ a: inout (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>)) {
        var s0 = SIMD16<Float>(), s1 = SIMD16<Float>(), s2 = SIMD16<Float>()
        for k in 0..<rows {
            let w = widen(panel + k * 16)
            s0 = s0.addingProduct(SIMD16(repeating: x[k]), w)
            s1 = s1.addingProduct(SIMD16(repeating: x[ld + k]), w)
            s2 = s2.addingProduct(SIMD16(repeating: x[2 * ld + k]), w)
        }
        a.0 = s0
        a.1 = s1
        a.2 = s2
    }

    private func panelDot4(_ panel: UnsafePointer<Float16>, _ x: UnsafePointer<Float>, _ ld: Int,
                           _ a: inout (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>)) {
        var s0 = SIMD16<Float>(), s1 = SIMD16<Float>(), s2 = SIMD16<Float>(), s3 = SIMD16<Float>()
        for k in 0..<rows {
            let w = widen(panel + k * 16)
            s0 = s0.addingProduct(SIMD16(repeating: x[k]), w)
            s1 = s1.addingProduct(SIMD16(repeating: x[ld + k]), w)
            s2 = s2.addingProduct(SIMD16(repeating: x[2 * ld + k]), w)
            s3 = s3.addingProduct(SIMD16(repeating: x[3 * ld + k]), w)
        }
        a = (s0, s1, s2, s3)
    }
}
