import ArgumentParser
import Foundation
import TensorCore
import JukeboxKit
import MelodyKit
import ModelKit
import AudioDSP

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure kernels and models against raw sgemm in the same run.",
        discussion: """
            Suites: ops (tensor kernels), audio (STFT, spectral loss, resampling, loader), vqvae (the paper-sized VQ-VAE), prior (an 8.4M-parameter top prior: sampling and training), melody (the LSTM layers and training step of the melody VAE, the latent diffusion model's training and sampling steps, and the TransformerMDN's training step). Each case prints its median time, GFLOP/s where it \
            has a FLOP count, and `sgemm_gflops`: raw cblas_sgemm on a product of the same \
            size measured in the same run, so the ratio holds on a busy machine.
            Build with -c release (make build) before benchmarking.
            """)

    @Argument(help: "Suite to run: ops, audio, vqvae, prior, melody.")
    var suite: String

    @Flag(help: "Print one JSON object per case on stdout.")
    var json = false

    @Option(help: "Timed runs per case; the median is reported.")
    var repeats = 5

    func validate() throws {
        guard ["ops", "audio", "vqvae", "prior", "melody"].contains(suite) else {
            throw ValidationError("unknown suite '\(suite)'; choose one of: ops, audio, vqvae, prior, melody")
        }
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
    }

    func run() throws {
        let results: [BenchmarkResult]
        switch suite {
        case "audio":
            let music = "/usr/share/games/singularity/music"
            results = audioBenchmarks(singularityMusicDir: FileManager.default.fileExists(atPath: music) ? music : nil)
        case "vqvae": results = vqvaeBenchmarks(repeats: repeats)
        case "prior": results = priorBenchmarks(repeats: repeats)
        case "melody":
            // lstm-fwd-bwd from TensorCore, then the melody VAE, diffusion and MDN steps from MelodyKit.
            results = lstmBenchmarks(repeats: repeats) + melodyVAEBenchmarks(repeats: repeats) + diffusionBenchmarks(repeats: repeats)
                + mdnBenchmarks(repeats: repeats)
        default: results = opBenchmarks(repeats: repeats)
        }
        for r in results { print(json ? r.jsonLine : r.humanLine) }
    }
}
