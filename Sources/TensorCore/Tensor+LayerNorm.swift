// Layer normalisation over the last axis, fused forward and backward.
//
// Shapes: x (R, C) viewed from any (..., C); gamma, beta (C); mean, rstd (R) saved for backward.
//   x̂ = (x − mean) · rstd,  y = x̂ · gamma + beta
//   dx = rstd · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ · x̂)),  dx̂ = dy · gamma

import Foundation

extension Tensor {
    /// Normalises each row of the last axis to zero mean and unit variance (biased variance,
    /// `eps` added inside the square root), then scales by `gamma` and shifts by `beta` (both `(C)`).
    public static func layerNorm(_ x: Tensor, gamma: Tensor, beta: Tensor, eps: Float = 1e-5) -> Tensor {
        let C = x.shape.last ?? 0
        precondition(C > 0 && gamma.shape == [C] && beta.shape == [C],
                     "layerNorm: input \(x.shape) does not fit gamma \(gamma.shape) and beta \(beta.shape)")
        let R = x.count / C
        let y = Tensor(uninitializedShape: x.shape)
        let meanT = Tensor(uninitializedShape: [R]), rstdT = Tensor(uninitializedShape: [R])
        let mean = meanT.data, rstd = rstdT.data
        let px = x.data, py = y.data, pg = gamma.data, pb = beta.data
        Parallel.forRanges(R, grain: Swift.max(1, Parallel.minimumElementsPerThread / C)) { rows in
            for r in rows {
                let xr = px + r * C, yr = py + r * C
                var s: Float = 0
                for i in 0..<C { s += xr[i] }
                let m = s / Float(C)
                var v: Float = 0
                for i in 0..<C { let d = xr[i] - m; v += d * d }
                let rs = 1 / (v / Float(C) + eps).squareRoot()
                mean[r] = m
                rstd[r] = rs
                for i in 0..<C { yr[i] = (xr[i] - m) * rs * pg[i] + pb[i] }
            }
        }
        return record(.layerNorm, output: y, inputs: [x, gamma, beta]) { _, g in
            let pdy = g.data
            if x.requiresGrad {
                let dx = x.gradAccumulator()
                Parallel.forRanges(R, grain: Swift.max(1, Parallel.minimumElementsPerThread / C)) { rows in
                    for r in rows {
                        let xr = px + r * C, dyr = pdy + r * C, dxr = dx + r * C
                        let m = meanT.data[r], rs = rstdT.data[r]
                        var sumD: Float = 0, sumDX: Float = 0
                        for i in 0..<C {
                            let dxh = dyr[i] * pg[i]
                            sumD += dxh
                            sumDX += dxh * (xr[i] - m) * rs
                        }
                        let meanD = sumD / Float(C), meanDX = sumDX / Float(C)
                        for i in 0..<C {
                            let xh = (xr[i] - m) * rs
                            dxr[i] += rs * (dyr[i] * pg[i] - meanD - xh * meanDX)
                        }
                    }
                }
            }
            if gamma.requiresGrad || beta.requiresGrad {
                let dg = gamma.requiresGrad ? gamma.gradAccumulator() : nil
                let db = beta.requiresGrad ? beta.gradAccumulator() : nil
                for r in 0..<R {
                    let xr = px + r * C, dyr = pdy + r * C
                    let m = meanT.data[r], rs = rstdT.data[r]
                    if let dg { for i in 0..<C { dg[i] += dyr[i] * (xr[i] - m) * rs } }
                    if let db { for i in 0..<C { db[i] += dyr[i] } }
                }
            }
        }
    }
}
