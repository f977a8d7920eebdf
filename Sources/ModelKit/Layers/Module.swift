// Layers list their parameters under dotted names; models are trees of layers.

import TensorCore

/// Something with named trainable parameters.
public protocol Module: AnyObject {
    /// Every parameter, named relative to this module (`conv1.weight`).
    func namedParameters() -> [NamedParameter]
}

extension Module {
    /// Parameters of `child`, named under `prefix` (`blocks.3` + `.conv1.weight`).
    public func parameters(of child: Module, prefix: String) -> [NamedParameter] {
        child.namedParameters().map { (prefix + "." + $0.name, $0.tensor) }
    }

    /// Total number of parameter values.
    public var parameterCount: Int { namedParameters().reduce(0) { $0 + $1.tensor.count } }
}
