import ArgumentParser

struct Jukebox: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jukebox",
        abstract: "Train and run Jukebox-style music generators on a CPU.",
        subcommands: [])
}
