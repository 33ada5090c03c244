/// Arithmetic on values that may come from the network: at the ends of the
/// type the result stops at its bound instead of trapping (a trap would end
/// the whole server).
extension UInt64 {
    /// `self + other`, or `UInt64.max` when that does not fit.
    @inlinable public func addingSaturated(_ other: UInt64) -> UInt64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }

    /// `self - other`, or 0 when `other` is larger.
    @inlinable public func subtractingSaturated(_ other: UInt64) -> UInt64 {
        other > self ? 0 : self - other
    }

    /// `self * other`, or `UInt64.max` when that does not fit.
    @inlinable public func multipliedSaturated(by other: UInt64) -> UInt64 {
        let (product, overflow) = multipliedReportingOverflow(by: other)
        return overflow ? .max : product
    }
}
