import ArgumentParser

@main
struct Jukebox: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jukebox",
        abstract: "Train and run Jukebox-style music generators on a CPU.",
        discussion: """
            A hierarchical VQ-VAE turns audio into codes at several hops (Jukebox's three levels \
            at 8, 32 and 128; `train vqvae --extend` adds more on top); sparse-transformer priors \
            generate codes top-down; the VQ-VAE decoder turns level-0 codes back into audio.
            """,
        subcommands: [Train.self, Encode.self, Decode.self, Sample.self, Upsample.self, Bundle.self, Eval.self, Info.self, Bench.self])
}
