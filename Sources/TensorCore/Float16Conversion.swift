// Conversions between Float32 and the two 16-bit float formats safetensors files use.
//
//   binary16 (F16):  sign 1 | exponent 5 (bias 15)  | mantissa 10
//   bfloat16 (BF16): sign 1 | exponent 8 (bias 127) | mantissa 7   (the top half of a Float32)
//   binary32 (F32):  sign 1 | exponent 8 (bias 127) | mantissa 23
//
// Written on bit patterns rather than with Swift's `Float16`, which is missing on some
// platforms (macOS on Intel); the tests compare these against `Float16` where it exists.
// Narrowing rounds to nearest, ties to even, as IEEE 754 and numpy do; a value too large for
// the format becomes infinity, and NaN stays NaN.

/// Bit-level conversions between `Float` and the 16-bit float formats F16 (IEEE binary16) and
/// BF16 (bfloat16).
public enum HalfFloat {
    /// The Float32 value of an IEEE binary16 bit pattern. Exact for every pattern, including
    /// subnormals, signed zeros and infinities; a NaN keeps its sign and payload.
    public static func float(fromFloat16Bits bits: UInt16) -> Float {
        let sign = UInt32(bits & 0x8000) << 16
        let exponent = UInt32(bits >> 10) & 0x1f
        let mantissa = UInt32(bits & 0x03ff)
        switch exponent {
        case 0x1f:
            // Infinity or NaN: widen the payload so the quiet bit stays the quiet bit.
            return Float(bitPattern: sign | 0x7f80_0000 | mantissa << 13)
        case 0:
            // Zero or subnormal: the value is mantissa × 2^-24, exact in Float32, which has
            // room for every binary16 subnormal as a normal number.
            let magnitude = Float(mantissa) * 0x1p-24
            return sign == 0 ? magnitude : -magnitude
        default:
            // Normal: rebias the exponent from 15 to 127.
            return Float(bitPattern: sign | (exponent + 112) << 23 | mantissa << 13)
        }
    }

    /// The IEEE binary16 bit pattern nearest to `value` (ties to even). Magnitudes from 65520
    /// upward become infinity; magnitudes of 2^-25 and below become a signed zero.
    public static func float16Bits(from value: Float) -> UInt16 {
        let bits = value.bitPattern
        let sign = UInt16(truncatingIfNeeded: bits >> 16) & 0x8000
        let exponent = Int((bits >> 23) & 0xff)
        let mantissa = bits & 0x007f_ffff

        if exponent == 0xff {
            if mantissa == 0 { return sign | 0x7c00 }
            // NaN: keep the top of the payload and force the quiet bit, so that a payload
            // living only in the low bits cannot turn the NaN into infinity.
            return sign | 0x7e00 | UInt16(truncatingIfNeeded: mantissa >> 13)
        }
        // The exponent rebiased for binary16; 1...30 is the normal range.
        let halfExponent = exponent - 127 + 15
        if halfExponent >= 0x1f { return sign | 0x7c00 }
        if halfExponent >= 1 {
            // Normal: drop 13 mantissa bits. A carry out of the mantissa correctly bumps the
            // exponent, and from 0x7bff (65504) it lands on 0x7c00, infinity.
            let truncated = UInt32(halfExponent) << 10 | mantissa >> 13
            return sign | UInt16(roundShiftingRight(truncated << 13 | (mantissa & 0x1fff), by: 13))
        }
        // Subnormal or zero: the result counts units of 2^-24. The full 24-bit significand
        // m × 2^(e - 150) with e = halfExponent + 112 is m × 2^(halfExponent - 14) such units.
        if halfExponent < -10 { return sign }  // below 2^-25, which is half the smallest unit
        let significand = mantissa | 0x0080_0000
        // A result that rounds up to 0x0400 is the smallest normal, as the bit layout intends.
        return sign | UInt16(roundShiftingRight(significand, by: UInt32(14 - halfExponent)))
    }

    /// The Float32 value of a bfloat16 bit pattern (exact: bfloat16 is the top half of a Float32).
    public static func float(fromBFloat16Bits bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    /// The bfloat16 bit pattern nearest to `value` (ties to even); values that round past the
    /// largest finite bfloat16 become infinity.
    public static func bfloat16Bits(from value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN {
            // Truncating could clear every payload bit left and make infinity; keep it quiet.
            return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040
        }
        // Adding 0x7fff rounds halfway cases down; adding the lowest kept bit as well rounds
        // them to even. The carry may run into the exponent, which is the correct result.
        let rounded = bits &+ 0x7fff &+ ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: rounded >> 16)
    }

    /// `value >> shift`, rounded to nearest with ties to even (`1 ≤ shift ≤ 31`).
    @inline(__always)
    private static func roundShiftingRight(_ value: UInt32, by shift: UInt32) -> UInt32 {
        let kept = value >> shift
        let dropped = value & ((1 << shift) - 1)
        let halfway: UInt32 = 1 << (shift - 1)
        if dropped > halfway || (dropped == halfway && kept & 1 == 1) { return kept + 1 }
        return kept
    }
}
