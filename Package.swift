// swift-tools-version:6.0
import PackageDescription

/// Numeric targets are written in the Swift 5 language mode: kernels hand raw buffers to
/// worker threads, which Swift 6's strict sendability checking would force through wrappers.
let numeric: [SwiftSetting] = [.swiftLanguageMode(.v5)]

/// HalfKernels holds the hand-vectorised loops of token sampling (16-bit weights widened on
/// the fly). On x86-64 it is compiled for AVX2, FMA and F16C; callers check the CPU at run time
/// (`jukebox_cpu_has_avx2_fma_f16c`) and fall back to OpenBLAS in 32 bits without them.
#if arch(x86_64)
let vectorISA: [SwiftSetting] = [.unsafeFlags(["-Xcc", "-mavx2", "-Xcc", "-mfma", "-Xcc", "-mf16c"])]
#else
let vectorISA: [SwiftSetting] = []
#endif

let package = Package(
    name: "jukebox",
    products: [
        .library(name: "JukeboxKit", targets: ["TensorCore", "AudioDSP", "HalfKernels", "ModelKit", "JukeboxKit", "TorchCheckpoint"]),
        .library(name: "MelodyKit", targets: ["MIDI", "MelodyKit", "MIDIRender"]),
        .executable(name: "jukebox", targets: ["jukebox"]),
        .executable(name: "jukebox-fuzz", targets: ["JukeboxFuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS"),
        .systemLibrary(name: "CFFTW", path: "Sources/CFFTW"),
        .systemLibrary(name: "CSndFile", path: "Sources/CSndFile"),
        .systemLibrary(name: "CSampleRate", path: "Sources/CSampleRate"),
        .systemLibrary(name: "CSystem", path: "Sources/CSystem"),
        .systemLibrary(name: "CFluidSynth", path: "Sources/CFluidSynth"),
        .target(name: "TensorCore", dependencies: ["CBLAS", "CSystem"], swiftSettings: numeric),
        // A safe reader of PyTorch checkpoints (both torch.save formats): a pickle interpreter that
        // builds inert values only, over a memory-mapped file.
        .target(name: "TorchCheckpoint", dependencies: ["TensorCore"]),
        .target(name: "AudioDSP", dependencies: ["TensorCore", "CFFTW", "CSndFile", "CSampleRate"],
                swiftSettings: numeric),
        .target(name: "HalfKernels", swiftSettings: numeric + vectorISA),
        // Layers, the transformer block, checkpoints, configs, the training loop and run folder,
        // and process support (interrupts, progress, output files): what every model shares.
        .target(name: "ModelKit", dependencies: ["TensorCore", "CSystem"], swiftSettings: numeric),
        .target(name: "JukeboxKit", dependencies: ["TensorCore", "AudioDSP", "HalfKernels", "ModelKit", "CSystem", "TorchCheckpoint"], swiftSettings: numeric),
        // Standard MIDI Files and melody events for symbolic music generation; Foundation only.
        .target(name: "MIDI"),
        // MIDI to audio with FluidSynth and a General MIDI soundfont, to hear a melody.
        .target(name: "MIDIRender", dependencies: ["CFluidSynth", "MIDI", "AudioDSP"]),
        // The symbolic melody models (MusicVAE's melody VAE; latent diffusion builds on it).
        .target(name: "MelodyKit", dependencies: ["TensorCore", "ModelKit", "MIDI"], swiftSettings: numeric),
        .executableTarget(
            name: "jukebox",
            dependencies: ["JukeboxKit", "ModelKit", "MelodyKit", "MIDI", "MIDIRender", "TensorCore", "AudioDSP", "TorchCheckpoint",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: numeric),
        // Fuzz targets of every file reader: a replay tool here, a libFuzzer binary when
        // `make fuzz` builds it with `-sanitize=fuzzer,address -D FUZZING` (scripts/fuzz.sh).
        .target(name: "FuzzTargets", dependencies: ["JukeboxKit", "ModelKit", "AudioDSP", "TensorCore", "MIDI", "MelodyKit", "TorchCheckpoint"],
                swiftSettings: numeric),
        .executableTarget(name: "JukeboxFuzz", dependencies: ["FuzzTargets", "JukeboxKit", "ModelKit", "AudioDSP", "CSndFile"]),
        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore"], swiftSettings: numeric),
        .testTarget(name: "TorchCheckpointTests", dependencies: ["TorchCheckpoint", "TensorCore"], exclude: ["Fixtures"]),
        .testTarget(name: "AudioDSPTests", dependencies: ["AudioDSP", "TensorCore"], swiftSettings: numeric),
        .testTarget(name: "JukeboxKitTests", dependencies: ["JukeboxKit", "ModelKit", "AudioDSP", "TensorCore", "FuzzTargets", "MIDI", "MIDIRender", "TorchCheckpoint"],
                    exclude: ["Fixtures"], swiftSettings: numeric),
        .testTarget(name: "MIDITests", dependencies: ["MIDI"]),
        .testTarget(name: "MIDIRenderTests", dependencies: ["MIDIRender", "MIDI"]),
        .testTarget(name: "MelodyKitTests", dependencies: ["MelodyKit", "MIDI", "ModelKit", "TensorCore"], swiftSettings: numeric),
    ]
)
