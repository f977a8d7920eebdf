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
            For symbolic music, `train melody-vae` and `melody` give MusicVAE's 2-bar melody             latents over MIDI (Mittal et al. 2021 build their diffusion model on them).
            """,
        subcommands: [Train.self, Encode.self, Decode.self, Sample.self, Upsample.self, Bundle.self, Import.self, MelodyCommand.self, Eval.self, Info.self, Bench.self])
}
