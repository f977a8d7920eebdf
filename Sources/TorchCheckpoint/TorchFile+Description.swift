// What `jukebox info` prints for a PyTorch checkpoint.

extension TorchFile {
    /// Lines describing the checkpoint: format, step, the top-level entries, every tensor
    /// (name, dtype, shape, and the view when it is not a plain contiguous one) and totals.
    public func descriptionLines() -> [String] {
        var lines = ["PyTorch checkpoint, \(format == .legacy ? "legacy format (torch < 1.6)" : "zip format (torch ≥ 1.6)"), "
                     + "step \(step.map(String.init) ?? "not recorded")"]
        if case .dict(let dict) = root {
            let entries = dict.entries.map { "\($0.0.description) (\($0.1.kindDescription))" }
            lines.append("top level: " + entries.joined(separator: ", "))
        } else {
            lines.append("top level: \(root.kindDescription)")
        }
        var valuesByDType: [TorchDType: Int] = [:]
        for (name, tensor) in tensors {
            var line = "\(name): \(tensor.dtype.rawValue) \(tensor.shape)"
            if !tensor.isContiguous || tensor.storageOffset != 0 {
                line += " (view of storage '\(tensor.storage.key)' at element \(tensor.storageOffset), strides \(tensor.strides))"
            }
            lines.append(line)
            valuesByDType[tensor.dtype, default: 0] = saturatingSum(valuesByDType[tensor.dtype, default: 0], tensor.count)
        }
        let values = valuesByDType.values.reduce(0, saturatingSum)
        let byDType = TorchDType.allCases.compactMap { dtype in valuesByDType[dtype].map { "\(dtype.rawValue) \($0)" } }
        // Zip entries may overlap, so a hostile file's storages can add up past Int.max.
        let bytes = storages.reduce(0) { saturatingSum($0, $1.count * $1.dtype.byteSize) }
        lines.append("\(tensors.count) tensors, \(values) values (\(byDType.joined(separator: ", "))); "
                     + "\(storages.count) storages, \(bytes) bytes of data")
        return lines
    }
}

/// `a + b`, or Int.max when that overflows.
private func saturatingSum(_ a: Int, _ b: Int) -> Int {
    let (sum, overflow) = a.addingReportingOverflow(b)
    return overflow ? .max : sum
}
