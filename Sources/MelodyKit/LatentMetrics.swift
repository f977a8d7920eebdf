// Distances between sets of latent vectors, as the reference's `utils/metrics.py` defines them
// (Mittal et al. 2021, Table 3): the Fréchet distance of the Gaussians fitted to both sets, and
// the maximum mean discrepancy with an RBF kernel exp(−γ‖x − y‖²) (γ = 1) and with a
// polynomial kernel (γ x·y + c₀)^degree (degree 2, γ = 1, c₀ = 0). Lower is closer.
//
// As the reference computes them: covariances with N − 1, and the MMD's three kernel means
// taken over every pair, the diagonal included (sklearn's pairwise kernels, then `.mean()`).
// The matrix square root is exact for symmetric positive semi-definite matrices: with
// A = Σ₁^½, Tr((Σ₁Σ₂)^½) = Tr((A Σ₂ A)^½), and both roots come from symmetric
// eigendecompositions (cyclic Jacobi, in Double).

import Foundation
import TensorCore
import MIDI

/// A set of `count` latent vectors of `dims` values each, row after row.
public struct LatentSet {
    public let values: [Float]
    public let dims: Int

    public init(values: [Float], dims: Int) {
        precondition(dims >= 1 && values.count % dims == 0, "LatentSet: \(values.count) values are not rows of \(dims)")
        self.values = values
        self.dims = dims
    }

    public var count: Int { values.count / dims }

    /// Mean and covariance (divided by N − 1), in Double.
    func moments() -> (mean: [Double], covariance: [Double]) {
        let (n, d) = (count, dims)
        var mean = [Double](repeating: 0, count: d)
        for r in 0..<n { for j in 0..<d { mean[j] += Double(values[r * d + j]) } }
        for j in 0..<d { mean[j] /= Double(n) }
        var covariance = [Double](repeating: 0, count: d * d)
        var centred = [Double](repeating: 0, count: d)
        for r in 0..<n {
            for j in 0..<d { centred[j] = Double(values[r * d + j]) - mean[j] }
            for i in 0..<d {
                let ci = centred[i]
                for j in i..<d { covariance[i * d + j] += ci * centred[j] }
            }
        }
        let scale = 1 / Double(Swift.max(n - 1, 1))
        for i in 0..<d {
            for j in i..<d {
                covariance[i * d + j] *= scale
                covariance[j * d + i] = covariance[i * d + j]
            }
        }
        return (mean, covariance)
    }
}

public enum LatentDistance {
    /// ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^½).
    public static func frechet(_ a: LatentSet, _ b: LatentSet) -> Double {
        precondition(a.dims == b.dims, "frechet: \(a.dims) and \(b.dims) dimensions")
        let d = a.dims
        let (m1, s1) = a.moments(), (m2, s2) = b.moments()
        var distance = zip(m1, m2).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
        for i in 0..<d { distance += s1[i * d + i] + s2[i * d + i] }
        let root = symmetricSquareRoot(s1, d)
        let product = multiply(multiply(root, s2, d), root, d)
        let traceOfRoot = symmetricEigenvalues(product, d).reduce(0) { $0 + Swift.max($1, 0).squareRoot() }
        return distance - 2 * traceOfRoot
    }

    /// Mean k(x, x') + mean k(y, y') − 2 mean k(x, y), k(x, y) = exp(−γ‖x − y‖²).
    public static func mmdRBF(_ a: LatentSet, _ b: LatentSet, gamma: Double = 1) -> Double {
        mmd(a, b) { dot, normX, normY in exp(-gamma * Swift.max(normX + normY - 2 * dot, 0)) }
    }

    /// The same with k(x, y) = (γ x·y + c₀)^degree.
    public static func mmdPolynomial(_ a: LatentSet, _ b: LatentSet, degree: Int = 2, gamma: Double = 1, coef0: Double = 0) -> Double {
        mmd(a, b) { dot, _, _ in pow(gamma * dot + coef0, Double(degree)) }
    }

    /// The three kernel means from Gram matrices (one sgemm each).
    static func mmd(_ a: LatentSet, _ b: LatentSet, kernel: (_ dot: Double, _ normX: Double, _ normY: Double) -> Double) -> Double {
        precondition(a.dims == b.dims, "mmd: \(a.dims) and \(b.dims) dimensions")
        func meanKernel(_ x: LatentSet, _ y: LatentSet) -> Double {
            let gram = Tensor.matmul(Tensor(x.values, shape: [x.count, x.dims]), Tensor(y.values, shape: [y.count, y.dims]), transposeB: true).array
            let normsX = squaredNorms(x), normsY = squaredNorms(y)
            var total = 0.0
            for i in 0..<x.count {
                var row = 0.0
                for j in 0..<y.count { row += kernel(Double(gram[i * y.count + j]), normsX[i], normsY[j]) }
                total += row
            }
            return total / Double(x.count * y.count)
        }
        return meanKernel(a, a) + meanKernel(b, b) - 2 * meanKernel(a, b)
    }

    static func squaredNorms(_ x: LatentSet) -> [Double] {
        (0..<x.count).map { r in (0..<x.dims).reduce(0) { $0 + Double(x.values[r * x.dims + $1]) * Double(x.values[r * x.dims + $1]) } }
    }

    /// `a · b` of two `d × d` matrices.
    static func multiply(_ a: [Double], _ b: [Double], _ d: Int) -> [Double] {
        var c = [Double](repeating: 0, count: d * d)
        for i in 0..<d {
            for k in 0..<d {
                let aik = a[i * d + k]
                if aik == 0 { continue }
                for j in 0..<d { c[i * d + j] += aik * b[k * d + j] }
            }
        }
        return c
    }

    /// The positive semi-definite square root of a symmetric matrix (negative eigenvalues,
    /// rounding noise of a singular covariance, are taken as 0).
    static func symmetricSquareRoot(_ m: [Double], _ d: Int) -> [Double] {
        let (values, vectors) = symmetricEigen(m, d)
        var root = [Double](repeating: 0, count: d * d)
        for k in 0..<d {
            let s = Swift.max(values[k], 0).squareRoot()
            if s == 0 { continue }
            for i in 0..<d { for j in 0..<d { root[i * d + j] += s * vectors[i * d + k] * vectors[j * d + k] } }
        }
        return root
    }

    static func symmetricEigenvalues(_ m: [Double], _ d: Int) -> [Double] { symmetricEigen(m, d).values }

    /// Eigenvalues and eigenvectors (columns of `vectors`) of a symmetric `d × d` matrix by
    /// cyclic Jacobi rotations, until the off-diagonal mass is negligible.
    static func symmetricEigen(_ m: [Double], _ d: Int) -> (values: [Double], vectors: [Double]) {
        var a = m
        var v = [Double](repeating: 0, count: d * d)
        for i in 0..<d { v[i * d + i] = 1 }
        let scale = (0..<(d * d)).reduce(0) { $0 + a[$1] * a[$1] }
        for _ in 0..<100 {
            var off = 0.0
            for i in 0..<d { for j in (i + 1)..<d { off += a[i * d + j] * a[i * d + j] } }
            if off <= 1e-30 * Swift.max(scale, 1e-300) { break }
            for p in 0..<d {
                for q in (p + 1)..<d {
                    let apq = a[p * d + q]
                    if apq == 0 { continue }
                    let theta = (a[q * d + q] - a[p * d + p]) / (2 * apq)
                    let t = (theta >= 0 ? 1 : -1) / (abs(theta) + (theta * theta + 1).squareRoot())
                    let c = 1 / (t * t + 1).squareRoot(), s = t * c
                    for k in 0..<d {
                        let akp = a[k * d + p], akq = a[k * d + q]
                        a[k * d + p] = c * akp - s * akq
                        a[k * d + q] = s * akp + c * akq
                    }
                    for k in 0..<d {
                        let apk = a[p * d + k], aqk = a[q * d + k]
                        a[p * d + k] = c * apk - s * aqk
                        a[q * d + k] = s * apk + c * aqk
                    }
                    for k in 0..<d {
                        let vkp = v[k * d + p], vkq = v[k * d + q]
                        v[k * d + p] = c * vkp - s * vkq
                        v[k * d + q] = s * vkp + c * vkq
                    }
                }
            }
        }
        return ((0..<d).map { a[$0 * d + $0] }, v)
    }
}

extension LatentSet {
    /// The latents of `melodies` as the diffusion model sees them: every 2-bar chunk with a note,
    /// encoded to its posterior mean by `vae` (the mean, so that a set's latents do not depend
    /// on a seed), then trimmed and scaled by `transform`.
    public init(melodies: [Melody], vae: MelodyVAE, transform: LatentTransform) {
        let latents = MelodyLatents.encode(melodies, sources: [], model: vae, seed: 0)
        let Z = latents.zSize
        var values: [Float] = []
        for row in 0..<latents.chunk.count {
            let mu = latents.mu[(row * Z)..<((row + 1) * Z)]
            let sigma = latents.sigma[(row * Z)..<((row + 1) * Z)]
            // Silent chunks were stored as zeros in both.
            if mu.allSatisfy({ $0 == 0 }) && sigma.allSatisfy({ $0 == 0 }) { continue }
            values += transform.forward(mu)
        }
        self.init(values: values, dims: transform.kept.count)
    }
}
